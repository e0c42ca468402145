/**
 * The README's library snippets run as written: each ```ts block after an
 * `<!-- executed by test/e2e/readme.test.ts -->` line is transpiled (TypeScript, type-checked by its
 * own compile of the README in tsc's place: here only transpiled) and run by node from a file inside
 * this package, so `import ... from 'proggan'` resolves to the built dist/ as it does for a user.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..', '..');
const MARK = '<!-- executed by test/e2e/readme.test.ts -->';

/** The marked ```ts blocks of the README, in order. */
function snippets(): string[] {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const out: string[] = [];
  for (const part of text.split(MARK).slice(1)) {
    const m = /^\s*```ts\n([\s\S]*?)\n```/.exec(part);
    if (m?.[1]) out.push(m[1]);
  }
  return out;
}

describe('README library snippets', () => {
  const blocks = snippets();

  it('finds the WAE and the ProGAN/completion snippets', () => {
    expect(blocks.length).toBe(2);
    expect(blocks[1]).toContain('completeImage');
  });

  it.each(blocks.map((b, i) => [i, b] as const))('snippet %i runs with node against dist/', (i, code) => {
    expect(existsSync(join(root, 'dist', 'index.js')), 'dist/ is not built (npm run build)').toBe(true);
    const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    // Inside the package, so 'proggan' is the package's self-reference; the run happens in a temporary folder.
    const dir = join(root, '.vitest-tmp');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `readme-snippet-${i}-${process.pid}.mjs`);
    writeFileSync(file, js);
    const cwd = mkdtempSync(join(tmpdir(), 'proggan-readme-'));
    try {
      const r = spawnSync(process.execPath, [file], { cwd, encoding: 'utf8' });
      expect(r.status, r.stderr.slice(-3000)).toBe(0);
      if (i === 0) expect(r.stdout).toContain('[ 4, ');
      if (i === 1) {
        for (const png of ['completed.png', 'extended.png']) expect(existsSync(join(cwd, png)), png).toBe(true);
        expect(r.stdout).toMatch(/^16 /);
      }
    } finally {
      rmSync(file, { force: true });
    }
  }, 600_000);
});
