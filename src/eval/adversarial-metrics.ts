import * as tf from '@tensorflow/tfjs-core';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier } from '../models/classifier.js';
import { classificationMetrics, type ClassificationMetrics } from './metrics.js';

/**
 * Makes adversarial examples for one batch: one [n, D] tensor per case (e.g. per ε), which the caller disposes.
 * `x` and `y` are the batch's clean images and true class indices, `firstRow` the index of its first row in the split.
 */
export type AdversarialBatch = (x: tf.Tensor2D, y: tf.Tensor1D, firstRow: number) => tf.Tensor2D[];

/**
 * The metrics of `scorer` on the adversarial examples `make` produces for every batch of `split`, one entry per
 * case. Scored on the device, read asynchronously (WebGPU in Node has no synchronous read); `onBatch` hears how
 * many examples are done.
 */
export async function adversarialMetrics(
  scorer: Classifier,
  split: Split,
  batchSize: number,
  make: AdversarialBatch,
  onBatch: (done: number) => void = () => {},
): Promise<ClassificationMetrics[]> {
  const k = scorer.spec.classes.length;
  let probabilities: Float32Array[] = [];
  for (let start = 0; start < split.n; start += batchSize) {
    const end = Math.min(split.n, start + batchSize);
    const scored = tf.tidy(() => {
      const x = tf.tensor2d(split.x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]);
      const y = tf.tensor1d(split.y.subarray(start, end), 'int32');
      return make(x, y, start).map((examples) => scorer.probabilities(scorer.logits(examples)));
    });
    try {
      if (start === 0) probabilities = scored.map(() => new Float32Array(split.n * k));
      for (const [c, p] of scored.entries()) probabilities[c]!.set(await p.data(), start * k);
    } finally {
      tf.dispose(scored);
    }
    onBatch(end);
  }
  return probabilities.map((p) => classificationMetrics(p, split.y, k));
}
