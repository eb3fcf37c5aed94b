import * as tf from '@tensorflow/tfjs-core';
import type { SoftmaxGradient } from './classifier.js';
import { withLogitGradient } from './linear.js';

/*
 * Losses of models whose classes are independent yes/no outputs (Appendix A's sigmoid top, §7's RBF): each class
 * k has its own p_k, nothing makes them sum to 1, and J(θ, x, y) = Σ_k BCE(p_k, [k = y])
 *   = −log p_y − Σ_{k≠y} log(1 − p_k),
 * the sum over classes (pylearn2's Sigmoid layer takes the mean), so the true class's term weighs as much as in the
 * softmax cross-entropy.
 * Both are computed from log-space outputs, never from rounded probabilities.
 */

/** 1 at the label's class, 0 elsewhere, as float32 ([n, k]). */
const oneHotOf = (labels: tf.Tensor1D, k: number): tf.Tensor2D =>
  // cast, not oneHot's dtype argument: tfjs-wasm's OneHot writes int32 bits whatever the dtype
  tf.cast(tf.oneHot(labels, k), 'float32') as tf.Tensor2D;

/**
 * Per-class binary cross-entropy of sigmoid outputs p_k = σ(z_k): softplus(−z_y) + Σ_{k≠y} softplus(z_k). Its
 * gradient is σ(z) − onehot(y), written in the forms of SoftmaxGradient:
 * - standard: autodiff through Σ_k softplus(z_k) − z_y, what a framework's sigmoid cross-entropy differentiates
 *   (tf's sigmoid_cross_entropy_with_logits: σ(z) − y). Its ∂/∂z_y = σ(z_y) − 1 rounds to 0 in float32 once σ(z_y)
 *   rounds to 1 (z_y above about 16.6), leaving only the other classes' push.
 * - softmax-minus-onehot: p − onehot(y) with p = σ(z) from the float32 sigmoid.
 * - exp-log-softmax-minus-onehot: exp(log σ(z)) − onehot(y), log σ(z) = −softplus(−z).
 * - stable: softplus(s ⊙ z) summed, s = −1 at the label and +1 elsewhere, as pylearn2's Sigmoid layer writes its
 *   cost (Y·softplus(−z) + (1 − Y)·softplus(z)): softplus's derivative σ is computed directly, so ∂/∂z_y =
 *   −σ(−z_y) stays non-zero until z_y passes float32's exp range (about 88).
 * Training uses the default (standard); the loss values agree to float rounding.
 */
export function sigmoidCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient: SoftmaxGradient = 'standard'): tf.Tensor1D {
  return tf.tidy((): tf.Tensor1D => {
    const target = oneHotOf(labels, logits.shape[1]);
    const value = (z: tf.Tensor2D, y: tf.Tensor2D) => tf.sub(tf.sum(tf.softplus(z), 1), tf.sum(tf.mul(z, y), 1)) as tf.Tensor1D;
    switch (gradient) {
      case 'standard':
        return value(logits, target);
      case 'softmax-minus-onehot':
        return withLogitGradient(logits, target, value, (z, y, dy) => tf.mul(tf.sub(tf.sigmoid(z), y), dy));
      case 'exp-log-softmax-minus-onehot':
        return withLogitGradient(logits, target, value, (z, y, dy) => tf.mul(tf.sub(tf.exp(tf.neg(tf.softplus(tf.neg(z)))), y), dy));
      case 'stable':
        return tf.sum(tf.softplus(tf.mul(logits, tf.sub(1, tf.mul(2, target)))), 1) as tf.Tensor1D;
    }
  });
}

const LN2 = Math.log(2);

/**
 * −log(1 − e^(−d)) for d ≥ 0, elementwise, accurate at both ends (Mächler's log1mexp): log(−expm1(−d)) for
 * d ≤ ln 2, where 1 − e^(−d) would cancel, and log1p(−e^(−d)) above, where expm1 would round to −1. Its gradient,
 * −1/expm1(d), is written out: autodiff through the tf.where would multiply the unused branch's infinite
 * derivative (at d = 0) by 0.
 */
const negLog1mExp = tf.customGrad<tf.Tensor>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [d, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([d]);
  const small = tf.lessEqual(d, LN2);
  return {
    value: tf.neg(tf.where(small, tf.log(tf.neg(tf.expm1(tf.neg(d)))), tf.log1p(tf.neg(tf.exp(tf.neg(d)))))),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.div(tf.neg(dy), tf.expm1(saved[0]!)),
  };
});

/**
 * Per-class binary cross-entropy of p_k = exp(−d_k) from the distances d ≥ 0 ([n, k]): d_y + Σ_{k≠y} −log(1 − e^(−d_k)).
 * log p_y = −d_y is exact, so the true class's term never saturates; a wrong class's term vanishes as p_k → 0.
 */
export function expDistanceCrossEntropy(distances: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy((): tf.Tensor1D => {
    const positive = oneHotOf(labels, distances.shape[1]);
    // the true class's entry goes into negLog1mExp as d + 1: masked out either way, but its d may be 0, and
    // 0 · ∞ there would be NaN in the value and the gradient
    const negatives = tf.mul(tf.sub(1, positive), negLog1mExp(tf.add(distances, positive)));
    const perClass = tf.add(tf.mul(positive, distances), negatives);
    return tf.sum(perClass, 1) as tf.Tensor1D;
  });
}
