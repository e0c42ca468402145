#!/usr/bin/env node
// Builds the optional MPI addon (build/Release/proggan_mpi.node) from src/native/mpi.cc with the
// MPI C++ compiler wrapper (mpicxx), for the MPI transport (PROGGAN_TRANSPORT=mpi, or a run started
// by mpirun). Apart from the oneDNN addon: a machine without MPI loses nothing else.
//
// It builds when asked (--force, or PROGGAN_BUILD_MPI=1 / PROGGAN_REQUIRE_MPI=1) or when Open MPI's
// development files are present (mpicxx and mpi.h); otherwise it does nothing. It prints one line
// saying what happened and never fails an install: it exits 0 unless PROGGAN_REQUIRE_MPI=1 (CI),
// where a missing prerequisite or a failed compile exits 1.
//
// Environment:
//   PROGGAN_SKIP_MPI=1      do nothing
//   PROGGAN_BUILD_MPI=1     build even if the headers look absent (report why it failed)
//   PROGGAN_REQUIRE_MPI=1   exit 1 when it cannot build (CI)
//   MPICXX                  the MPI C++ wrapper (default mpicxx)
//   PROGGAN_MPI_VERBOSE=1   print the compiler output on failure
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const required = process.env.PROGGAN_REQUIRE_MPI === '1';
const asked = required || process.env.PROGGAN_BUILD_MPI === '1' || process.argv.includes('--force');
const out = join(root, 'build', 'Release', 'proggan_mpi.node');
const HOW = 'To enable it: apt-get install libopenmpi-dev openmpi-bin, then run `node scripts/build-mpi.mjs`.';

function done(ok, line, detail) {
  if (ok) {
    console.log(`proggan: ${line}`);
    process.exit(0);
  }
  const msg = `proggan: MPI transport not built (${line}). ${HOW}`;
  if (required) {
    console.error(detail ? `${msg}\n${detail}` : msg);
    process.exit(1);
  }
  console.warn(msg);
  if (detail && process.env.PROGGAN_MPI_VERBOSE === '1') console.warn(detail);
  process.exit(0);
}

if (process.env.PROGGAN_SKIP_MPI === '1' && !required) process.exit(0);

const mpicxx = process.env.MPICXX ?? 'mpicxx';
const showCompile = spawnSync(mpicxx, ['--showme:compile'], { encoding: 'utf8' });
const showLink = spawnSync(mpicxx, ['--showme:link'], { encoding: 'utf8' });
const haveWrapper = showCompile.status === 0 && showLink.status === 0;
const incDirs = haveWrapper ? [...showCompile.stdout.matchAll(/-I(\S+)/g)].map((m) => m[1]) : [];
const haveHeader = incDirs.some((d) => existsSync(join(d, 'mpi.h')));
if (!asked && !(haveWrapper && haveHeader)) {
  // Nothing asked and no Open MPI dev files: stay silent apart from one line.
  console.log('proggan: MPI transport skipped (no mpicxx / mpi.h; set PROGGAN_BUILD_MPI=1 to insist)');
  process.exit(0);
}
if (!haveWrapper) done(false, `${mpicxx} not found or not an Open MPI wrapper`);
if (!haveHeader) done(false, `mpi.h not found in ${incDirs.join(', ') || 'the wrapper include paths'}`);

// Node's headers: next to this node (official tarballs, Debian's nodejs), or npm's nodedir.
const nodeIncludes = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  ...(process.env.npm_config_nodedir ? [join(process.env.npm_config_nodedir, 'include', 'node')] : []),
  '/usr/include/node',
  '/usr/local/include/node',
];
const nodeInc = nodeIncludes.find((d) => existsSync(join(d, 'node_api.h')));
if (!nodeInc) done(false, `Node's headers (node_api.h) not found in ${nodeIncludes.join(', ')}`);
let addonApi;
try {
  addonApi = createRequire(join(root, 'package.json'))('node-addon-api').include_dir;
  if (!existsSync(join(addonApi, 'napi.h'))) addonApi = join(root, addonApi);
} catch (err) {
  done(false, `node-addon-api is not installed (${err.message})`);
}

mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
const args = [
  '-std=c++17', '-O2', '-fPIC', '-shared', '-fexceptions', '-fvisibility=hidden',
  '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', `-I${nodeInc}`, `-I${addonApi}`,
  join(root, 'src', 'native', 'mpi.cc'), '-o', tmp, '-ldl',
];
const t0 = Date.now();
const r = spawnSync(mpicxx, args, { cwd: root, encoding: 'utf8' });
if (r.status !== 0) {
  done(false, `${mpicxx} failed (exit ${r.status}); set PROGGAN_MPI_VERBOSE=1 to see why`, `${r.stdout ?? ''}\n${r.stderr ?? ''}`);
}
renameSync(tmp, out);
// Loading needs libmpi at run time; MPI_Init is not called here (it would need mpirun).
try {
  const addon = createRequire(import.meta.url)(out);
  if (typeof addon.allreduceSum !== 'function') throw new Error('allreduceSum missing');
} catch (err) {
  done(false, `built but does not load: ${err.message}`);
}
done(true, `built MPI transport (${((Date.now() - t0) / 1000).toFixed(1)} s): ${out}`);
