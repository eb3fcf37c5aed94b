import type { RbfSpec } from '../../models/classifier.js';
import type { RbfShape } from './rbf.js';

/*
 * The RBF kernels' results in plain float64 (rbf.ts): the same formulas without float32 rounding, so the kernels
 * agree with them to float32 precision wherever d is not within rounding of 0 and no input gradient within rounding
 * of 0.
 */

type Values = ArrayLike<number>;

const precisions: Record<RbfSpec['precision'], { of: (rho: number) => number; slope: (rho: number) => number }> = {
  exp: { of: Math.exp, slope: Math.exp },
  softplus: { of: (rho) => Math.log1p(Math.exp(rho)), slope: (rho) => 1 / (1 + Math.exp(-rho)) },
  clamp: { of: (rho) => rho, slope: () => 1 },
};

/** a, a∘μ of lane `lane` at (f, k). */
function parametersAt(shape: RbfShape, parameters: Values, lane: number, f: number, k: number) {
  const at = lane * shape.laneFloats + f * shape.classes + k;
  const rho = parameters[at]!;
  const mu = parameters[at + shape.muOffset]!;
  const a = precisions[shape.precision].of(rho);
  return { at, rho, mu, a };
}

/** ∂J/∂(the relu's input), as the kernels take it: −∂J/∂z where z < 0, else 0. */
const upstream = (logits: Values, dLogits: Values, at: number) => (logits[at]! < 0 ? -dLogits[at]! : 0);

/** −d [lanes·R × K] of the pass's input. */
export function rbfForwardReference(shape: RbfShape, parameters: Values, input: Values): Float64Array {
  const { lanes, rows, inputs, classes } = shape;
  const logits = new Float64Array(lanes * rows * classes);
  for (let lane = 0; lane < lanes; lane++) {
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < classes; k++) {
        let d = 0;
        for (let f = 0; f < inputs; f++) {
          const { a, mu } = parametersAt(shape, parameters, lane, f, k);
          d += a * (input[(lane * rows + r) * inputs + f]! - mu) ** 2;
        }
        logits[(lane * rows + r) * classes + k] = -Math.max(d, 0);
      }
    }
  }
  return logits;
}

/** The gradient buffer's ρ and μ places of each lane after RbfParameterGradient (ρ's bias row 0). */
export function rbfParameterGradientReference(shape: RbfShape, parameters: Values, input: Values, logits: Values, dLogits: Values): Float64Array {
  const { lanes, rows, inputs, classes } = shape;
  const gradients = new Float64Array(lanes * shape.laneFloats);
  for (let lane = 0; lane < lanes; lane++) {
    for (let f = 0; f < inputs; f++) {
      for (let k = 0; k < classes; k++) {
        const { at, rho, mu, a } = parametersAt(shape, parameters, lane, f, k);
        // ∂d/∂a = (x − μ)², ∂d/∂μ = −2a(x − μ), summed over the rows with their upstream gradients
        let [dA, dMu] = [0, 0];
        for (let r = 0; r < rows; r++) {
          const row = lane * rows + r;
          const g = upstream(logits, dLogits, row * classes + k);
          const x = input[row * inputs + f]!;
          dA += g * (x - mu) ** 2;
          dMu += g * -2 * a * (x - mu);
        }
        gradients[at] = dA * precisions[shape.precision].slope(rho);
        gradients[at + shape.muOffset] = dMu;
      }
    }
  }
  return gradients;
}

/** x̃ = x + ε·sign(∇ₓJ) [lanes·n × inputs], or sign(∇ₓJ) with ε null. */
export function rbfInputSignReference(
  shape: RbfShape,
  epsilon: number | null,
  parameters: Values,
  input: Values,
  logits: Values,
  dLogits: Values,
): Float64Array {
  const { lanes, rows, inputs, classes } = shape;
  const output = new Float64Array(lanes * rows * inputs);
  for (let lane = 0; lane < lanes; lane++) {
    for (let r = 0; r < rows; r++) {
      const row = lane * rows + r;
      for (let f = 0; f < inputs; f++) {
        const x = input[row * inputs + f]!;
        let gradient = 0;
        for (let k = 0; k < classes; k++) {
          const { a, mu } = parametersAt(shape, parameters, lane, f, k);
          gradient += upstream(logits, dLogits, row * classes + k) * 2 * a * (x - mu);
        }
        output[row * inputs + f] = epsilon === null ? Math.sign(gradient) : Math.fround(x + Math.fround(epsilon) * Math.sign(gradient));
      }
    }
  }
  return output;
}
