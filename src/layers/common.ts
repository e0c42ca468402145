/**
 * Shared helpers for the custom layers: the tfjs-layers types that the package does not export by
 * name, and small checks used by every layer.
 */
import * as tf from '@tensorflow/tfjs';

/** Constructor options of `tf.layers.Layer` (name, trainable, inputShape, ...). */
export type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** Keyword arguments passed to `Layer.call`. */
export type LayerKwargs = Parameters<tf.layers.Layer['call']>[1];

/** A shape as tfjs-layers writes it: `null` for an unknown (batch) dimension. */
export type LayerShape = Array<number | null>;

/** Package key under which every proggan layer registers (`proggan>ClassName`). */
export const LAYER_PACKAGE = 'proggan';

/** The single tensor of a call whose inputs may be a tensor or a one-element list. */
export function singleInput(inputs: tf.Tensor | tf.Tensor[], layer: string): tf.Tensor {
  if (Array.isArray(inputs)) {
    const [first] = inputs;
    if (inputs.length !== 1 || first === undefined) {
      throw new Error(`${layer} expects one input tensor, got ${inputs.length}`);
    }
    return first;
  }
  return inputs;
}

/** The single shape of a `computeOutputShape` call (unwraps a one-element list of shapes). */
export function singleShape(shape: tf.Shape | tf.Shape[], layer: string): LayerShape {
  if (shape.length > 0 && Array.isArray(shape[0])) {
    const shapes = shape as tf.Shape[];
    const [first] = shapes;
    if (shapes.length !== 1 || first === undefined) {
      throw new Error(`${layer} expects one input shape, got ${shapes.length}`);
    }
    return first;
  }
  return shape as LayerShape;
}

/**
 * Apply a layer to concrete tensors and return the single tensor result. `Layer.apply` is typed for
 * symbolic use too; this narrows it for the eager code paths of the networks.
 */
export function applyLayer(layer: tf.layers.Layer, inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  const out = layer.apply(inputs);
  if (!(out instanceof tf.Tensor)) {
    throw new Error(`layer ${layer.name} did not return a single tensor`);
  }
  return out;
}
