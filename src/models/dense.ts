import * as tf from '@tensorflow/tfjs-core';
import { stream } from '../core/rng.js';
import type { Parameter } from './classifier.js';
import { denseMatMul, type Gradients } from '../backend/kernels.js';

/** Rescales each column of `w` (the weights into one output) down to L2 norm `maxNorm` where larger. */
export function applyMaxColumnNorm(w: tf.Variable, maxNorm: number): void {
  const constrained = tf.tidy(() => {
    const norms = tf.sqrt(tf.sum(tf.square(w), 0, true));
    const scale = tf.minimum(1, tf.div(maxNorm, tf.maximum(norms, 1e-12)));
    return tf.mul(w, scale);
  });
  w.assign(constrained);
  constrained.dispose();
}

let variableCount = 0;
/** tfjs variable names must be unique in the process; several models may coexist (tests, ensembles). */
const uniqueName = (name: string): string => `${name}_${++variableCount}`;

/**
 * x·W + b with W drawn from Uniform(−initRange, initRange) by the named stream (seed, "init", name) and b = 0,
 * as pylearn2's irange initialisation; each column of W (the weights into one output) is max-normed.
 */
export class DenseLayer {
  readonly w: tf.Variable<tf.Rank.R2>;
  readonly b: tf.Variable<tf.Rank.R1>;
  readonly parameters: Parameter[];

  constructor(
    private readonly name: string,
    readonly layer: number,
    private readonly shape: [number, number],
    private readonly initRange: number,
    private readonly seed: number,
    private readonly maxColumnNorm: number | null,
  ) {
    const suffix = name ? `_${name}` : '';
    this.w = tf.tidy(() => tf.variable(this.initialWeights(), true, uniqueName(`W${suffix}`)));
    this.b = tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R1>([shape[1]]), true, uniqueName(`b${suffix}`)));
    this.parameters = [
      { name: `W${name}`, variable: this.w, role: 'weight', layer },
      { name: `b${name}`, variable: this.b, role: 'bias', layer },
    ];
  }

  private initialWeights(): tf.Tensor2D {
    const values = stream(this.seed, 'init', `W${this.name}`).fillUniform(
      new Float32Array(this.shape[0] * this.shape[1]),
      -this.initRange,
      this.initRange,
    );
    return tf.tensor2d(values, this.shape);
  }

  apply(x: tf.Tensor2D, gradients: Gradients): tf.Tensor2D {
    return tf.add(denseMatMul(x, this.w, gradients), this.b);
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
