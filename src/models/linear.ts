import * as tf from '@tensorflow/tfjs';
import { EVALUATION, type Classifier, type ForwardState, type ModelSpec, type Parameter } from './classifier.js';
import { DenseLayer } from './dense.js';

/** J = −log softmax(z)_y per example, computed stably from the logits z (never from clipped probabilities). */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy((): tf.Tensor1D => {
    const picked = tf.sum(tf.mul(logits, tf.oneHot(labels, logits.shape[1])), 1);
    return tf.sub(tf.logSumExp(logits, 1), picked) as tf.Tensor1D;
  });
}

/** One dense layer x·W + b with the spec's constraint; the heads below give it a loss and probabilities. */
abstract class LinearClassifier implements Classifier {
  readonly parameters: readonly Parameter[];
  protected readonly layer: DenseLayer;

  constructor(
    readonly spec: ModelSpec,
    outputs: number,
    initRange: number,
    seed: number,
  ) {
    this.layer = new DenseLayer('', 1, [spec.inputSize, outputs], initRange, seed, spec.maxColumnNorm);
    this.parameters = this.layer.parameters;
  }

  /** No dropout here: the training state is the deterministic network. */
  logits(x: tf.Tensor2D, state: ForwardState = EVALUATION): tf.Tensor2D {
    return this.layer.apply(x, state.gradients);
  }

  constrain(): void {
    this.layer.constrain();
  }

  reinitialize(): void {
    this.layer.reinitialize();
  }

  dispose(): void {
    this.layer.dispose();
  }

  abstract loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D;
  abstract probabilities(logits: tf.Tensor2D): tf.Tensor2D;
}

/** Shallow softmax regression, 784 → K (§4). */
export class SoftmaxRegression extends LinearClassifier {
  constructor(spec: ModelSpec, initRange: number, seed: number) {
    super(spec, spec.classes.length, initRange, seed);
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
    return softmaxCrossEntropy(logits, labels);
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return tf.softmax(logits);
  }
}

/**
 * Binary logistic regression (§5): one logit z = wᵀx + b, P(y = +1 | x) = σ(z), y ∈ {−1, +1} with class 0 ↔ −1
 * and class 1 ↔ +1; J = softplus(−y·z). Its input gradient is −y·σ(−y·z)·w, so FGSM gives x − ε·y·sign(w).
 */
export class LogisticRegression extends LinearClassifier {
  constructor(spec: ModelSpec, initRange: number, seed: number) {
    super(spec, 1, initRange, seed);
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
    return tf.tidy((): tf.Tensor1D => {
      const y = tf.sub(tf.mul(tf.cast(labels, 'float32'), 2), 1);
      return tf.softplus(tf.neg(tf.mul(y, tf.reshape(logits, [-1])))) as tf.Tensor1D;
    });
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy((): tf.Tensor2D => {
      const p = tf.sigmoid(logits);
      return tf.concat([tf.sub(1, p), p], 1) as tf.Tensor2D;
    });
  }
}
