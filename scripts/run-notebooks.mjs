#!/usr/bin/env node
/**
 * Execute the tslab notebooks headlessly with Jupyter's nbconvert:
 *
 *   node scripts/run-notebooks.mjs                 # every examples/*.ipynb, outputs written back in place
 *   node scripts/run-notebooks.mjs --out DIR a.ipynb   # executed copies into DIR, sources untouched
 *
 * Adding a notebook = adding examples/<name>.ipynb. The tslab kernel spec is written into a
 * temporary JUPYTER_PATH (no `tslab install`, no Python IPython needed), pointing at the tslab found
 * by {@link findTslab}. tslab is not a dev dependency: its bundled TypeScript 5.0 installs a `tsc`
 * bin that would shadow the project's TypeScript in node_modules/.bin. CI installs it apart:
 * `npm i --prefix .tslab tslab@1.0.22` (zeromq's binary ships in its tarball: no download). tslab compiles each cell to CommonJS with its own TypeScript (node10 module
 * resolution, which ignores package self-references), so for the run `node_modules/proggan` links to
 * this clone: `import ... from 'proggan'` then resolves exactly as in a project that installed proggan
 * (top-level "types", the "require" export condition). Needs `jupyter nbconvert` (Debian: jupyter-nbconvert, python3-nbclient,
 * jupyter-client, python3-ipykernel) and the dev dependency tslab. Exits 2 when either is missing,
 * 1 when a notebook fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HELP = `usage: node scripts/run-notebooks.mjs [--out DIR] [--timeout SECONDS] [NOTEBOOK.ipynb...]

Execute tslab notebooks with jupyter nbconvert (default: every examples/*.ipynb, outputs
written back into the notebooks). --out DIR writes the executed copies to DIR instead.`;

/** The tslab executable: $PROGGAN_TSLAB, then .tslab/node_modules/.bin/tslab in this clone, then `tslab` on PATH; null if none. */
export function findTslab() {
  const candidates = [process.env.PROGGAN_TSLAB, path.join(root, '.tslab', 'node_modules', '.bin', 'tslab')];
  for (const c of candidates) if (c && existsSync(c)) return c;
  const which = spawnSync('sh', ['-c', 'command -v tslab'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() !== '' ? which.stdout.trim() : null;
}

/** Why notebooks cannot run here, or null when jupyter nbconvert and tslab are both present. */
export function notebookToolsMissing() {
  if (findTslab() === null) return 'tslab is not installed (npm i --prefix .tslab tslab@1.0.22, or set PROGGAN_TSLAB)';
  const nb = spawnSync('jupyter', ['nbconvert', '--version'], { encoding: 'utf8' });
  if (nb.error || nb.status !== 0) {
    return 'jupyter nbconvert is not installed (Debian: apt-get install jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel)';
  }
  return null;
}

function main(argv) {
  let out = null;
  let timeout = 900;
  const notebooks = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log(HELP);
      return 0;
    } else if (a === '--out') out = argv[++i];
    else if (a === '--timeout') timeout = Number(argv[++i]);
    else if (a.startsWith('-')) {
      console.error(`unknown option ${a}\n\n${HELP}`);
      return 2;
    } else notebooks.push(path.resolve(a));
  }
  if (out === undefined || !Number.isFinite(timeout) || timeout <= 0) {
    console.error(`--out needs a folder and --timeout a positive number of seconds\n\n${HELP}`);
    return 2;
  }
  if (notebooks.length === 0) {
    const dir = path.join(root, 'examples');
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.ipynb')) notebooks.push(path.join(dir, f));
  }
  const missing = notebookToolsMissing();
  if (missing) {
    console.error(`cannot execute notebooks: ${missing}`);
    return 2;
  }
  // A kernel spec of our own, so no global `tslab install` is needed.
  const jupyterPath = mkdtempSync(path.join(tmpdir(), 'proggan-jupyter-'));
  const link = path.join(root, 'node_modules', 'proggan');
  let linked = false;
  try {
    if (!existsSync(path.join(root, 'dist', 'index.js'))) {
      console.error('cannot execute notebooks: dist/ is not built (run npm run build)');
      return 2;
    }
    if (!lstatExists(link)) {
      symlinkSync('..', link, 'dir');
      linked = true;
    }
    const spec = path.join(jupyterPath, 'kernels', 'tslab');
    mkdirSync(spec, { recursive: true });
    writeFileSync(path.join(spec, 'kernel.json'), JSON.stringify({
      argv: [findTslab(), 'kernel', '--config-path', '{connection_file}'],
      display_name: 'TypeScript',
      language: 'typescript',
    }));
    const env = { ...process.env, JUPYTER_PATH: jupyterPath };
    let failed = 0;
    for (const nb of notebooks) {
      const args = ['nbconvert', '--to', 'notebook', '--execute', '--ExecutePreprocessor.kernel_name=tslab', ...(process.env.NB_ALLOW_ERRORS ? ['--allow-errors'] : []), `--ExecutePreprocessor.timeout=${timeout}`];
      if (out) args.push('--output-dir', path.resolve(out));
      else args.push('--inplace');
      args.push(nb);
      const t0 = Date.now();
      console.error(`executing ${path.relative(root, nb)} ...`);
      const r = spawnSync('jupyter', args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
      const secs = ((Date.now() - t0) / 1000).toFixed(0);
      if (r.status === 0) console.error(`ok ${path.relative(root, nb)} (${secs}s)`);
      else {
        failed++;
        console.error(`FAILED ${path.relative(root, nb)} (exit ${r.status ?? r.signal}, ${secs}s)`);
      }
    }
    return failed > 0 ? 1 : 0;
  } finally {
    if (linked) unlinkSync(link);
    rmSync(jupyterPath, { recursive: true, force: true });
  }
}

function lstatExists(p) {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
