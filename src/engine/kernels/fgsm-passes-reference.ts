import {
  perturbationTally,
  type IteratePass,
  type IterateStepShape,
  type KeepWorstShape,
  ZERO_GRADIENT_TALLY,
  type ErrorCountShape,
  type FgsmExamplesShape,
  type FgsmPass,
  type ProbabilitiesShape,
  type ZeroDirectionsShape,
} from './fgsm-passes.js';

/*
 * The kernels of fgsm-passes.ts in plain TypeScript on host copies of their buffers: what a test holds them to.
 * x̃ is exact in float32 (x + ε·sign rounds once, clipping rounds nothing), and counts and maxima are exact, so the
 * kernels must equal these; probabilities are computed in float64, which the kernel's float32 meets within rounding.
 */

type Values = ArrayLike<number>;

/**
 * The adversarial buffer after FgsmExamples at `pass` (block e is x + ε·direction at the group's ε number e, clipped
 * to `clip` unless null) and the tallies after it, from `tallies` before it.
 */
export function fgsmExamplesReference(
  shape: FgsmExamplesShape,
  pass: FgsmPass,
  images: Values,
  rowIndex: Values,
  direction: Values,
  epsilons: Values,
  clip: readonly [number, number] | null,
  tallies: Values,
): { adversarial: Float32Array; tallies: Uint32Array } {
  const { batchRows: n, inputs } = shape;
  const adversarial = new Float32Array(shape.groupSize * n * inputs);
  const after = Uint32Array.from(tallies);
  const most = new Float32Array(1);
  for (let e = 0; e < pass.epsilons; e++) {
    const epsilon = Math.fround(epsilons[pass.firstSlot + e]!);
    most[0] = 0;
    for (let r = 0; r < n; r++) {
      const image = rowIndex[pass.cleanStart + r]!;
      for (let k = 0; k < inputs; k++) {
        const x = images[image * inputs + k]!;
        let stepped = Math.fround(x + epsilon * direction[r * inputs + k]!);
        if (clip) stepped = Math.min(Math.max(stepped, Math.fround(clip[0])), Math.fround(clip[1]));
        adversarial[(e * n + r) * inputs + k] = stepped;
        if (pass.cleanStart + r < shape.examples) most[0] = Math.max(most[0]!, Math.abs(Math.fround(stepped - x)));
      }
    }
    const slot = perturbationTally(pass.firstSlot + e);
    after[slot] = Math.max(after[slot]!, new Uint32Array(most.buffer)[0]!);
  }
  return { adversarial, tallies: after };
}

/** The probabilities buffer after Probabilities at `pass`, from `probabilities` before it (float64 softmax or sigmoid). */
export function probabilitiesReference(shape: ProbabilitiesShape, pass: FgsmPass, logits: Values, probabilities: Values): Float64Array {
  const { batchRows: n, classes } = shape;
  const out = Float64Array.from(probabilities);
  for (let e = 0; e < pass.epsilons; e++) {
    for (let r = 0; r < n && pass.cleanStart + r < shape.examples; r++) {
      const z = Array.from({ length: classes }, (_, k) => logits[(e * n + r) * classes + k]!);
      const at = ((pass.firstSlot + e) * shape.examples + pass.cleanStart + r) * classes;
      if (shape.top === 'sigmoid') {
        z.forEach((zk, k) => (out[at + k] = 1 / (1 + Math.exp(-zk))));
      } else {
        const top = Math.max(...z);
        const sum = z.reduce((total, zk) => total + Math.exp(zk - top), 0);
        z.forEach((zk, k) => (out[at + k] = Math.exp(zk - top) / sum));
      }
    }
  }
  return out;
}

/** The tallies after ZeroDirections at `pass`, from `tallies` before it. */
export function zeroDirectionsReference(shape: ZeroDirectionsShape, pass: FgsmPass, direction: Values, tallies: Values): Uint32Array {
  const { batchRows: n, inputs } = shape;
  const after = Uint32Array.from(tallies);
  for (let r = 0; r < n && pass.cleanStart + r < shape.examples; r++) {
    let zero = true;
    for (let k = 0; k < inputs; k++) if (direction[r * inputs + k] !== 0) zero = false;
    if (zero) after[ZERO_GRADIENT_TALLY]!++;
  }
  return after;
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

/** The iterate and the tallies after IterateStep at `pass`, from `iterate` and `tallies` before it. */
export function iterateStepReference(
  shape: IterateStepShape,
  pass: IteratePass,
  buffers: {
    images: Values;
    rowIndex: Values;
    direction: Values;
    noise: Values;
    epsilons: Values;
    stepSizes: Values;
    iterate: Values;
    tallies: Values;
  },
  clip: readonly [number, number] | null,
): { iterate: Float32Array; tallies: Uint32Array } {
  const { batchRows: n, inputs } = shape;
  const iterate = Float32Array.from(buffers.iterate);
  const after = Uint32Array.from(buffers.tallies);
  const epsilon = Math.fround(buffers.epsilons[pass.slot]!);
  const stepSize = Math.fround(buffers.stepSizes[pass.slot]!);
  const most = new Float32Array(1);
  for (let r = 0; r < n; r++) {
    const image = buffers.rowIndex[pass.cleanStart + r]!;
    for (let k = 0; k < inputs; k++) {
      const at = r * inputs + k;
      const x = buffers.images[image * inputs + k]!;
      let point = x;
      if (pass.phase === 'startRandom') point = Math.fround(x + buffers.noise[at]!);
      if (pass.phase === 'step') point = Math.fround(iterate[at]! + stepSize * buffers.direction[at]!);
      if (pass.phase === 'measure') point = iterate[at]!;
      if (pass.phase === 'startRandom' || pass.phase === 'step') {
        point = Math.min(Math.max(point, Math.fround(x - epsilon)), Math.fround(x + epsilon));
        if (clip) point = Math.min(Math.max(point, Math.fround(clip[0])), Math.fround(clip[1]));
      }
      iterate[at] = point;
      if (pass.tally && pass.cleanStart + r < shape.examples) most[0] = Math.max(most[0]!, Math.abs(Math.fround(point - x)));
    }
  }
  const slot = perturbationTally(pass.slot);
  if (pass.tally) after[slot] = Math.max(after[slot]!, new Uint32Array(most.buffer)[0]!);
  return { iterate, tallies: after };
}

/** The kept iterates and their outcomes after KeepWorst at `pass` (float64 probabilities and losses). */
export function keepWorstReference(
  shape: KeepWorstShape,
  pass: IteratePass,
  buffers: { logits: Values; labels: Values; rowIndex: Values; iterate: Values; best: Values; bestSuccess: Values; bestObjective: Values },
  targeted: boolean,
): { best: Float32Array; bestSuccess: Uint32Array; bestObjective: Float64Array } {
  const { batchRows: n, inputs, classes } = shape;
  const best = Float32Array.from(buffers.best);
  const bestSuccess = Uint32Array.from(buffers.bestSuccess);
  const bestObjective = Float64Array.from(buffers.bestObjective);
  const softplus = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: classes }, (_, k) => buffers.logits[r * classes + k]!);
    const label = buffers.labels[buffers.rowIndex[pass.cleanStart + r]!]!;
    const top = Math.max(...z);
    const sum = z.reduce((total, zk) => total + Math.exp(zk - top), 0);
    const p = z.map((zk) => (shape.top === 'sigmoid' ? 1 / (1 + Math.exp(-zk)) : Math.exp(zk - top) / sum));
    const predicted = p.indexOf(Math.max(...p));
    let loss =
      shape.top === 'sigmoid' ? z.reduce((total, zk, k) => total + softplus(zk) - (k === label ? zk : 0), 0) : top + Math.log(sum) - z[label]!;
    if (shape.top === 'sigmoid' && shape.sigmoidLoss === 'mean') loss /= classes;
    const success = (targeted ? predicted === label : predicted !== label) ? 1 : 0;
    const objective = targeted ? -loss : loss;
    const better = success > bestSuccess[r]! || (success === bestSuccess[r] && objective > bestObjective[r]!);
    if (pass.phase === 'keepFirst' || better) {
      bestSuccess[r] = success;
      bestObjective[r] = objective;
      best.set(
        Array.from({ length: inputs }, (_, k) => buffers.iterate[r * inputs + k]!),
        r * inputs,
      );
    }
  }
  return { best, bestSuccess, bestObjective };
}
