import * as tf from '@tensorflow/tfjs-core';

/**
 * sign(x) ∈ {−1, 0, +1} exactly. tfjs-backend-wasm 4.22's Sign kernel returns 0 for |x| below about 1e-7
 * (measured: sign(5e-8) = 0 on wasm, 1 on cpu); FGSM on a confident network has input gradients that small, so
 * tf.sign would silently leave those pixels unperturbed and make the model look robust. Comparisons are exact.
 */
export function exactSign(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(tf.cast(tf.greater(x, 0), 'float32'), tf.cast(tf.less(x, 0), 'float32')));
}
