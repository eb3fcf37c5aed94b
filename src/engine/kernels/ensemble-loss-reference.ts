import type { EnsembleLossShape } from './ensemble-loss.js';

/*
 * The ensemble loss kernel's gradient in plain float64: ∂J/∂z of member m's logits for J = −log p̄_y, written as
 * the maths says rather than as autodiff orders it, so the kernel agrees with it to float32 precision wherever no
 * probability saturates.
 */

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logSigmoid = (x: number) => Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));

/** One member's probabilities (softmax or per-class sigmoid) and log p_y. */
function member(top: 'softmax' | 'sigmoid', z: readonly number[], label: number): { p: number[]; logP: number } {
  if (top === 'sigmoid') return { p: z.map(sigmoid), logP: logSigmoid(z[label]!) };
  const m = Math.max(...z);
  const c = z.reduce((a, v) => a + Math.exp(v - m), 0);
  return { p: z.map((v) => Math.exp(v - m) / c), logP: z[label]! - m - Math.log(c) };
}

/**
 * What the kernel writes for the given logits ([M · rows × classes], member m's rows in block m), J's labels, row
 * indices and the batch's start in them: per row, w_m = p_m,y / Σ p_m',y (the softmax over members of log p_m,y)
 * and member m's ∂J/∂z = −w_m ∂log p_m,y/∂z: w_m(p_m − onehot(y)) for a softmax member (in either form),
 * −w_m σ(−z_y) at y and 0 elsewhere for a sigmoid one.
 */
export function ensembleLossReference(
  shape: EnsembleLossShape,
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  rowIndex: ArrayLike<number>,
  batchStart: number,
): Float64Array {
  const { tops, rows, classes } = shape;
  const dLogits = new Float64Array(tops.length * rows * classes);
  for (let r = 0; r < rows; r++) {
    const label = labels[rowIndex[batchStart + r]!]!;
    const firsts = tops.map((_, m) => (m * rows + r) * classes);
    const members = tops.map((top, m) =>
      member(
        top,
        Array.from({ length: classes }, (_, k) => logits[firsts[m]! + k]!),
        label,
      ),
    );
    const largest = Math.max(...members.map((one) => one.logP));
    const total = members.reduce((a, one) => a + Math.exp(one.logP - largest), 0);
    members.forEach(({ p }, m) => {
      const w = Math.exp(members[m]!.logP - largest) / total;
      for (let k = 0; k < classes; k++) {
        const z = logits[firsts[m]! + k]!;
        const d = tops[m] === 'softmax' ? w * (p[k]! - (k === label ? 1 : 0)) : k === label ? -w * sigmoid(-z) : 0;
        dLogits[firsts[m]! + k] = d;
      }
    });
  }
  return dLogits;
}
