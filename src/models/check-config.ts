/**
 * Load-time checks of a config layer (a --config file, a run's config.json) against a model's typed
 * defaults: unknown keys (with a did-you-mean, or the model they belong to), JSON types ("10" is not
 * a number) and `model`. Generic: driven by {@link ModelDescriptor.defaults} and
 * {@link ModelDescriptor.optionalKeys}; ranges stay in each model's `validate`.
 */
import { UsageError } from '../util/errors.js';
import type { ModelConfig, ModelDescriptor } from './unit.js';

type JsonType = 'number' | 'string' | 'boolean' | 'number[]';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How a JSON value reads in a message: `the string "10"`, `an array`, `null`, `the number 3`. */
function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object';
  return `the ${typeof v} ${String(v)}`;
}

function typeOfDefault(v: unknown): JsonType | 'object' | 'record' | 'array' | null {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'boolean';
  if (Array.isArray(v)) return v.every((x) => typeof x === 'number') ? 'number[]' : 'array';
  if (isPlainObject(v)) return Object.keys(v).length === 0 ? 'record' : 'object';
  return null;
}

function matches(v: unknown, t: JsonType): boolean {
  if (t === 'number') return typeof v === 'number' && Number.isFinite(v);
  if (t === 'number[]') return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  return typeof v === t;
}

function expected(t: JsonType): string {
  return t === 'number[]' ? 'an array of numbers' : `a ${t}`;
}

/** Edit distance, for did-you-mean. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0] as number;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j] as number;
      d[j] = Math.min(cur + 1, (d[j - 1] as number) + 1, prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length] as number;
}

/** The value at a dotted path of an object, or undefined. */
function at(obj: unknown, path: string[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/**
 * Throw a {@link UsageError} naming `source` (e.g. `--config run.json`) at the first key of `layer`
 * that `unit`'s config does not have or whose JSON type is wrong. `models` (the registry) lets a key of
 * another model be named as such.
 */
export function checkConfigLayer(unit: ModelDescriptor<ModelConfig>, layer: Record<string, unknown>, source: string, models: readonly ModelDescriptor<ModelConfig>[] = []): void {
  const defaults = unit.defaults() as unknown as Record<string, unknown>;
  const optional = unit.optionalKeys ?? {};
  const fail = (msg: string): never => {
    throw new UsageError(`${source}: ${msg}`);
  };
  if ('model' in layer && layer['model'] !== unit.name) {
    fail(`\`model\` is set by the command, not the config: it says ${describeValue(layer['model'])}, but this command trains ${unit.name}` +
      (typeof layer['model'] === 'string' && models.some((m) => m.name === layer['model']) ? ` (use \`proggan train ${layer['model']}\` for that model)` : ''));
  }
  const walk = (obj: Record<string, unknown>, schema: Record<string, unknown>, path: string[]) => {
    for (const [key, value] of Object.entries(obj)) {
      const p = [...path, key];
      const name = p.join('.');
      if (name === 'model') continue;
      if (value === undefined) continue;
      const opt = optional[name];
      if (!(key in schema) && opt === undefined) {
        const siblings = [...Object.keys(schema), ...Object.keys(optional).filter((k) => k.startsWith(path.length ? `${path.join('.')}.` : '') && k.split('.').length === p.length).map((k) => k.split('.').pop() as string)];
        const owner = models.find((m) => m.name !== unit.name && (at(m.defaults(), p) !== undefined || (m.optionalKeys ?? {})[name] !== undefined));
        if (owner) fail(`"${name}" belongs to ${owner.name}, not ${unit.name}`);
        const near = siblings.filter((s) => s !== 'model').map((s) => ({ s, d: distance(key, s) })).sort((a, b) => a.d - b.d)[0];
        const hint = near && near.d <= Math.max(2, Math.floor(key.length / 3)) ? `; did you mean "${[...path, near.s].join('.')}"?` : '';
        fail(`"${name}" is not a setting of ${unit.name}${hint}`);
      }
      if (opt !== undefined) {
        if (!matches(value, opt)) fail(`${name}: expected ${expected(opt)}, got ${describeValue(value)}`);
        continue;
      }
      const def = schema[key];
      const t = typeOfDefault(def);
      if (t === 'object') {
        if (!isPlainObject(value)) fail(`${name}: expected an object, got ${describeValue(value)}`);
        walk(value as Record<string, unknown>, def as Record<string, unknown>, p);
      } else if (t === 'record') {
        if (!isPlainObject(value)) fail(`${name}: expected an object, got ${describeValue(value)}`);
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          if (!matches(v, 'number')) fail(`${name}.${k}: expected a number, got ${describeValue(v)}`);
        }
      } else if (t === 'array') {
        if (!Array.isArray(value)) fail(`${name}: expected an array, got ${describeValue(value)}`);
      } else if (t !== null && !matches(value, t)) {
        fail(`${name}: expected ${expected(t)}, got ${describeValue(value)}`);
      }
    }
  };
  walk(layer, defaults, []);
}
