import * as tf from '@tensorflow/tfjs-core';
import { stream } from '../core/rng.js';
import type { Parameter } from './classifier.js';
import { columnNormScale, denseMatMul, type Gradients } from '../backend/kernels.js';

/**
 * Rescales each column of `w` (the weights into one output) down to L2 norm `maxNorm` where larger; for stacked
 * seeds ([seeds, in, out]) each seed's columns.
 */
export function applyMaxColumnNorm(w: tf.Variable, maxNorm: number): void {
  const constrained = tf.tidy(() => tf.mul(w, columnNormScale(w, maxNorm)));
  w.assign(constrained);
  constrained.dispose();
}

let variableCount = 0;
/** tfjs variable names must be unique in the process; several models may coexist (tests, ensembles). */
const uniqueName = (name: string): string => `${name}_${++variableCount}`;

/**
 * x·W + b with W drawn from Uniform(−initRange, initRange) by the named stream (seed, "init", name) and b = 0,
 * as pylearn2's irange initialisation; each column of W (the weights into one output) is max-normed.
 *
 * Given several seeds, the layer is that many layers stacked on a leading seed axis (W [seeds, in, out], b
 * [seeds, 1, out]), each initialised as the layer of its seed alone: x's rows are grouped by seed (the first
 * n / seeds rows go through seed 1's layer, and so on) and one batched matMul serves them all.
 */
export class DenseLayer {
  readonly w: tf.Variable;
  readonly b: tf.Variable;
  readonly parameters: Parameter[];

  constructor(
    private readonly name: string,
    readonly layer: number,
    private readonly shape: [number, number],
    private readonly initRange: number,
    private readonly seeds: readonly number[],
    private readonly maxColumnNorm: number | null,
  ) {
    const suffix = name ? `_${name}` : '';
    const biasShape = seeds.length === 1 ? [shape[1]] : [seeds.length, 1, shape[1]];
    this.w = tf.tidy(() => tf.variable(this.initialWeights(), true, uniqueName(`W${suffix}`)));
    this.b = tf.tidy(() => tf.variable(tf.zeros(biasShape), true, uniqueName(`b${suffix}`)));
    this.parameters = [
      { name: `W${name}`, variable: this.w, role: 'weight', layer },
      { name: `b${name}`, variable: this.b, role: 'bias', layer },
    ];
  }

  private initialWeights(): tf.Tensor {
    const [rows, columns] = this.shape;
    const lanes = this.seeds.map((seed) =>
      stream(seed, 'init', `W${this.name}`).fillUniform(new Float32Array(rows * columns), -this.initRange, this.initRange),
    );
    if (lanes.length === 1) return tf.tensor2d(lanes[0]!, this.shape);
    const all = new Float32Array(lanes.length * rows * columns);
    lanes.forEach((values, i) => all.set(values, i * rows * columns));
    return tf.tensor3d(all, [lanes.length, rows, columns]);
  }

  apply(x: tf.Tensor2D, gradients: Gradients): tf.Tensor2D {
    const lanes = this.seeds.length;
    if (lanes === 1) return tf.add(denseMatMul(x, this.w as tf.Tensor2D, gradients), this.b);
    const [n, width] = x.shape;
    const perSeed = tf.reshape(x, [lanes, n / lanes, width]) as tf.Tensor3D;
    return tf.reshape(tf.add(denseMatMul(perSeed, this.w as tf.Tensor3D, gradients), this.b), [n, this.shape[1]]);
  }
  constrain(): void {
    if (this.maxColumnNorm !== null) applyMaxColumnNorm(this.w, this.maxColumnNorm);
  }

  reinitialize(): void {
    tf.tidy(() => {
      this.w.assign(this.initialWeights());
      this.b.assign(tf.zerosLike(this.b));
    });
  }

  dispose(): void {
    this.w.dispose();
    this.b.dispose();
  }
}
