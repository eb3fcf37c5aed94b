import * as tf from '@tensorflow/tfjs-core';
import { fusedColumnNormScale, fusedMaxoutGradient, fusedMomentumVelocity } from './webgpu-programs.js';

/*
 * The operations whose best form depends on the backend (DESIGN.md, "Kernels per backend"): the dense layer's
 * product with its gradients, maxout units, the exact sign, the momentum step and the max-norm scale. Models,
 * attacks and training call these and never ask which backend runs.
 */

/**
 * Which gradients of x·W a forward pass must support. An attack needs ∇ₓ only; training the first layer
 * needs ∇W only (x is data); inner layers need both. Declaring it skips a whole matMul per layer and pass.
 */
export type Gradients = 'input' | 'parameters' | 'both';

/**
 * x·W in its two shapes: one network ([n, in]·[in, out]) or stacked seeds, one network per leading index
 * ([seeds, n, in]·[seeds, in, out], a batched matMul).
 */
type Operand = tf.Tensor2D | tf.Tensor3D;

/** How the two gradients of Y = X·W are computed from dY: dX = dY·Wᵀ, dW = Xᵀ·dY. */
interface GradientForms {
  input: (dy: Operand, w: Operand) => Operand;
  weights: (dy: Operand, x: Operand) => Operand;
}

/** Swaps the last two axes (the transpose of each seed's matrix). */
const transposed = (t: Operand): Operand => (t.rank === 2 ? tf.transpose(t) : tf.transpose(t, [0, 2, 1]));

/*
 * wasm: tfjs's matMul with transposeA / transposeB runs on a scalar loop about six to ten times slower than a
 * plain matMul (measured: 47 ms vs 8 ms for 10000×784 · 784×10), so the transposes are explicit and every
 * matMul plain: dX = (W · dYᵀ)ᵀ, dW = Xᵀ · dY. The threaded wasm build and the cpu backend keep the same forms
 * (one set of numbers on every CPU backend and thread count).
 */
const PLAIN: GradientForms = {
  input: (dy, w) => transposed(tf.matMul(w, transposed(dy))),
  weights: (dy, x) => tf.matMul(transposed(x), dy),
};

/*
 * webgpu (and TensorFlow's kernels): the shader reads a transposed operand in place, so each gradient is one
 * matMul, not a matMul and one or two transposes: five dispatches per layer become two on a backend whose step
 * time is mostly dispatches. The same values, to float rounding.
 */
const TRANSPOSED_OPERANDS: GradientForms = {
  input: (dy, w) => tf.matMul(dy, w, false, true),
  weights: (dy, x) => tf.matMul(x, dy, true, false),
};

/** The backends that read a transposed operand in place; every other (wasm, its threaded build, cpu) gets PLAIN. */
const IN_PLACE_TRANSPOSE = new Set(['webgpu', 'tensorflow']);

const gradientForms = (): GradientForms => (IN_PLACE_TRANSPOSE.has(tf.getBackend()) ? TRANSPOSED_OPERANDS : PLAIN);

/**
 * x·W with the gradients `gradients` asks for, in the form fastest on the backend; x and W both [n, in] and
 * [in, out], or both stacked ([seeds, n, in], [seeds, in, out]). An operand that is not an input of the custom
 * gradient is a constant to the tape (nested kernels are not recorded), so no gradient is computed for it; it
 * goes through save(), since tfjs disposes a forward pass's intermediates unless saved.
 */
export function denseMatMul<T extends Operand>(x: T, w: T, gradients: Gradients = 'both'): T {
  const forms = gradientForms();
  if (gradients === 'both') {
    return tf.customGrad<T>((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xs, ws, save] = inputs as [T, T, tf.GradSaveFunc];
      save([xs, ws]);
      return {
        value: tf.matMul(xs, ws) as T,
        gradFunc: (dy: T, saved: tf.Tensor[]) => {
          const [savedX, savedW] = saved as [T, T];
          return [forms.input(dy, savedW), forms.weights(dy, savedX)];
        },
      };
    })(x, w);
  }
  if (gradients === 'input') {
    return tf.customGrad<T>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [input, save] = args as [T, tf.GradSaveFunc];
      save([w]);
      return { value: tf.matMul(input, w) as T, gradFunc: (dy: T, saved: tf.Tensor[]) => forms.input(dy, saved[0] as T) };
    })(x);
  }
  return tf.customGrad<T>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [weights, save] = args as [T, tf.GradSaveFunc];
    save([x]);
    return { value: tf.matMul(x, weights) as T, gradFunc: (dy: T, saved: tf.Tensor[]) => forms.weights(dy, saved[0] as T) };
  })(w);
}

/**
 * sign(x) ∈ {−1, 0, +1} exactly. tfjs-backend-wasm 4.22's Sign kernel returns 0 for |x| below about 1e-7
 * (measured: sign(5e-8) = 0 on wasm, 1 on cpu); FGSM on a confident network has input gradients that small, so
 * tf.sign would silently leave those pixels unperturbed and make the model look robust. Comparisons are exact.
 */
export function exactSign(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(tf.cast(tf.greater(x, 0), 'float32'), tf.cast(tf.less(x, 0), 'float32')));
}

/**
 * On the pieces at their unit's maximum (`atMax`, [n, pieces, units], 1 or 0), keeps only the last piece of each
 * tie: pylearn2 computed a unit as p = T.maximum(cur, p) over the pieces in order, and Theano's maximum gives the
 * gradient of a tie to its first argument, so the last tied piece takes it all. Ties are rare but real (exact
 * float equality, a few per epoch on MNIST), so they are found with one vectorised count and fixed on the host: cheap where
 * a read is (wasm, cpu, tensorflow; webgpu has a fused kernel instead, see maxoutGradient).
 */
function lastTiedPiece(atMax: tf.Tensor3D): tf.Tensor3D {
  const [n, pieces, units] = atMax.shape;
  const mostAtMax = tf.tidy(
    () => tf.max(tf.avgPool(tf.reshape(atMax, [n, 1, pieces, units]) as tf.Tensor4D, [1, pieces], [1, pieces], 'valid')).dataSync()[0]!,
  );
  if (mostAtMax * pieces < 1.5) return atMax;
  const mask = atMax.dataSync().slice();
  for (let i = 0; i < n; i++) {
    for (let u = 0; u < units; u++) {
      let last = -1;
      for (let p = 0; p < pieces; p++) {
        const at = (i * pieces + p) * units + u;
        if (mask[at] === 0) continue;
        if (last >= 0) mask[last] = 0;
        last = at;
      }
    }
  }
  return tf.tensor3d(mask, [n, pieces, units]);
}

/**
 * dy through maxout units to their pre-activations z: to the piece at its unit's maximum, on a tie to the last
 * one (see lastTiedPiece). On webgpu one fused dispatch, which also never reads back (WebGPU in Node cannot read
 * synchronously, and a GPU would stall); elsewhere vectorised kernels and the host's tie fix.
 */
function maxoutGradient(z: tf.Tensor2D, maxima: tf.Tensor2D, dy: tf.Tensor2D, pieces: number): tf.Tensor2D {
  if (tf.getBackend() === 'webgpu') return fusedMaxoutGradient(z, maxima, dy, pieces) as tf.Tensor2D;
  const [n, width] = z.shape;
  const units = width / pieces;
  const atMax = tf.sub(1, tf.step(tf.sub(tf.reshape(maxima, [n, 1, units]), tf.reshape(z, [n, pieces, units])))) as tf.Tensor3D;
  return tf.reshape(tf.mul(lastTiedPiece(atMax), tf.reshape(dy, [n, 1, units])), [n, width]);
}

/**
 * h_u = max_p z[:, p·units + u]: the maxout units of pre-activations z whose `pieces` blocks of columns are the
 * pieces. The gradient goes to the piece at the maximum, on a tie to the last one (see maxoutGradient).
 *
 * Written for speed on wasm, where tf.maximum, the comparisons and tf.max's gradient are scalar C++ loops
 * (a chain of tf.maximum over tf.split's blocks, with its gradient, took 3.7 ms on 100 × 1200) while
 * max-pooling, Sub, Mul and Step run vectorised (about 1 ms): the forward pass is a 1 × pieces max-pool over
 * z seen as [n, 1, pieces, units], and the pieces at the maximum are those where step(max − z) is 0. Step is
 * exact there (step(1e-40) = 1), unlike wasm's Sign, which rounds |x| < 1e-7 to 0.
 */
export const maxoutUnits = (z: tf.Tensor2D, pieces: number): tf.Tensor2D => {
  const [n, width] = z.shape;
  const units = width / pieces;
  return tf.customGrad<tf.Tensor2D>((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [preActivations, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const blocks = tf.reshape(preActivations, [n, 1, pieces, units]) as tf.Tensor4D;
    const max = tf.reshape(tf.maxPool(blocks, [1, pieces], [1, pieces], 'valid'), [n, units]) as tf.Tensor2D;
    save([preActivations, max]);
    return {
      value: max,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [zs, maxs] = saved as [tf.Tensor2D, tf.Tensor2D];
        return maxoutGradient(zs, maxs, dy, pieces);
      },
    };
  })(z);
};

/**
 * The momentum step's new velocities μ·v − η·g, one per (v, g) pair; μ and η numbers, or one per stacked network
 * shaped [networks, 1, 1]. On webgpu one fused dispatch per pair (three kernels otherwise); elsewhere tfjs's own
 * kernels, to the bit what they always computed.
 */
export function momentumVelocities(
  pairs: readonly { v: tf.Tensor; g: tf.Tensor }[],
  momentum: number | tf.Tensor,
  rate: number | tf.Tensor,
): tf.Tensor[] {
  if (tf.getBackend() !== 'webgpu') return pairs.map(({ v, g }) => tf.sub(tf.mul(momentum, v), tf.mul(rate, g)));
  const perNetwork = (value: number | tf.Tensor) => (typeof value === 'number' ? tf.tensor1d([value]) : tf.reshape(value, [-1]));
  const [momenta, rates] = [perNetwork(momentum), perNetwork(rate)];
  return pairs.map(({ v, g }) => fusedMomentumVelocity(v, g, momenta, rates));
}

/**
 * Per column of w ([in, out], or [networks, in, out]: each network's columns), the factor that brings its L2
 * norm down to `maxNorm` where larger: min(1, maxNorm / ‖column‖), shaped to broadcast over w. One fused
 * dispatch on webgpu (five kernels otherwise).
 */
export function columnNormScale(w: tf.Tensor, maxNorm: number): tf.Tensor {
  if (tf.getBackend() === 'webgpu') return fusedColumnNormScale(w, maxNorm);
  const norms = tf.sqrt(tf.sum(tf.square(w), w.rank - 2, true));
  return tf.minimum(1, tf.div(maxNorm, tf.maximum(norms, 1e-12)));
}
