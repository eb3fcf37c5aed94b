import { counterDropoutMask } from '../../core/counter-random.js';
import type { HiddenForwardShape, LayerShape, PassDropout } from './layers.js';
import type { LaneStep } from './step-record.js';

/*
 * The layer kernels of layers.ts in plain float64 TypeScript, element by element from their definitions, on host
 * copies of the same buffers (same layouts, same step entries): what a test holds the kernels to.
 */

type Values = ArrayLike<number>;

/** Host copies of a BatchInput's buffers. */
export interface HostBatch {
  images: Values;
  rowIndex: Values;
  indexStride: number;
  batchRows: number;
  adversarial?: Values;
}

/** Lane `lane`'s mask of layer `layer` (0: the input) over rows × width, or null without dropout. */
export function laneMask(dropout: PassDropout | null, step: LaneStep, layer: number, rows: number, width: number): Float32Array | null {
  if (!dropout) return null;
  const [keep, scale] = layer === 0 ? [dropout.inputKeep, dropout.inputScale] : [dropout.hiddenKeep, dropout.hiddenScale];
  return counterDropoutMask(rows, width, keep, Math.fround(scale), step[dropout.seed], layer);
}

/** The batch input of a pass [lanes·rows × inputs]: clean rows by index, then x̃ rows; times the input mask when `masked`. */
export function batchInputReference(
  batch: HostBatch,
  steps: readonly LaneStep[],
  shape: Pick<LayerShape, 'lanes' | 'rows' | 'inputs'>,
  dropout: PassDropout | null,
  masked = true,
): Float64Array {
  const { lanes, rows, inputs } = shape;
  const n = batch.batchRows;
  const out = new Float64Array(lanes * rows * inputs);
  for (let l = 0; l < lanes; l++) {
    const mask = masked ? laneMask(dropout, steps[l]!, 0, rows, inputs) : null;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < inputs; k++) {
        const x =
          r < n
            ? batch.images[batch.rowIndex[l * batch.indexStride + steps[l]!.batchStart + r]! * inputs + k]!
            : batch.adversarial![(l * n + r - n) * inputs + k]!;
        out[(l * rows + r) * inputs + k] = x * (mask ? mask[r * inputs + k]! : 1);
      }
    }
  }
  return out;
}

/** Element (k, c) of lane l's P_j. */
const parameter = (parameters: Values, shape: LayerShape, l: number, k: number, c: number): number =>
  parameters[l * shape.laneFloats + shape.offset + k * shape.columns + c]!;

/** A·P_j's affine output (A·W + b) for row r of lane l, column c. */
function affine(parameters: Values, input: Values, shape: LayerShape, l: number, r: number, c: number): number {
  let sum = parameter(parameters, shape, l, shape.inputs, c);
  for (let k = 0; k < shape.inputs; k++) sum += input[(l * shape.rows + r) * shape.inputs + k]! * parameter(parameters, shape, l, k, c);
  return sum;
}

/** H and route of a maxout layer: the max over pieces (the last tied piece wins), times the layer's mask. */
export function hiddenForwardReference(
  parameters: Values,
  input: Values,
  shape: HiddenForwardShape,
  steps: readonly LaneStep[],
): { output: Float64Array; route: Uint32Array } {
  const { lanes, rows, columns, pieces } = shape;
  const units = columns / pieces;
  const output = new Float64Array(lanes * rows * units);
  const route = new Uint32Array(lanes * rows * units);
  for (let l = 0; l < lanes; l++) {
    const mask = laneMask(shape.dropout, steps[l]!, shape.layer, rows, units);
    for (let r = 0; r < rows; r++) {
      for (let u = 0; u < units; u++) {
        let best = -Infinity;
        let winner = 0;
        for (let p = 0; p < pieces; p++) {
          const z = affine(parameters, input, shape, l, r, p * units + u);
          if (p === 0 || z >= best) [best, winner] = [z, p];
        }
        output[(l * rows + r) * units + u] = best * (mask ? mask[r * units + u]! : 1);
        route[(l * rows + r) * units + u] = winner;
      }
    }
  }
  return { output, route };
}

/** Z = A·W + b. */
export function outputForwardReference(parameters: Values, input: Values, shape: LayerShape): Float64Array {
  const { lanes, rows, columns } = shape;
  const out = new Float64Array(lanes * rows * columns);
  for (let l = 0; l < lanes; l++)
    for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[(l * rows + r) * columns + c] = affine(parameters, input, shape, l, r, c);
  return out;
}

/** dA = dOut·W_jᵀ [lanes·rows × inputs]. */
function inputGradient(parameters: Values, upstream: Values, shape: LayerShape): Float64Array {
  const { lanes, rows, inputs, columns } = shape;
  const out = new Float64Array(lanes * rows * inputs);
  for (let l = 0; l < lanes; l++) {
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < inputs; k++) {
        let sum = 0;
        for (let c = 0; c < columns; c++) sum += upstream[(l * rows + r) * columns + c]! * parameter(parameters, shape, l, k, c);
        out[(l * rows + r) * inputs + k] = sum;
      }
    }
  }
  return out;
}

/** dPre of hidden layer j − 1 [lanes·rows × inputs·pieces]: dA times the unit's mask, to the winning piece only. */
export function maxoutBackwardReference(
  parameters: Values,
  upstream: Values,
  route: Values,
  shape: LayerShape & { pieces: number; dropout: PassDropout | null },
  steps: readonly LaneStep[],
): Float64Array {
  const { lanes, rows, inputs: units, pieces } = shape;
  const dA = inputGradient(parameters, upstream, shape);
  const out = new Float64Array(lanes * rows * units * pieces);
  for (let l = 0; l < lanes; l++) {
    const mask = laneMask(shape.dropout, steps[l]!, shape.layer - 1, rows, units);
    for (let r = 0; r < rows; r++) {
      for (let u = 0; u < units; u++) {
        const at = (l * rows + r) * units + u;
        out[(l * rows + r) * units * pieces + route[at]! * units + u] = dA[at]! * (mask ? mask[r * units + u]! : 1);
      }
    }
  }
  return out;
}

/** x̃ = x + ε·sign(dA·inputMask) [lanes·n × inputs], x the clean batch (the pass has n rows per lane). */
export function inputSignReference(
  parameters: Values,
  upstream: Values,
  batch: HostBatch,
  shape: LayerShape & { epsilon: number; dropout: PassDropout | null },
  steps: readonly LaneStep[],
): Float64Array {
  const dA = inputGradient(parameters, upstream, shape);
  const clean = batchInputReference(batch, steps, shape, null, false);
  const masks = steps.slice(0, shape.lanes).map((step) => laneMask(shape.dropout, step, 0, shape.rows, shape.inputs));
  const epsilon = Math.fround(shape.epsilon);
  const width = shape.rows * shape.inputs;
  return clean.map((x, i) => x + epsilon * Math.sign(dA[i]! * (masks[Math.floor(i / width)]?.[i % width] ?? 1)));
}

/** ∇ₓ [lanes·rows × inputs] plus `held` where given (accumulate), or the sign of that (sign): the input-gradient epilogue. */
export function inputGradientReference(
  parameters: Values,
  upstream: Values,
  shape: LayerShape & { sign: boolean },
  held: Values | null,
): Float64Array {
  const dA = inputGradient(parameters, upstream, shape);
  return dA.map((g, i) => {
    const total = held ? held[i]! + g : g;
    return shape.sign ? Math.sign(total) : total;
  });
}

/** Each lane's gradient block [lanes·laneFloats], P_j's region holding Âᵀ·dOut (Â = [A, 1]) and zeros elsewhere. */
export function weightGradientReference(input: Values, upstream: Values, shape: LayerShape): Float64Array {
  const { lanes, rows, inputs, columns, laneFloats, offset } = shape;
  const out = new Float64Array(lanes * laneFloats);
  for (let l = 0; l < lanes; l++) {
    for (let k = 0; k <= inputs; k++) {
      for (let c = 0; c < columns; c++) {
        let sum = 0;
        for (let r = 0; r < rows; r++) sum += (k === inputs ? 1 : input[(l * rows + r) * inputs + k]!) * upstream[(l * rows + r) * columns + c]!;
        out[l * laneFloats + offset + k * columns + c] = sum;
      }
    }
  }
  return out;
}
