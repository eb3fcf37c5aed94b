import * as tf from '@tensorflow/tfjs-core';
import { EVALUATION, type Classifier, type ForwardState, type ModelSpec, type Parameter, type SoftmaxGradient } from './classifier.js';
import { DenseLayer } from './dense.js';

/** J = logsumexp(z) − z_y per example, from logits z of shape [n, k] and the one-hot labels. */
const crossEntropy = (logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Tensor1D => tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, oneHot), 1));

/**
 * The gradient of log softmax(z) that never uses 1 − p_j: for an upstream gradient g, ∂/∂z_j = g_j·Σ_{k≠j} p_k −
 * p_j·Σ_{i≠j} g_i (the same as g_j − p_j·Σ_i g_i where Σ_k p_k = 1), each sum over the other classes taken
 * directly (a product with 1 − I), so it stays non-zero however close p_j is to 1 (see SoftmaxGradient).
 */
function stableLogSoftmaxGradient(p: tf.Tensor2D, g: tf.Tensor2D): tf.Tensor2D {
  const k = p.shape[1];
  const others = tf.sub(tf.ones([k, k]), tf.eye(k)) as tf.Tensor2D;
  return tf.sub(tf.mul(g, tf.matMul(p, others)), tf.mul(p, tf.matMul(g, others)));
}

/** log softmax(z) differentiated as g − (Σ g)·softmax(z), the probabilities from the float32 softmax. */
const softmaxLogSoftmax = tf.customGrad<tf.Tensor2D>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [z, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
  save([z]);
  return {
    value: tf.logSoftmax(z),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => tf.sub(dy, tf.mul(tf.sum(dy, 1, true), tf.softmax(saved[0]! as tf.Tensor2D))),
  };
});

/** log softmax(z) with stableLogSoftmaxGradient. */
const stableLogSoftmax = tf.customGrad<tf.Tensor2D>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [z, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
  const logP = tf.logSoftmax(z);
  save([logP]);
  return { value: logP, gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => stableLogSoftmaxGradient(tf.exp(saved[0]!) as tf.Tensor2D, dy) };
});

/**
 * log softmax(z), differentiated as `gradient` says (the values are identical). Upstream of a log softmax the
 * gradient is g − (Σ g)·p: standard and exp-log-softmax-minus-onehot both take p = exp(log softmax(z)) (tfjs's
 * logSoftmax), softmax-minus-onehot the float32 softmax; stable never forms 1 − p_j (stableLogSoftmaxGradient).
 */
export function logSoftmax(logits: tf.Tensor2D, gradient: SoftmaxGradient = 'standard'): tf.Tensor2D {
  if (gradient === 'stable') return stableLogSoftmax(logits);
  if (gradient === 'softmax-minus-onehot') return softmaxLogSoftmax(logits);
  return tf.logSoftmax(logits);
}

/**
 * A per-example loss J(z, y) of the logits z and one-hot labels y whose value is `value(z, y)` and whose gradient
 * with respect to z is `logitGradient(z, y, dy)`, dy the upstream gradient as a column [n, 1]: how a formulation of
 * ∂J/∂z is put in place of what autodiff of the value would compute.
 */
export function withLogitGradient(
  logits: tf.Tensor2D,
  oneHot: tf.Tensor2D,
  value: (z: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor1D,
  logitGradient: (z: tf.Tensor2D, y: tf.Tensor2D, dy: tf.Tensor2D) => tf.Tensor2D,
): tf.Tensor1D {
  return tf.customGrad<tf.Tensor1D>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [z, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([z, oneHot]); // kept for the backward pass, which runs after the caller's tidy has ended
    return {
      value: value(z, oneHot),
      gradFunc: (dy: tf.Tensor1D, saved: tf.Tensor[]) => {
        const [zs, y] = saved as [tf.Tensor2D, tf.Tensor2D];
        return logitGradient(zs, y, tf.reshape(dy, [-1, 1]) as tf.Tensor2D);
      },
    };
  })(logits);
}

/**
 * J = −log softmax(z)_y per example, computed stably from the logits z (never from clipped probabilities), with
 * its gradient computed as `gradient` says (see SoftmaxGradient; the values are identical).
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient: SoftmaxGradient = 'standard'): tf.Tensor1D {
  return tf.tidy((): tf.Tensor1D => {
    // cast, not oneHot's dtype argument: tfjs-wasm's OneHot writes int32 bits whatever the dtype (1 reads as 1.4e-45)
    const oneHot = tf.cast(tf.oneHot(labels, logits.shape[1]), 'float32') as tf.Tensor2D;
    switch (gradient) {
      case 'standard':
        return crossEntropy(logits, oneHot);
      case 'softmax-minus-onehot':
        return withLogitGradient(logits, oneHot, crossEntropy, (z, y, dy) => tf.mul(tf.sub(tf.softmax(z), y), dy));
      case 'exp-log-softmax-minus-onehot':
        return withLogitGradient(logits, oneHot, crossEntropy, (z, y, dy) => tf.mul(tf.sub(tf.exp(tf.logSoftmax(z)), y), dy));
      case 'stable':
        // ∂J/∂z_k = p_k for k ≠ y and ∂J/∂z_y = −Σ_{k≠y} p_k, never 1 − p_y
        return withLogitGradient(logits, oneHot, crossEntropy, (z, y, dy) =>
          stableLogSoftmaxGradient(tf.exp(tf.sub(z, tf.logSumExp(z, 1, true))) as tf.Tensor2D, tf.mul(tf.neg(y), dy) as tf.Tensor2D),
        );
    }
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
    this.layer = new DenseLayer('', 1, [spec.inputSize, outputs], initRange, [seed], spec.maxColumnNorm);
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

  abstract loss(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient?: SoftmaxGradient): tf.Tensor1D;
  abstract probabilities(logits: tf.Tensor2D): tf.Tensor2D;
  abstract logProbabilities(logits: tf.Tensor2D, gradient?: SoftmaxGradient): tf.Tensor2D;
}

/** Shallow softmax regression, 784 → K (§4). */
export class SoftmaxRegression extends LinearClassifier {
  constructor(spec: ModelSpec, initRange: number, seed: number) {
    super(spec, spec.classes.length, initRange, seed);
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient: SoftmaxGradient = 'standard'): tf.Tensor1D {
    return softmaxCrossEntropy(logits, labels, gradient);
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return tf.softmax(logits);
  }

  logProbabilities(logits: tf.Tensor2D, gradient: SoftmaxGradient = 'standard'): tf.Tensor2D {
    return logSoftmax(logits, gradient);
  }
}

/**
 * Binary logistic regression (§5): one logit z = wᵀx + b, P(y = +1 | x) = σ(z), y ∈ {−1, +1} with class 0 ↔ −1
 * and class 1 ↔ +1; J = softplus(−y·z). Its input gradient is −y·σ(−y·z)·w, so FGSM gives x − ε·y·sign(w).
 *
 * It has no SoftmaxGradient choice: softplus's derivative σ(−y·z) is computed directly, not as 1 − σ(y·z), so
 * it does not round to 0 until exp leaves float32's range (margin y·z ≳ 88), and with one logit it scales w as a
 * whole: it can vanish there (a zero-gradient example), but never turn.
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

  /** log σ(∓z) = −softplus(±z): no softmax, no gradient choice. */
  logProbabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy((): tf.Tensor2D => tf.neg(tf.concat([tf.softplus(logits), tf.softplus(tf.neg(logits))], 1)) as tf.Tensor2D);
  }
}
