/**
 * Adam whose bias correction is computed from the step count, so a resumed run continues bit for
 * bit. Used by every objective: checkpoints resume exactly, and ranks that receive rank 0's slots
 * continue exactly as rank 0 does.
 */
import * as tf from '@tensorflow/tfjs';

/** A named tensor as optimisers save and load their slots. */
type NamedTensor = Awaited<ReturnType<tf.Optimizer['getWeights']>>[number];

/**
 * Adam (Kingma & Ba) with the same update as `tf.train.adam`, except that the bias corrections
 * 1 - beta^t are computed from the step count t in double precision. tfjs's Adam keeps beta^t as a
 * float32 running product and rebuilds it with `pow` on `setWeights`, which differs in the last bits,
 * so a resumed run would drift from an uninterrupted one; this one continues bit for bit.
 *
 * Slots are positional (slot i belongs to the i-th gradient of `applyGradients`), as in tfjs, and
 * are saved as [iterations, m_0..m_k, v_0..v_k] named `<variable>/m` and `<variable>/v`.
 */
export class ResumableAdam extends tf.Optimizer {
  /** Registered class name. */
  static readonly className = 'ProgganAdam';
  private m: Array<{ name: string; variable: tf.Variable }> = [];
  private v: Array<{ name: string; variable: tf.Variable }> = [];
  private iterTensor: tf.Tensor | null = null;

  /** Learning rate, beta1, beta2 and epsilon as in `tf.train.adam`. */
  constructor(
    readonly learningRate: number,
    readonly beta1: number,
    readonly beta2: number,
    readonly epsilon: number,
  ) {
    super();
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const list = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor }));
    const t = this.iterations + 1;
    const c1 = 1 - this.beta1 ** t;
    const c2 = 1 - this.beta2 ** t;
    const registered = tf.engine().registeredVariables;
    tf.tidy(() => {
      list.forEach(({ name, tensor: g }, i) => {
        const value = registered[name];
        if (value === undefined) throw new Error(`ResumableAdam: no variable named ${name}`);
        const m = this.slot(this.m, i, `${name}/m`, value);
        const v = this.slot(this.v, i, `${name}/v`, value);
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        const step = tf.div(tf.div(mNew, c1), tf.add(tf.sqrt(tf.div(vNew, c2)), this.epsilon));
        value.assign(tf.add(value, tf.mul(step, -this.learningRate)));
      });
    });
    this.incrementIterations();
  }

  /**
   * [iterations, m..., v...]. The slots are the live variables and the iterations scalar is kept by
   * the optimizer until the next call or `dispose()`, so a caller that only reads them leaks nothing.
   */
  override async getWeights(): Promise<NamedTensor[]> {
    const slots = [...this.m, ...this.v].map((s) => ({ name: s.name, tensor: s.variable as tf.Tensor }));
    this.iterTensor?.dispose();
    const iter = await this.saveIterations();
    this.iterTensor = iter.tensor;
    return [iter, ...slots];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    if (rest.length % 2 !== 0) throw new Error(`ResumableAdam.setWeights: expected pairs of m and v slots, got ${rest.length} tensors`);
    this.disposeSlots();
    const k = rest.length / 2;
    const toSlot = (w: NamedTensor) => ({ name: w.name, variable: tf.variable(w.tensor, false) });
    this.m = rest.slice(0, k).map(toSlot);
    this.v = rest.slice(k).map(toSlot);
  }

  override dispose(): void {
    this.disposeSlots();
    this.iterTensor?.dispose();
    this.iterTensor = null;
    super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }

  private slot(slots: Array<{ name: string; variable: tf.Variable }>, i: number, name: string, like: tf.Variable): tf.Variable {
    let s = slots[i];
    if (s === undefined) {
      s = { name, variable: tf.variable(tf.zerosLike(like), false) };
      slots[i] = s;
    }
    return s.variable;
  }

  private disposeSlots(): void {
    for (const s of [...this.m, ...this.v]) s.variable.dispose();
    this.m = [];
    this.v = [];
  }
}

