/**
 * The contract of a model unit: everything the CLI, the library API, `--resume` and the worker entry
 * need to know about a model, in one typed descriptor registered once (src/models/registry.ts).
 *
 * A descriptor has a light part (name, default config, presets, validation, CLI flags) that imports
 * neither tfjs nor node:*, so `proggan train --help` lists models and presets without loading tfjs,
 * and a heavy part ({@link ModelDescriptor.load}) imported lazily when a run starts. The heavy part
 * opens the model's data, builds its objective and networks and hands them to the one trainer.
 */
import type { Logger } from '../util/logger.js';
import type { Strategy } from '../distributed/strategy.js';
import type { ConfigFlag, PartialConfig } from '../training/config.js';
import type { RunLoopOptions } from '../training/run-dir.js';
import type { TrainResult } from '../training/trainer.js';

/** Every model's config is a JSON object naming its model; the rest is the model's own. */
export interface ModelConfig {
  /** The model's registry name; written to config.json and checkpoints (set by the command, not the config). */
  model: string;
}

/** One command-line flag of `proggan train` and the config value it sets. */
export type ModelFlag = ConfigFlag;

/** Options of {@link ModelRuntime.train}. */
export interface ModelTrainOptions<C extends ModelConfig> extends RunLoopOptions {
  /** The resolved, validated config. */
  config: C;
  /** Run directory: config.json, checkpoints/, samples/, stats.jsonl. */
  runDir: string;
  /** Continue from the newest good checkpoint in runDir. Default false. */
  resume?: boolean;
  /** JSON logger. Default silent. */
  logger?: Logger;
  /** Data-parallel strategy (how replicas reduce and agree). Default one device. */
  strategy?: Strategy;
}

/** The heavy part of a model unit (loads tfjs): what a run of the model does. */
export interface ModelRuntime<C extends ModelConfig> {
  /** Open the data, build the objective, train (or resume) through the generic trainer. */
  train(opts: ModelTrainOptions<C>): Promise<TrainResult>;
}

/** A model unit: registered once in src/models/registry.ts. */
export interface ModelDescriptor<C extends ModelConfig = ModelConfig> {
  /** Registry name (`wae`, `progan`, `gan3d`): the `proggan train <model>` positional and config.json's `model`. */
  readonly name: C['model'];
  /** One line for `--help`. */
  readonly summary: string;
  /** The typed default config (the reference's numbers). Also the schema unknown keys and types are checked against. */
  defaults(): C;
  /** Named presets, smallest first; `tiny` should train in seconds on the pure-JS backend. */
  readonly presets: Readonly<Record<string, PartialConfig<C>>>;
  /**
   * Optional config keys absent from {@link defaults} (dotted path -> JSON type), e.g.
   * `{ 'data.dir': 'string', 'wae.filters': 'number[]' }`, so config files may set them.
   */
  readonly optionalKeys?: Readonly<Record<string, 'number' | 'string' | 'boolean' | 'number[]'>>;
  /** Range and consistency checks of a merged config; throws a UsageError naming the flag to fix. */
  validate(config: C): void;
  /** The `proggan train` flags this model reads (shared ones such as `--steps` included). */
  readonly flags: readonly ModelFlag[];
  /**
   * The metric of the objective's `evaluate()` that picks the best-by-metric checkpoint kept in
   * `checkpoints/best/` (outside `--keep`), and whether lower or higher is better. Unset: no best
   * checkpoint is kept.
   */
  readonly bestMetric?: { name: string; mode: 'min' | 'max' };
  /** Import the heavy part (tfjs, networks, objective). */
  load(): Promise<ModelRuntime<C>>;
}

/**
 * Identity with a type check: write a unit's descriptor as `export const waeModel = defineModel({...})`
 * so its config type flows into every field.
 */
export function defineModel<C extends ModelConfig>(d: ModelDescriptor<C>): ModelDescriptor<C> {
  return d;
}
