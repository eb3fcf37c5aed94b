import * as tf from '@tensorflow/tfjs';
import { stream } from '../core/rng.js';
import type { Classifier, ModelSpec, Parameter } from './classifier.js';
import { plainMatMul } from './plain-matmul.js';

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

function uniformVariable(name: string, shape: [number, number], range: number, seed: number): tf.Variable<tf.Rank.R2> {
  const values = stream(seed, 'init', name).fillUniform(new Float32Array(shape[0] * shape[1]), -range, range);
  return tf.tidy(() => tf.variable(tf.tensor2d(values, shape), true, uniqueName(name)));
}

/** One dense layer x·W + b with the spec's constraint; the heads below give it a loss and probabilities. */
abstract class LinearClassifier implements Classifier {
  readonly parameters: readonly Parameter[];
  protected readonly w: tf.Variable<tf.Rank.R2>;
  protected readonly b: tf.Variable<tf.Rank.R1>;

  constructor(
    readonly spec: ModelSpec,
    outputs: number,
    initRange: number,
    seed: number,
  ) {
    this.w = uniformVariable('W', [spec.inputSize, outputs], initRange, seed);
    this.b = tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R1>([outputs]), true, uniqueName('b')));
    this.parameters = [
      { name: 'W', variable: this.w, role: 'weight' },
      { name: 'b', variable: this.b, role: 'bias' },
    ];
  }

  logits(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(plainMatMul(x, this.w), this.b);
  }

  trainingLogits(x: tf.Tensor2D): tf.Tensor2D {
    return this.logits(x);
  }

  constrain(): void {
    if (this.spec.maxColumnNorm !== null) applyMaxColumnNorm(this.w, this.spec.maxColumnNorm);
  }

  dispose(): void {
    this.w.dispose();
    this.b.dispose();
  }

  abstract loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D;
  abstract probabilities(logits: tf.Tensor2D): tf.Tensor2D;
}

/** Shallow softmax regression, 784 → K (§4): J = −log softmax(xW + b)_y, computed stably from the logits. */
export class SoftmaxRegression extends LinearClassifier {
  constructor(spec: ModelSpec, initRange: number, seed: number) {
    super(spec, spec.classes.length, initRange, seed);
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
    return tf.tidy((): tf.Tensor1D => {
      const picked = tf.sum(tf.mul(logits, tf.oneHot(labels, logits.shape[1])), 1);
      return tf.sub(tf.logSumExp(logits, 1), picked) as tf.Tensor1D;
    });
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
