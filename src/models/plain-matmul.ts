import * as tf from '@tensorflow/tfjs-core';

/**
 * Which gradients of x·W a forward pass must support. An attack needs ∇ₓ only; training the first layer
 * needs ∇W only (x is data); inner layers need both. Declaring it skips a whole matMul per layer and pass.
 */
export type Gradients = 'input' | 'parameters' | 'both';

/*
 * tfjs's own gradient of matMul calls matMul with transposeA / transposeB, which the wasm backend runs on a
 * scalar loop about six to ten times slower than a plain matMul (measured here: 47 ms vs 8 ms for
 * 10000×784 · 784×10). These custom gradients use plain matMuls with explicit transposes; same values, to float
 * rounding:  dX = (W · dYᵀ)ᵀ,  dW = Xᵀ · dY.
 * An operand that is not an input of the custom gradient is a constant to the tape (nested kernels are not
 * recorded), so no gradient is computed for it.
 */
const inputGradient = (dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D => tf.transpose(tf.matMul(w, tf.transpose(dy))) as tf.Tensor2D;
const weightGradient = (dy: tf.Tensor2D, x: tf.Tensor2D): tf.Tensor2D => tf.matMul(tf.transpose(x), dy);

const withBothGradients = tf.customGrad<tf.Tensor2D>((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, save] = inputs as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.matMul(x, w) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [inputGradient(dy, ws), weightGradient(dy, xs)];
    },
  };
});

/** x·W with the gradient variant `gradients` asks for, every matMul of it plain. */
export function plainMatMul(x: tf.Tensor2D, w: tf.Tensor2D, gradients: Gradients = 'both'): tf.Tensor2D {
  if (gradients === 'both') return withBothGradients(x, w);
  // the constant operand goes through save(): tfjs disposes a forward pass's intermediates unless saved
  if (gradients === 'input') {
    return tf.customGrad<tf.Tensor2D>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
      save([w]);
      return { value: tf.matMul(input, w), gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => inputGradient(dy, saved[0] as tf.Tensor2D) };
    })(x);
  }
  return tf.customGrad<tf.Tensor2D>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [weights, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([x]);
    return { value: tf.matMul(x, weights), gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => weightGradient(dy, saved[0] as tf.Tensor2D) };
  })(w);
}
