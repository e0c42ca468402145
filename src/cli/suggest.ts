/** "Did you mean" for mistyped flags: yargs strict mode names the unknown ones, this finds the nearest known. */

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** The known flag closest to `unknown` (at most 2 edits, or a prefix of it), or null. */
export function nearestFlag(unknown: string, known: readonly string[]): string | null {
  const u = unknown.replace(/^-+/, '');
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = k.startsWith(u) && u.length >= 3 ? 0.5 : editDistance(u, k);
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best !== null && bestD <= Math.min(2, Math.max(1, Math.floor(u.length / 3))) ? best : null;
}

/**
 * Add suggestions to a yargs "Unknown argument(s): a, b" message, e.g.
 * `Unknown argument: stepz (did you mean --steps?)`; other messages come back unchanged.
 */
export function withSuggestions(msg: string, known: readonly string[]): string {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m || m[1] === undefined) return msg;
  const hints = m[1].split(', ').map((u) => {
    const near = nearestFlag(u, known);
    return near ? `--${u.replace(/^-+/, '')} (did you mean --${near}?)` : `--${u.replace(/^-+/, '')}`;
  });
  return `unknown option${hints.length > 1 ? 's' : ''}: ${hints.join(', ')}`;
}
