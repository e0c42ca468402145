#!/usr/bin/env node
// All-reduce benchmark over loopback TCP or shared memory: bus bandwidth = 2(n-1)/n x bytes / time
// for 2-8 processes and 1 KB-256 MB, the ring and the direct algorithm side by side, against the
// loopback bound measured in the same run (one large point-to-point transfer between two processes).
//
//   npm run build && node test/bench/allreduce-bench.mjs [--procs 2,3,4,8] [--max-mb 256] [--min-kb 1]
//     [--chunk-kb 1024] [--algos ring,direct] [--transport tcp|shm] [--quick]
//
// --transport picks what carries the collectives (as PROGGAN_TRANSPORT does for training; shm needs
// the native addon built with shared memory support); the "% bound" column stays relative to a raw
// loopback socket.
//
// Each rank runs in its own process (fork of this file with --worker). Times are the slowest
// rank's, after a warm-up; reps shrink with size so the whole run takes a few minutes on 2 cores.
import { fork } from 'node:child_process';
import * as net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = await import(pathToFileURL(join(here, '..', '..', 'dist', 'distributed', 'index.js')).href);
const { createStrategy, ringAllReduce, directAllReduce, barrier, allGatherBytes } = dist;

const KB = 1024;
const MB = 1024 * 1024;

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function fmtBytes(b) {
  if (b >= MB) return `${b / MB} MB`;
  if (b >= KB) return `${b / KB} KB`;
  return `${b} B`;
}

/** Repetitions for one size: about `budget` bytes in total, at least 2. */
function repsFor(bytes, budget) {
  return Math.max(2, Math.min(200, Math.floor(budget / bytes)));
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Worker side.
async function worker() {
  const cfg = JSON.parse(process.env.BENCH_CONFIG);
  const rank = Number(process.env.RANK);
  const n = cfg.n;
  const strategy = await createStrategy(
    { rank, worldSize: n, jobId: cfg.jobId, addresses: [cfg.master], source: 'explicit' },
    { transport: cfg.transport, connectTimeoutMs: 60_000, opTimeoutMs: 600_000 },
  );
  const t = strategy.collectives.transport;
  const slowest = async (ms) => {
    const all = await allGatherBytes(t, new Uint8Array(Float64Array.of(ms).buffer));
    return Math.max(...all.map((b) => new Float64Array(b.buffer, b.byteOffset, 1)[0]));
  };
  const rows = [];
  if (cfg.p2p) {
    // Point-to-point through the transport: rank 0 sends, rank 1 receives (framing and copy included).
    const bytes = cfg.p2pBytes;
    const buf = new Uint8Array(bytes);
    for (let rep = 0; rep < cfg.p2pReps + 1; rep++) {
      await barrier(t);
      const t0 = performance.now();
      if (rank === 0) await t.send(1, buf);
      else if (rank === 1) await t.recv(0);
      await barrier(t);
      const ms = await slowest(performance.now() - t0);
      if (rep > 0) rows.push({ kind: 'p2p', bytes, ms });
    }
  }
  for (const bytes of cfg.sizes) {
    const len = bytes / 4;
    const buf = new Float32Array(len).fill(rank + 1);
    for (const algo of cfg.algos) {
      if (algo === 'direct' && bytes > cfg.directMax) continue;
      const reps = repsFor(bytes, cfg.budget);
      const run = () => (algo === 'ring' ? ringAllReduce(t, buf, 'sum', cfg.chunkBytes) : directAllReduce(t, buf, 'sum'));
      buf.fill(rank + 1);
      await run(); // warm-up, and a correctness check
      const want = (n * (n + 1)) / 2;
      if (buf[0] !== want || buf[len - 1] !== want) throw new Error(`rank ${rank}: ${algo} ${bytes} B: wrong result ${buf[0]}, ${buf[len - 1]} (want ${want})`);
      await barrier(t);
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) await run();
      const ms = (await slowest(performance.now() - t0)) / reps;
      rows.push({ kind: algo, bytes, ms, reps });
    }
  }
  if (rank === 0) process.send({ rows });
  await t.close();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Raw loopback bound: one process writes a buffer over a plain socket, another counts the bytes
// and reports when the last one arrived. Best of `reps` transfers.
async function rawSink() {
  const server = net.createServer((sock) => {
    let got = 0;
    sock.on('data', (d) => {
      got += d.length;
    });
    sock.on('end', () => process.send({ got }));
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', (m) => m === 'exit' && process.exit(0));
}

async function rawBound(bytes, reps) {
  const child = fork(fileURLToPath(import.meta.url), ['--raw-sink'], { stdio: 'inherit' });
  const port = await new Promise((resolve) => child.once('message', (m) => resolve(m.port)));
  const chunk = Buffer.alloc(4 * MB, 1);
  let best = Infinity;
  for (let rep = 0; rep < reps; rep++) {
    const done = new Promise((resolve) => {
      const on = (m) => {
        if (m.got === undefined) return;
        child.off('message', on);
        resolve(m.got);
      };
      child.on('message', on);
    });
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise((resolve) => sock.once('connect', resolve));
    const t0 = performance.now();
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!sock.write(chunk)) await new Promise((resolve) => sock.once('drain', resolve));
    }
    sock.end();
    const got = await done;
    if (got !== bytes) throw new Error(`raw sink got ${got} of ${bytes} bytes`);
    best = Math.min(best, performance.now() - t0);
  }
  child.send('exit');
  await new Promise((resolve) => child.on('exit', resolve));
  return { bytes, ms: best };
}

async function runGroup(n, cfg) {
  const master = `127.0.0.1:${await freePort()}`;
  const full = { ...cfg, n, master, jobId: `bench-${n}-${Date.now()}` };
  const children = [];
  let result;
  const exits = [];
  for (let rank = 0; rank < n; rank++) {
    const child = fork(fileURLToPath(import.meta.url), ['--worker'], {
      env: { ...process.env, RANK: String(rank), BENCH_CONFIG: JSON.stringify(full) },
      stdio: 'inherit',
    });
    if (rank === 0) child.on('message', (m) => (result = m));
    exits.push(new Promise((resolve) => child.on('exit', (code) => resolve(code))));
    children.push(child);
  }
  const codes = await Promise.all(exits);
  if (codes.some((c) => c !== 0)) throw new Error(`a worker of the n=${n} group failed: exit codes ${codes}`);
  return result.rows;
}

async function main() {
  const quick = process.argv.includes('--quick');
  const procs = (arg('procs', quick ? '2,4' : '2,3,4,8')).split(',').map(Number);
  const maxMb = Number(arg('max-mb', quick ? '16' : '256'));
  const sizes = [];
  for (let b = Number(arg('min-kb', '1')) * KB; b <= maxMb * MB; b *= 4) sizes.push(b);
  const cfg = {
    sizes,
    algos: arg('algos', 'ring,direct').split(','),
    directMax: 4 * MB,
    budget: quick ? 16 * MB : 64 * MB,
    chunkBytes: Number(arg('chunk-kb', '1024')) * KB,
    p2p: false,
    transport: arg('transport', 'tcp'),
  };
  if (!['tcp', 'shm'].includes(cfg.transport)) throw new Error(`--transport must be tcp or shm, got ${cfg.transport}`);
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} CPUs; transport ${cfg.transport}; sizes ${sizes.map(fmtBytes).join(', ')}`);

  // Loopback bound, measured twice: a raw socket, and our transport's send/recv between 2 processes.
  const boundBytes = Math.min(256 * MB, maxMb * MB);
  const raw = await rawBound(boundBytes, 3);
  const rawGBs = raw.bytes / raw.ms / 1e6;
  const p2pRows = await runGroup(2, { ...cfg, sizes: [], p2p: true, p2pBytes: boundBytes, p2pReps: 3 });
  const p2pMs = Math.min(...p2pRows.map((r) => r.ms));
  const p2pGBs = boundBytes / p2pMs / 1e6;
  console.log(`\nloopback bound, ${fmtBytes(boundBytes)} one way between 2 processes:`);
  console.log(`  raw node:net socket      ${rawGBs.toFixed(2)} GB/s (best of 3)`);
  console.log(`  ${cfg.transport === 'shm' ? 'ShmTransport' : 'TcpTransport'} send/recv   ${p2pGBs.toFixed(2)} GB/s (best of 3)`);

  const table = [];
  for (const n of procs) {
    const t0 = performance.now();
    const rows = await runGroup(n, cfg);
    for (const r of rows) table.push({ n, ...r });
    console.error(`  n=${n} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  console.log('\nall-reduce (sum, float32), slowest rank; busbw = 2(n-1)/n x bytes / time; % of the raw bound');
  console.log('| n | size | algo | reps | time (ms) | algbw (GB/s) | busbw (GB/s) | % bound |');
  console.log('|---|------|------|------|-----------|--------------|--------------|---------|');
  for (const r of table) {
    const algbw = r.bytes / r.ms / 1e6;
    const busbw = ((2 * (r.n - 1)) / r.n) * algbw;
    console.log(
      `| ${r.n} | ${fmtBytes(r.bytes)} | ${r.kind} | ${r.reps} | ${r.ms.toFixed(3)} | ${algbw.toFixed(3)} | ${busbw.toFixed(3)} | ${((100 * busbw) / rawGBs).toFixed(1)} |`,
    );
  }
  // Where the direct exchange stops beating the ring, per world size.
  console.log('\ncrossover (largest size where direct is faster than ring):');
  for (const n of procs) {
    let last = 'never';
    for (const b of sizes) {
      const ring = table.find((r) => r.n === n && r.bytes === b && r.kind === 'ring');
      const direct = table.find((r) => r.n === n && r.bytes === b && r.kind === 'direct');
      if (ring && direct && direct.ms < ring.ms) last = fmtBytes(b);
    }
    console.log(`  n=${n}: ${last}`);
  }
}

if (process.argv.includes('--worker')) await worker();
else if (process.argv.includes('--raw-sink')) await rawSink();
else await main();
