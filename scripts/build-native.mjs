#!/usr/bin/env node
// Builds proggan's two optional addons with node-gyp: the oneDNN backend
// (build/Release/proggan_native.node) and the shared-memory transport (build/Release/proggan_shm.node).
// They are independent: the transport needs only a C++ toolchain, so multi-process training on one
// host works without oneDNN.
//
// The package's install step: it never fails the install. When oneDNN's headers, a C++
// compiler, make or python3 are missing, or the compile fails, it prints one line saying what was
// built and how to get the rest, and exits 0 (the pure-JS cpu backend and the TCP transport still work).
//
// Environment:
//   PROGGAN_SKIP_NATIVE=1     do nothing
//   PROGGAN_REQUIRE_NATIVE=1  exit 1 instead of warning (CI)
//   DNNL_ROOT=/opt/dnnl       a oneDNN install outside the default include/library paths
//   CXX                       the C++ compiler (default c++ / g++)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const required = process.env.PROGGAN_REQUIRE_NATIVE === '1';
const HOW =
  'To enable it: apt-get install libdnnl-dev g++ make python3 (or set DNNL_ROOT to a oneDNN ' +
  'install), then run `npm rebuild proggan` or `node scripts/build-native.mjs`.';

function giveUp(reason, detail) {
  const msg =
    `proggan: native oneDNN backend not built (${reason}); training falls back to the much ` +
    `slower pure-JS cpu backend. ${HOW}`;
  if (required) {
    console.error(`${msg}\n${detail ?? ''}`);
    process.exit(1);
  }
  console.warn(`WARNING ${msg}`);
  if (detail && process.env.PROGGAN_NATIVE_VERBOSE === '1') console.warn(detail);
  process.exit(0);
}

function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

if (process.env.PROGGAN_SKIP_NATIVE === '1') process.exit(0);
if (process.platform !== 'linux' && !required) {
  giveUp(`platform ${process.platform} is not supported yet`);
}

// Check the prerequisites so a missing one gives a clear message rather than a compiler dump.
const dnnlRoot = process.env.DNNL_ROOT;
const includeDirs = [
  ...(dnnlRoot ? [join(dnnlRoot, 'include')] : []),
  '/usr/include',
  '/usr/local/include',
  '/opt/intel/oneapi/dnnl/latest/include',
];
const header = includeDirs.map((d) => join(d, 'oneapi', 'dnnl', 'dnnl.hpp')).find((p) => existsSync(p));
if (!header && required) giveUp('oneDNN headers (oneapi/dnnl/dnnl.hpp) not found');
const cxx = process.env.CXX ?? (has('c++') ? 'c++' : 'g++');
if (!has(cxx)) giveUp(`no C++ compiler (${cxx})`);
if (!has('make')) giveUp('make not found');
if (!has('python3')) giveUp('python3 (needed by node-gyp) not found');

// Find node-gyp: npm's own when run from a lifecycle script, else npm's bundled copy, else npx.
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, [fromNpm]];
  const candidates = [];
  const npmExec = process.env.npm_execpath;
  if (npmExec) candidates.push(join(dirname(npmExec), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // node-gyp is not a dependency: fine
  }
  const found = candidates.find((p) => existsSync(p));
  if (found) return [process.execPath, [found]];
  return ['npx', ['--yes', 'node-gyp']];
}

// Without oneDNN's headers only the shared-memory transport is built (gyp reads GYP_DEFINES).
const withDnnl = header !== undefined;
const env = { ...process.env, CXX: cxx, GYP_DEFINES: [process.env.GYP_DEFINES, `with_dnnl=${withDnnl ? 1 : 0}`].filter(Boolean).join(' ') };
if (dnnlRoot) {
  const lib = [join(dnnlRoot, 'lib'), join(dnnlRoot, 'lib64')].filter((p) => existsSync(p));
  env.CPATH = [join(dnnlRoot, 'include'), process.env.CPATH].filter(Boolean).join(':');
  env.LIBRARY_PATH = [...lib, process.env.LIBRARY_PATH].filter(Boolean).join(':');
  env.LDFLAGS = [...lib.map((l) => `-Wl,-rpath,${l}`), process.env.LDFLAGS].filter(Boolean).join(' ');
}
// npm passes its config (including nodedir) as npm_config_* variables, which node-gyp reads;
// outside npm, honour `npm config get nodedir` explicitly.
const args = ['rebuild'];
if (!process.env.npm_config_nodedir) {
  const r = spawnSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8', env });
  const nodedir = r.status === 0 ? r.stdout.trim() : '';
  if (nodedir && nodedir !== 'undefined' && nodedir !== 'null' && existsSync(nodedir)) args.push(`--nodedir=${nodedir}`);
}

const [cmd, pre] = nodeGyp();
const t0 = Date.now();
const r = spawnSync(cmd, [...pre, ...args], { cwd: root, env, encoding: 'utf8' });
if (r.status !== 0) {
  giveUp('the compile failed; set PROGGAN_NATIVE_VERBOSE=1 to see the log', `${r.stdout ?? ''}\n${r.stderr ?? ''}`);
}

// Load each once to catch link/runtime problems (e.g. libdnnl.so missing at run time).
const shmPath = join(root, 'build', 'Release', 'proggan_shm.node');
try {
  createRequire(import.meta.url)(shmPath);
} catch (err) {
  giveUp(`the shared-memory transport was built but does not load: ${err.message}`);
}
const secs = ((Date.now() - t0) / 1000).toFixed(1);
if (!withDnnl) {
  console.warn(
    `WARNING proggan: built the shared-memory transport only (${secs} s): ${shmPath}; native oneDNN backend not built ` +
      `(oneDNN headers (oneapi/dnnl/dnnl.hpp) not found), training falls back to the much slower pure-JS cpu backend. ${HOW}`,
  );
  process.exit(0);
}
const addonPath = join(root, 'build', 'Release', 'proggan_native.node');
try {
  const addon = createRequire(import.meta.url)(addonPath);
  console.log(`proggan: built native oneDNN backend (oneDNN ${addon.dnnlVersion()}) and the shared-memory transport (${secs} s): ${addonPath}, ${shmPath}`);
} catch (err) {
  giveUp(`the addon was built but does not load: ${err.message}`);
}
