import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACTIVATIONS, BINARY_OPS, REDUCE_OPS, UNARY_OPS } from '../src/backend/op-codes.js';

const NATIVE = join(import.meta.dirname, '..', 'src', 'native');

/** The enumerators of `enum <name> { kA = 0, kB = 1, ... }` in a C++ source, as { A: 0, B: 1 }. */
function cppEnum(file: string, name: string): Record<string, number> {
  const text = readFileSync(join(NATIVE, file), 'utf8');
  const body = new RegExp(`enum\\s+${name}\\s*\\{([^}]*)\\}`).exec(text)?.[1];
  if (body === undefined) throw new Error(`enum ${name} not found in src/native/${file}`);
  return Object.fromEntries([...body.matchAll(/k(\w+)\s*=\s*(\d+)/g)].map((m) => [m[1] as string, Number(m[2])]));
}

describe('op codes shared by TypeScript and the C++ addon', () => {
  it('match the C++ enums name by name', () => {
    expect(cppEnum('elementwise.cc', 'Unary')).toEqual(UNARY_OPS);
    expect(cppEnum('elementwise.cc', 'Binary')).toEqual(BINARY_OPS);
    expect(cppEnum('elementwise.cc', 'Reduce')).toEqual(REDUCE_OPS);
    expect(cppEnum('addon.cc', 'Act')).toEqual(ACTIVATIONS);
  });
});
