/**
 * `proggan ls RUN` (alias `info`): what a run directory holds, read from its files only (no tfjs):
 * model and config, where it stands in its schedule, its checkpoints and the metrics measured at
 * their steps, and the newest status.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { MODELS } from '../models/registry.js';
import type { ModelConfig } from '../models/unit.js';
import { listCheckpoints } from '../training/checkpoint.js';
import { formatNumber, parseStatsJsonl } from '../training/stats.js';
import { UsageError } from '../util/errors.js';

/** What {@link describeRun} found in a run directory. */
export interface RunInfo {
  /** The run directory. */
  runDir: string;
  /** The model's registry name. */
  model: string;
  /** The run's resolved config (config.json). */
  config: Record<string, unknown>;
  /** Steps the newest status record reached (0 when none). */
  step: number;
  /** The config's target step count. */
  steps: number;
  /** The model's plan of the run (e.g. the ProGAN growth schedule), when it has one. */
  plan: string[];
  /** Committed checkpoints, oldest first, with the metrics of the evaluation at their step. */
  checkpoints: Array<{ dir: string; step: number; metrics: Record<string, number> }>;
  /** The newest status record of stats.jsonl, if any. */
  last: Record<string, unknown> | null;
}

/** Read a run directory's config.json, checkpoints and stats.jsonl. */
export async function describeRun(runDir: string): Promise<RunInfo> {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new UsageError(`${runDir}: no such run directory`);
  const cfgPath = join(runDir, 'config.json');
  if (!existsSync(cfgPath)) throw new UsageError(`${runDir} is not a proggan run directory (no config.json)`);
  const config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  const model = String(config['model']);
  const statsPath = join(runDir, 'stats.jsonl');
  const records = existsSync(statsPath) ? parseStatsJsonl(readFileSync(statsPath, 'utf8')) : [];
  const status = records.filter((r) => r['kind'] === undefined);
  const evals = records.filter((r) => r['kind'] === 'eval');
  const last = status[status.length - 1] ?? null;
  const checkpoints = (await listCheckpoints(runDir)).map((dir) => {
    const step = Number(/step-0*(\d+)$/.exec(dir)?.[1] ?? NaN);
    const ev = evals.filter((r) => r['step'] === step).pop();
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(ev ?? {})) if (typeof v === 'number' && !['step', 'kimg', 'time'].includes(k)) metrics[k] = v;
    return { dir, step, metrics };
  });
  const unit = MODELS.find((m) => m.name === model);
  const loop = config['loop'] as { steps?: number } | undefined;
  let plan: string[] = [];
  try {
    plan = unit?.plan?.(config as unknown as ModelConfig) ?? [];
  } catch {
    plan = []; // a config from another version: the rest still describes the run
  }
  const newest = checkpoints[checkpoints.length - 1];
  const step = Math.max(typeof last?.['step'] === 'number' ? last['step'] : 0, newest?.step ?? 0);
  return { runDir, model, config, step, steps: loop?.steps ?? NaN, plan, checkpoints, last };
}

/** The human form of {@link RunInfo}. */
export function formatRunInfo(info: RunInfo): string {
  const lines = [`${info.runDir}: ${info.model} run, step ${info.step}/${info.steps}${info.step >= info.steps ? ' (finished; raise --steps to continue)' : ''}`];
  if (info.plan.length > 0) {
    lines.push('schedule:');
    // Mark the stage the run stands in.
    for (const p of info.plan) {
      const m = /^steps (\d+)-(\d+):/.exec(p);
      const here = m && info.step >= Number(m[1]) && info.step <= Number(m[2]) + 1 && info.step < info.steps;
      lines.push(`  ${here ? '>' : ' '} ${p}`);
    }
  }
  lines.push(info.checkpoints.length > 0 ? 'checkpoints:' : 'checkpoints: none');
  for (const c of info.checkpoints) {
    const metrics = Object.entries(c.metrics).map(([k, v]) => `${k} ${formatNumber(v)}`).join('  ');
    lines.push(`  step ${c.step}  ${c.dir}${metrics ? `  ${metrics}` : ''}`);
  }
  if (info.last) {
    const shown = Object.entries(info.last).filter(([k, v]) => typeof v === 'number' && (k.startsWith('loss/') || k === 'img/s'));
    lines.push(`last status: ${shown.map(([k, v]) => `${k} ${formatNumber(v as number)}`).join('  ')}`);
  }
  lines.push(`config: ${join(info.runDir, 'config.json')}`);
  return lines.join('\n');
}

interface InfoArgs {
  run: string;
  json: boolean;
}

/** The yargs command module for `proggan ls RUN` (alias `info`). */
export const infoCommand: CommandModule<object, InfoArgs> = {
  command: 'ls <run>',
  aliases: ['info'],
  describe: 'show a run directory: model, schedule position, checkpoints and their metrics',
  builder: (y) =>
    (y as Argv)
      .positional('run', { type: 'string', demandOption: true, describe: 'run directory (of proggan train)' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON for machines' }) as unknown as Argv<InfoArgs>,
  handler: async (argv) => {
    const info = await describeRun(argv.run);
    process.stdout.write(argv.json ? `${JSON.stringify(info, null, 2)}\n` : `${formatRunInfo(info)}\n`);
  },
};
