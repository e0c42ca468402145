#!/usr/bin/env node
// Bundles scripts/gpu/check.ts with tfjs and proggan's sources into one ES module,
// gpu-bundle/check.mjs, for machines without Node packages (see scripts/gpu/prepare.sh).
import { build } from 'esbuild';
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outfile = join(root, 'gpu-bundle', 'check.mjs');
await build({
  entryPoints: [join(root, 'scripts', 'gpu', 'check.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile,
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  alias: { sharp: join(root, 'scripts', 'gpu', 'no-sharp.mjs') },
  // CommonJS dependencies (tfjs, seedrandom) call require(): give the ES module one.
  banner: { js: "import { createRequire as __proggan_cr } from 'node:module'; const require = __proggan_cr(import.meta.url);" },
});
console.log(`bundled ${outfile} (${(statSync(outfile).size / 2 ** 20).toFixed(1)} MiB)`);
