import * as tf from '@tensorflow/tfjs';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier } from './classifier.js';

/** Class probabilities of the deterministic model for n examples, batch by batch: [n × classes], row-major. */
export function predictProbabilities(model: Classifier, x: Float32Array, batchSize = 2000): Float32Array {
  const n = x.length / IMAGE_SIZE;
  const k = model.spec.classes.length;
  const out = new Float32Array(n * k);
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const probabilities = tf.tidy(() =>
      model.probabilities(model.logits(tf.tensor2d(x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]))),
    );
    out.set(probabilities.dataSync(), start * k);
    probabilities.dispose();
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
export function errorRate(model: Classifier, x: Float32Array, y: Int32Array, batchSize = 2000): number {
  const predicted = argmaxRows(predictProbabilities(model, x, batchSize), model.spec.classes.length);
  let wrong = 0;
  for (let i = 0; i < y.length; i++) if (predicted[i] !== y[i]) wrong++;
  return y.length === 0 ? 0 : wrong / y.length;
}
