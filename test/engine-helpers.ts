import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/select.js';
import type { Split } from '../src/data/dataset.js';
import { GpuRuntime } from '../src/engine/runtime.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier, ModelSpec } from '../src/models/classifier.js';

/**
 * The engine's runtime on tfjs's webgpu backend, on whatever adapter is here (Mesa's lavapipe where there is no GPU,
 * as CI installs it). Shapes in engine tests stay small: lavapipe is a CPU.
 */
export async function engineRuntime(): Promise<GpuRuntime> {
  await initBackend('webgpu');
  return GpuRuntime.ofTfjsBackend();
}

/** The largest |a − b| / max(|b|, floor) over two arrays of equal length. */
export function maxRelativeDifference(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  let most = 0;
  for (let i = 0; i < a.length; i++) most = Math.max(most, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return most;
}

/** Labels from the model's own clean predictions, `flipped` of them changed: a clean error of flipped / n that FGSM raises visibly. */
export async function labelled(model: Classifier, x: Float32Array, n: number, flipped: number): Promise<Split> {
  const predicted = tf.tidy(() => tf.argMax(model.probabilities(model.logits(tf.tensor2d(x, [n, 784]))), 1));
  const y = new Int32Array(await predicted.data());
  predicted.dispose();
  for (let i = 0; i < flipped; i++) y[i * 3] = (y[i * 3]! + 1) % model.spec.classes.length;
  return { name: 'test', x, y, n };
}

/** Multiplies every parameter by `factor` (each layer's logits scale with it: the product over layers). */
export function scale(model: Classifier, factor: number): void {
  for (const p of model.parameters) {
    const scaled = tf.mul(p.variable, factor);
    p.variable.assign(scaled);
    scaled.dispose();
  }
}

/** A small maxout network (784 → 7×3 → 5×2 → 10, no dropout): the engine tests' network. */
export const ENGINE_MAXOUT: Extract<ModelSpec, { kind: 'maxout' }> = {
  kind: 'maxout',
  inputSize: 784,
  classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  maxColumnNorm: null,
  layers: [
    { units: 7, pieces: 3 },
    { units: 5, pieces: 2 },
  ],
  dropout: null,
  top: 'softmax',
  sigmoidLoss: 'sum',
};

export const SOFTMAX_REGRESSION: ModelSpec = { kind: 'softmax', inputSize: 784, classes: ENGINE_MAXOUT.classes, maxColumnNorm: null };

/** §7's RBF network on MNIST's digits, its centres starting as `centres` says, every precision at 0.05. */
export const rbfSpec = (
  output: 'independent' | 'softmax',
  precision: 'clamp' | 'exp',
  centres: 'class-means' | 'examples' = 'class-means',
): ModelSpec => ({
  kind: 'rbf',
  inputSize: 784,
  classes: ENGINE_MAXOUT.classes,
  maxColumnNorm: null,
  output,
  precision,
  init: { centres, precision: 0.05 },
});

/** Three small networks of the engine tests, built from `seed` and scaled to logits of about ±0.5: a maxout network, a sigmoid-top one and softmax regression. */
export function threeNetworks(seed: number): Classifier[] {
  const specs: [ModelSpec, number][] = [
    [ENGINE_MAXOUT, 5],
    [{ ...ENGINE_MAXOUT, top: 'sigmoid' }, 5],
    [SOFTMAX_REGRESSION, 10],
  ];
  return specs.map(([spec, factor], i) => {
    const model = buildModel(spec, 0.05, seed + i);
    scale(model, factor);
    return model;
  });
}
