/** Named variables of tfjs-layers models, in a stable order, for optimisers, checkpoints and broadcasts. */
import * as tf from '@tensorflow/tfjs';

/** A tfjs-layers weight: its stable (un-uniquified) name and its backing variable. */
function backing(w: tf.LayerVariable): tf.Variable {
  const v = w.read();
  if (!(v instanceof tf.Variable)) throw new Error(`layer weight ${w.originalName} is not backed by a tf.Variable`);
  return v;
}

/**
 * Every weight of `model` (trainable and not, e.g. batch-norm moving statistics) as `[prefix/name, variable]`,
 * in the model's own order. Names use `originalName`, which does not depend on how many models this process built.
 */
export function modelVariables(prefix: string, model: tf.LayersModel): Array<[string, tf.Variable]> {
  const out: Array<[string, tf.Variable]> = [];
  const seen = new Set<string>();
  for (const w of model.weights) {
    const name = `${prefix}/${w.originalName}`;
    if (seen.has(name)) throw new Error(`two weights of ${model.name} share the name ${w.originalName}; give their layers distinct names`);
    seen.add(name);
    out.push([name, backing(w)]);
  }
  return out;
}

/** The trainable variables of `model`, in the model's order. */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map(backing);
}

/** Copies of the variables' values (for collectives, which work in place on Float32Arrays). */
export async function readValues(vars: tf.Variable[]): Promise<Float32Array[]> {
  return Promise.all(vars.map(async (v) => new Float32Array((await v.data()) as Float32Array)));
}

/** Assign `values[i]` (in the variable's shape) to `vars[i]`. */
export function assignValues(vars: tf.Variable[], values: Float32Array[]): void {
  vars.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(values[i] as Float32Array, v.shape, 'float32'))));
}
