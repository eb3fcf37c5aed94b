import * as tf from '@tensorflow/tfjs-core';
import { streamSeed } from '../core/rng.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier } from './classifier.js';

/**
 * Class probabilities of the deterministic model for n examples, batch by batch: [n × classes], row-major. Reads
 * asynchronously, as every read on a run's path does: WebGPU in Node has no synchronous read.
 */
export async function predictProbabilities(model: Classifier, x: Float32Array, batchSize = 2000): Promise<Float32Array> {
  const n = x.length / IMAGE_SIZE;
  const k = model.spec.classes.length;
  const out = new Float32Array(n * k);
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const probabilities = tf.tidy(() =>
      model.probabilities(model.logits(tf.tensor2d(x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]))),
    );
    try {
      out.set(await probabilities.data(), start * k);
    } finally {
      probabilities.dispose();
    }
  }
  return out;
}

/** The index of the largest value in each row of a [n × k] row-major array (ties: the first). */
export function argmaxRows(values: Float32Array, k: number): Int32Array {
  const n = values.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (values[i * k + j]! > values[i * k + best]!) best = j;
    out[i] = best;
  }
  return out;
}

/** Misclassified / all: the paper's error rate. */
export async function errorRate(model: Classifier, x: Float32Array, y: Int32Array, batchSize = 2000): Promise<number> {
  const predicted = argmaxRows(await predictProbabilities(model, x, batchSize), model.spec.classes.length);
  let wrong = 0;
  for (let i = 0; i < y.length; i++) if (predicted[i] !== y[i]) wrong++;
  return y.length === 0 ? 0 : wrong / y.length;
}

/**
 * Mean loss J over n examples in the training state: dropout masks drawn from `dropoutSeed` (batch b uses the
 * stream (dropoutSeed, b), so the value does not depend on anything but the seed and the batch size).
 */
export async function meanTrainingLoss(model: Classifier, x: Float32Array, y: Int32Array, dropoutSeed: number, batchSize = 1000): Promise<number> {
  let sum = 0;
  for (let start = 0, b = 0; start < y.length; start += batchSize, b++) {
    const end = Math.min(y.length, start + batchSize);
    const loss = tf.tidy(() => {
      const logits = model.logits(tf.tensor2d(x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]), {
        dropoutSeed: streamSeed(dropoutSeed, b),
        gradients: 'input',
      });
      return tf.sum(model.loss(logits, tf.tensor1d(y.subarray(start, end), 'int32')));
    });
    try {
      sum += (await loss.data())[0]!;
    } finally {
      loss.dispose();
    }
  }
  return y.length === 0 ? 0 : sum / y.length;
}
