#!/usr/bin/env node
// Builds the optional CUDA addon (build/Release/proggan_cuda.node) for the `cuda` backend.
//
// src/native/cuda/kernels.cu is compiled by nvcc, src/native/cuda/addon.cc by the host C++ compiler,
// and both are linked with the CUDA runtime *statically* (libcudart_static.a), so the addon loads on
// machines without a GPU. cuDNN, cuBLAS and NCCL are only needed as headers here: the addon dlopens
// them at run time (src/backend/cuda-libs.ts decides where it looks).
//
// Never fails the install: without nvcc or the headers it prints one line saying what is missing
// and exits 0 (the other backends work). Prints one line on success too.
//
// Environment:
//   PROGGAN_SKIP_CUDA=1             do nothing
//   PROGGAN_REQUIRE_CUDA_BUILD=1    exit 1 instead of warning (CI)
//   CUDA_HOME / CUDA_PATH           the toolkit (default: nvcc's parent directory, /usr/local/cuda)
//   PROGGAN_NVIDIA_DIRS             ':'-separated folders holding pip's nvidia/<pkg>/include trees
//                                   (e.g. a site-packages folder, or where the wheels were unzipped)
//   PROGGAN_CUDA_ARCHS              compute capabilities to compile for (default "90": H100/H200)
//   PROGGAN_CUDA_VERBOSE=1          print the compiler output on failure
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const required = process.env.PROGGAN_REQUIRE_CUDA_BUILD === '1';
const out = join(root, 'build', 'Release', 'proggan_cuda.node');
const HOW =
  'To build it: install the CUDA toolkit (nvcc) and the cuDNN/cuBLAS/NCCL headers (system packages, or ' +
  '`pip install nvidia-cudnn-cu13 nvidia-cublas nvidia-nccl-cu13` and PROGGAN_NVIDIA_DIRS=<site-packages>), ' +
  'then run `node scripts/build-cuda.mjs`.';

function giveUp(reason, detail) {
  const msg = `proggan: CUDA addon not built (${reason}); the cuda backend is unavailable, the others work. ${HOW}`;
  if (required) {
    console.error(`${msg}\n${detail ?? ''}`);
    process.exit(1);
  }
  console.warn(`NOTE ${msg}`);
  if (detail && process.env.PROGGAN_CUDA_VERBOSE === '1') console.warn(detail);
  process.exit(0);
}

if (process.env.PROGGAN_SKIP_CUDA === '1') process.exit(0);
if (process.platform !== 'linux') giveUp(`platform ${process.platform} is not supported`);

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

// The toolkit: CUDA_HOME, CUDA_PATH, nvcc on the PATH (through wrapper scripts), /usr/local/cuda.
const homes = [process.env.CUDA_HOME, process.env.CUDA_PATH].filter(Boolean);
let nvcc = homes.map((h) => join(h, 'bin', 'nvcc')).find((p) => existsSync(p));
if (!nvcc) {
  const onPath = which('nvcc');
  if (onPath) {
    // /usr/local/bin/nvcc may be a wrapper script: ask nvcc where its toolkit is.
    const r = spawnSync(onPath, ['--dryrun', '--version'], { encoding: 'utf8' });
    const top = /TOP=(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1];
    nvcc = onPath;
    if (top) homes.push(top);
    homes.push(dirname(dirname(realpathSync(onPath))));
  }
}
homes.push('/usr/local/cuda');
if (!nvcc && existsSync('/usr/local/cuda/bin/nvcc')) nvcc = '/usr/local/cuda/bin/nvcc';
if (!nvcc) giveUp('nvcc not found (set CUDA_HOME or put nvcc on the PATH)');
const cudaHome = homes.find((h) => existsSync(join(h, 'include', 'cuda_runtime_api.h')));
if (!cudaHome) giveUp(`cuda_runtime_api.h not found under ${homes.join(', ')}`);
const cudartStatic = ['lib64', 'lib', 'targets/x86_64-linux/lib']
  .map((l) => join(cudaHome, l, 'libcudart_static.a'))
  .find((p) => existsSync(p));
if (!cudartStatic) giveUp(`libcudart_static.a not found under ${cudaHome}`);

// Headers of cuDNN, cuBLAS and NCCL: the toolkit, the system, then pip's nvidia-* folders.
function pipNvidiaRoots() {
  const roots = (process.env.PROGGAN_NVIDIA_DIRS ?? '').split(':').filter(Boolean);
  const r = spawnSync('python3', ['-c', 'import site,sys;print("\\n".join(site.getsitepackages()+[site.getusersitepackages()]+sys.path))'], {
    encoding: 'utf8',
  });
  if (r.status === 0) roots.push(...r.stdout.split('\n').filter(Boolean));
  return [...new Set(roots)].filter((d) => existsSync(join(d, 'nvidia')));
}
const includeDirs = [join(cudaHome, 'include'), '/usr/include', '/usr/local/include', '/usr/include/x86_64-linux-gnu'];
for (const r of pipNvidiaRoots()) {
  for (const pkg of readdirSync(join(r, 'nvidia'))) {
    const inc = join(r, 'nvidia', pkg, 'include');
    if (existsSync(inc) && statSync(inc).isDirectory()) includeDirs.push(inc);
  }
}
const found = {};
for (const h of ['cudnn.h', 'cublas_v2.h', 'nccl.h']) {
  found[h] = includeDirs.find((d) => existsSync(join(d, h)));
  if (!found[h]) giveUp(`${h} not found in ${includeDirs.length} include folders (CUDA_HOME, system, pip nvidia-*)`);
}

// Node's and node-addon-api's headers.
const nodeIncludes = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(dirname(process.execPath)), 'include', 'node'),
  join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
].filter(Boolean);
const nodeInclude = nodeIncludes.find((d) => existsSync(join(d, 'node_api.h')));
if (!nodeInclude) giveUp(`node_api.h not found (looked in ${nodeIncludes.join(', ')})`);
let napiInclude;
try {
  napiInclude = createRequire(import.meta.url)('node-addon-api').include_dir;
  if (!napiInclude.startsWith('/')) napiInclude = join(root, napiInclude);
} catch {
  giveUp('node-addon-api is not installed (run npm ci)');
}
const cxx = process.env.CXX ?? (which('c++') ? 'c++' : 'g++');
if (!which(cxx)) giveUp(`no C++ compiler (${cxx})`);

const archs = (process.env.PROGGAN_CUDA_ARCHS ?? '90').split(/[ ,]+/).filter(Boolean);
const objDir = join(root, 'build', 'cuda');
mkdirSync(objDir, { recursive: true });
mkdirSync(dirname(out), { recursive: true });
const src = join(root, 'src', 'native', 'cuda');
const uniq = [...new Set(includeDirs.filter((d) => Object.values(found).includes(d) || d === join(cudaHome, 'include')))];
const incFlags = uniq.map((d) => `-I${d}`);

function run(cmd, args) {
  return new Promise((resolvePromise) => {
    const p = spawn(cmd, args, { cwd: root });
    let log = '';
    p.stdout.on('data', (d) => (log += d));
    p.stderr.on('data', (d) => (log += d));
    p.on('close', (code) => resolvePromise({ code, log: `$ ${cmd} ${args.join(' ')}\n${log}` }));
    p.on('error', (err) => resolvePromise({ code: -1, log: String(err) }));
  });
}

const t0 = Date.now();
const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=[sm_${a},compute_${a}]`]);
const [k, a] = await Promise.all([
  run(nvcc, ['-std=c++17', '-O3', ...gencode, '-Xcompiler', '-fPIC,-fvisibility=hidden', `-I${join(cudaHome, 'include')}`, '-c', join(src, 'kernels.cu'), '-o', join(objDir, 'kernels.o')]),
  run(cxx, ['-std=c++17', '-O2', '-fPIC', '-fexceptions', '-fvisibility=hidden', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', `-I${nodeInclude}`, `-I${napiInclude}`, ...incFlags, '-c', join(src, 'addon.cc'), '-o', join(objDir, 'addon.o')]),
]);
if (k.code !== 0 || a.code !== 0) giveUp('the compile failed; set PROGGAN_CUDA_VERBOSE=1 to see the log', `${k.log}\n${a.log}`);
const l = await run(cxx, ['-shared', '-o', out, join(objDir, 'addon.o'), join(objDir, 'kernels.o'), cudartStatic, '-ldl', '-lpthread', '-lrt', '-Wl,--exclude-libs,ALL']);
if (l.code !== 0) giveUp('the link failed; set PROGGAN_CUDA_VERBOSE=1 to see the log', l.log);

// Load it once: it must load without a GPU and without cuDNN/cuBLAS/NCCL.
try {
  const addon = createRequire(import.meta.url)(out);
  const probe = addon.probe();
  const rt = addon.cudaRuntimeVersion;
  const gpu = probe.error ? `no usable GPU here: ${probe.error}` : `${probe.deviceCount} GPU(s) visible`;
  const mb = (statSync(out).size / 2 ** 20).toFixed(1);
  console.log(
    `proggan: built CUDA addon (CUDA ${Math.floor(rt / 1000)}.${(rt % 1000) / 10}, sm_${archs.join('/sm_')}, ` +
      `${((Date.now() - t0) / 1000).toFixed(1)} s, ${mb} MB; ${gpu}): ${out}`,
  );
} catch (err) {
  giveUp(`the addon was built but does not load: ${err.message}`);
}
