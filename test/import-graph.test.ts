/**
 * DESIGN.md's dependency rules, checked on the import graph of src/ (read from the sources, no
 * bundler): cli -> models (units) -> training -> {data, distributed, metrics, losses} -> layers -> backend.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(__dirname, '..', 'src');

interface Edge {
  /** Importing file, relative to src/ (e.g. `training/trainer.ts`). */
  from: string;
  /** Imported module: a path relative to src/ (`models/wae/run.ts`) or a package (`@tensorflow/tfjs`, `node:fs`). */
  to: string;
  /** `import type` / `export type` (erased at run time). */
  typeOnly: boolean;
  /** `await import(...)`. */
  dynamic: boolean;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

function edgesOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const from = relative(SRC, file);
  const out: Edge[] = [];
  const add = (spec: string, typeOnly: boolean, dynamic: boolean) => {
    const to = spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
    out.push({ from, to, typeOnly, dynamic });
  };
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?\s+from\s+'([^']+)'/gm)) add(m[3] as string, m[2] !== undefined, false);
  for (const m of text.matchAll(/^\s*import\s+'([^']+)'/gm)) add(m[1] as string, false, false);
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) add(m[1] as string, false, true);
  return out;
}

const edges = tsFiles(SRC).flatMap(edgesOf);

/** Edges from files matching `from` to modules matching `to` (value and type imports alike). */
function violations(from: RegExp, to: RegExp, opts: { valuesOnly?: boolean; except?: RegExp } = {}): string[] {
  return edges
    .filter((e) => from.test(e.from) && to.test(e.to) && !(opts.valuesOnly && e.typeOnly) && !(opts.except && opts.except.test(e.from)))
    .map((e) => `${e.from} -> ${e.to}`);
}

describe('import graph of src/', () => {
  it('reads the imports (sanity)', () => {
    expect(edges.some((e) => e.from === 'training/trainer.ts' && e.to === '@tensorflow/tfjs')).toBe(true);
    expect(edges.some((e) => e.from === 'models/wae/index.ts' && e.to === 'models/wae/run.ts' && e.dynamic)).toBe(true);
  });

  it('layers/ import no training/, distributed/, cli/, models/, pino or node:*', () => {
    expect(violations(/^layers\//, /^(training|distributed|cli|models|completion)\/|^pino$|^node:/)).toEqual([]);
  });

  it('models/ import no cli/ or pino; only a unit\'s run.ts touches node:* or the trainer; networks import no training/ or distributed/', () => {
    expect(violations(/^models\//, /^cli\/|^pino$/)).toEqual([]);
    expect(violations(/^models\//, /^node:/, { except: /^models\/[^/]+\/run\.ts$/ })).toEqual([]);
    expect(violations(/^models\//, /^training\/trainer\.ts$/, { valuesOnly: true, except: /^models\/[^/]+\/run\.ts$/ })).toEqual([]);
    expect(violations(/^models\/.*networks\.ts$/, /^(training|distributed)\//)).toEqual([]);
    // The strategy is the one distribution seam a unit may see; never a transport.
    expect(violations(/^models\//, /^distributed\/(?!strategy\.ts$)/)).toEqual([]);
  });

  it('distributed/ imports no models/, training/ or cli/', () => {
    expect(violations(/^distributed\//, /^(models|training|cli)\//)).toEqual([]);
  });

  it('the trainer and the rest of training/ import no model, no cli/, and of distributed/ only the strategy', () => {
    expect(violations(/^training\//, /^(models|cli)\//)).toEqual([]);
    expect(violations(/^training\//, /^distributed\/(?!strategy\.ts$)/)).toEqual([]);
  });

  it('data/, losses/, metrics/ and completion/ import no models/ units, training/ or cli/', () => {
    expect(violations(/^(data|losses|metrics)\//, /^(models|training|distributed|cli)\//)).toEqual([]);
    expect(violations(/^completion\//, /^(training|distributed|cli)\//)).toEqual([]);
    expect(violations(/^completion\//, /^models\/[^/]+\/(?!networks\.ts$)/)).toEqual([]);
  });

  it('the CLI and the registry load no tfjs or sharp before a command runs (static imports only)', () => {
    const seen = new Set<string>();
    const heavy: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const e of edges.filter((x) => x.from === file && !x.typeOnly && !x.dynamic)) {
        if (/^@tensorflow\/|^sharp$/.test(e.to)) heavy.push(`${e.from} -> ${e.to}`);
        if (e.to.endsWith('.ts')) visit(e.to);
      }
    };
    for (const f of ['cli/main.ts', 'models/registry.ts']) visit(f);
    expect(seen.has('models/wae/index.ts')).toBe(true);
    expect(heavy).toEqual([]);
  });
});
