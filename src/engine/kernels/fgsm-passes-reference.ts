import { logitColumns } from '../network.js';
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

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** The model's class probabilities of one row of logits z (float64): softmax, the independent sigmoids, logistic regression's [1 − σ(z), σ(z)], or the RBF network's exp(z). */
function probabilitiesOf(top: ProbabilitiesShape['top'], z: readonly number[]): number[] {
  if (top === 'sigmoid') return z.map(sigmoid);
  if (top === 'distance') return z.map(Math.exp);
  if (top === 'logistic') return [1 - sigmoid(z[0]!), sigmoid(z[0]!)];
  const most = Math.max(...z);
  const sum = z.reduce((total, zk) => total + Math.exp(zk - most), 0);
  return z.map((zk) => Math.exp(zk - most) / sum);
}

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

/** The probabilities buffer after Probabilities at `pass`, from `probabilities` before it (float64). */
export function probabilitiesReference(shape: ProbabilitiesShape, pass: FgsmPass, logits: Values, probabilities: Values): Float64Array {
  const { batchRows: n, classes } = shape;
  const columns = logitColumns(shape.top, classes);
  const out = Float64Array.from(probabilities);
  for (let e = 0; e < pass.epsilons; e++) {
    for (let r = 0; r < n && pass.cleanStart + r < shape.examples; r++) {
      const z = Array.from({ length: columns }, (_, k) => logits[(e * n + r) * columns + k]!);
      out.set(probabilitiesOf(shape.top, z), ((pass.firstSlot + e) * shape.examples + pass.cleanStart + r) * classes);
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
  const columns = logitColumns(shape.top, classes);
  const out = Uint32Array.from(counts);
  for (let e = 0; e < pass.epsilons; e++) {
    for (let r = 0; r < n && pass.cleanStart + r < shape.examples; r++) {
      const first = (e * n + r) * columns;
      let predicted = 0;
      if (shape.top === 'logistic') predicted = sigmoid(logits[first]!) > 0.5 ? 1 : 0;
      else for (let k = 1; k < classes; k++) if (logits[first + k]! > logits[first + predicted]!) predicted = k;
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
  const columns = logitColumns(shape.top, classes);
  const best = Float32Array.from(buffers.best);
  const bestSuccess = Uint32Array.from(buffers.bestSuccess);
  const bestObjective = Float64Array.from(buffers.bestObjective);
  const softplus = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: columns }, (_, k) => buffers.logits[r * columns + k]!);
    const label = buffers.labels[buffers.rowIndex[pass.cleanStart + r]!]!;
    const p = probabilitiesOf(shape.top, z);
    const predicted = p.indexOf(Math.max(...p));
    const most = Math.max(...z);
    let loss =
      shape.top === 'sigmoid'
        ? z.reduce((total, zk, k) => total + softplus(zk) - (k === label ? zk : 0), 0)
        : shape.top === 'logistic'
          ? softplus(label === 1 ? -z[0]! : z[0]!)
          : shape.top === 'distance'
            ? z.reduce((total, zk, k) => total + (k === label ? -zk : -Math.log(-Math.expm1(zk))), 0)
            : most + Math.log(z.reduce((total, zk) => total + Math.exp(zk - most), 0)) - z[label]!;
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
