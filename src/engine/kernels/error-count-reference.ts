import type { ErrorCountShape, FgsmExamplesShape, FgsmPass } from './error-count.js';

/*
 * The kernels of error-count.ts in plain TypeScript on host copies of their buffers: what a test holds them to.
 * x̃ is exact in float32 (x + ε·sign rounds once), and a count is an integer, so the kernels must equal these.
 */

type Values = ArrayLike<number>;

/** The adversarial buffer after FgsmExamples at `pass`: block e is x + ε·direction at the group's ε number e. */
export function fgsmExamplesReference(
  shape: FgsmExamplesShape,
  pass: FgsmPass,
  images: Values,
  rowIndex: Values,
  direction: Values,
  epsilons: Values,
): Float32Array {
  const { batchRows: n, inputs } = shape;
  const out = new Float32Array(shape.groupSize * n * inputs);
  for (let e = 0; e < pass.epsilons; e++) {
    const epsilon = Math.fround(epsilons[pass.firstSlot + e]!);
    for (let r = 0; r < n; r++) {
      const image = rowIndex[pass.cleanStart + r]!;
      for (let k = 0; k < inputs; k++) {
        out[(e * n + r) * inputs + k] = images[image * inputs + k]! + epsilon * direction[r * inputs + k]!;
      }
    }
  }
  return out;
}

/** The counters after ErrorCount at `pass`, from `counts` before it. */
export function errorCountReference(
  shape: ErrorCountShape,
  pass: FgsmPass,
  logits: Values,
  labels: Values,
  rowIndex: Values,
  counts: Values,
): Uint32Array {
  const { batchRows: n, classes } = shape;
  const out = Uint32Array.from(counts);
  for (let e = 0; e < pass.epsilons; e++) {
    for (let r = 0; r < n && pass.cleanStart + r < shape.examples; r++) {
      const first = (e * n + r) * classes;
      let predicted = 0;
      for (let k = 1; k < classes; k++) if (logits[first + k]! > logits[first + predicted]!) predicted = k;
      if (predicted !== labels[rowIndex[pass.cleanStart + r]!]) out[pass.firstSlot + e]!++;
    }
  }
  return out;
}
