import { logitColumns } from '../network.js';
import type { CrossEntropyShape } from './cross-entropy.js';

/*
 * The cross-entropy kernel's results in plain float64: the same formulas (tfjs's, see cross-entropy.ts) without
 * float32 rounding, so the kernel agrees with it to float32 precision wherever no probability saturates.
 */

export interface CrossEntropyReference {
  /** [lanes · rows × logit columns]: each row's weight times ∂J/∂z. */
  dLogits: Float64Array;
  /** Per lane: weights.clean · mean J over the first `batch` rows + weights.adversarial · mean J over the rest. */
  objective: number[];
  /** Per lane: rows among the first statistics.misclassifiedRows (all rows without statistics) whose prediction is wrong. */
  misclassified: number[];
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/** One row's loss and gradient (weighted by u), and its prediction: the first class of highest probability. */
function row(shape: CrossEntropyShape, z: readonly number[], label: number, u: number): { loss: number; predicted: number; d: number[] } {
  const argmax = (p: number[]) => p.reduce((best, value, k) => (value > p[best]! ? k : best), 0);
  if (shape.top === 'distance') {
    const p = z.map(Math.exp);
    const d = z.map((zk, k) => (k === label ? -u : u / Math.expm1(-zk)));
    const loss = z.reduce((total, zk, k) => total + (k === label ? -zk : -Math.log(-Math.expm1(zk))), 0);
    return { loss, predicted: argmax(p), d };
  }
  if (shape.top === 'logistic') {
    const y = label === 1 ? 1 : -1;
    const p = sigmoid(z[0]!);
    return { loss: softplus(-y * z[0]!), predicted: argmax([1 - p, p]), d: [-u * sigmoid(-y * z[0]!) * y] };
  }
  if (shape.top === 'softmax') {
    const m = Math.max(...z);
    const b = z.map((v) => Math.exp(v - m));
    const c = b.reduce((a, v) => a + v, 0);
    const p = b.map((v) => v / c);
    const d =
      shape.gradient === 'standard'
        ? p.map((pk, k) => u * pk - (k === label ? u : 0) + (z[k] === m ? u - u * p.reduce((a, v) => a + v, 0) : 0))
        : p.map((pk, k) => (k === label ? -u * p.reduce((a, v, i) => (i === label ? a : a + v), 0) : u * pk));
    return { loss: m + Math.log(c) - z[label]!, predicted: argmax(p), d };
  }
  const p = z.map(sigmoid);
  const s = z.map((_, k) => (k === label ? -1 : 1));
  const d = shape.gradient === 'standard' ? p.map((pk, k) => u * pk - (k === label ? u : 0)) : z.map((v, k) => u * sigmoid(s[k]! * v) * s[k]!);
  const sum = z.reduce((a, v, k) => a + softplus(s[k]! * v), 0);
  return { loss: shape.sigmoidLoss === 'mean' ? sum / shape.classes : sum, predicted: argmax(p), d };
}

/** What the kernel computes for the given logits, labels, row indices and each lane's batchStart. */
export function crossEntropyReference(
  shape: CrossEntropyShape,
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  rowIndex: ArrayLike<number>,
  batchStarts: readonly number[],
): CrossEntropyReference {
  const { lanes, rows, batch, classes } = shape;
  const columns = logitColumns(shape.top, classes);
  const perClass = shape.top === 'sigmoid' && shape.sigmoidLoss === 'mean' ? classes : 1;
  const perRow = (weight: number) => (shape.reduction === 'mean' ? weight / batch : weight) / perClass;
  const counted = shape.statistics?.misclassifiedRows ?? rows;
  const dLogits = new Float64Array(lanes * rows * columns);
  const objective: number[] = [];
  const misclassified: number[] = [];
  for (let lane = 0; lane < lanes; lane++) {
    let [clean, adversarial, wrong] = [0, 0, 0];
    for (let r = 0; r < rows; r++) {
      const label = labels[rowIndex[lane * shape.indexStride + batchStarts[lane]! + (r % batch)]!]!;
      const first = (lane * rows + r) * columns;
      const z = Array.from({ length: columns }, (_, k) => logits[first + k]!);
      const isClean = r < batch;
      const result = row(shape, z, label, perRow(isClean ? shape.weights.clean : shape.weights.adversarial));
      dLogits.set(result.d, first);
      if (isClean) clean += result.loss;
      else adversarial += result.loss;
      if (r < counted && result.predicted !== label) wrong++;
    }
    objective.push(shape.weights.clean * (clean / batch) + (rows > batch ? shape.weights.adversarial * (adversarial / (rows - batch)) : 0));
    misclassified.push(wrong);
  }
  return { dLogits, objective, misclassified };
}
