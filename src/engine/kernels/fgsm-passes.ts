import { logitColumns, type EngineTop } from '../network.js';
import { BoundKernel, STEP_RECORD_BYTES, type Binding, type GpuRuntime, type Kernel } from '../runtime.js';
import { LOG_SPACE_WGSL } from './float-functions.js';

/*
 * The kernels that turn one input gradient per batch into FGSM figures at several ε (see resident-fgsm.ts):
 * FgsmExamples writes x̃ = x + ε·sign(∇ₓJ) (clipped when the attack clips) for a group of ε values, one block of n
 * rows per ε, so that one forward pass of the network serves the whole group, and keeps each ε's largest |x̃ − x|;
 * ErrorCount counts each block's misclassified rows into that ε's counter; Probabilities writes each block's class
 * probabilities into the split's rows; ZeroDirections counts the batch's rows whose input gradient is zero
 * everywhere; IterateStep moves the iterate of an iterative attack (BIM, PGD) one step, or sets its start. Counts and maxima are integers (a non-negative float's bits order as the float does), so the order
 * of the device's atomic additions leaves them the same. Every kernel takes what changes between passes (which
 * batch, which ε) from a pass record (STEP_RECORD_BYTES) chosen by the dispatch's dynamic offset.
 */

/** One x̃ pass: a batch of the split and a group of consecutive ε values. */
export interface FgsmPass {
  /** Where the batch starts in the row indices. */
  cleanStart: number;
  /** The group's first ε: its index in the ε values and in the counters. */
  firstSlot: number;
  /** The group's ε values (at most the pass's groupSize; a last, smaller group leaves the other blocks unused). */
  epsilons: number;
}

const PASS_RECORD_WGSL = /* wgsl */ `
struct FgsmPass {
  cleanStart: u32,
  firstSlot: u32,
  epsilons: u32,
}
`;

/** Records for consecutive passes, ready for a buffer bound as a kernel's 'step' binding. */
export function encodePasses(passes: readonly FgsmPass[]): Uint32Array {
  const words = new Uint32Array((passes.length * STEP_RECORD_BYTES) / 4);
  passes.forEach((pass, i) => words.set([pass.cleanStart, pass.firstSlot, pass.epsilons], (i * STEP_RECORD_BYTES) / 4));
  return words;
}

/** The shape every pass kernel is built for. */
export interface FgsmPassShape {
  /** n: rows of a batch (and of each ε's block). */
  batchRows: number;
  /** ε values per pass (blocks of n rows). */
  groupSize: number;
  /** N: the split's examples; rows past it (the last batch's padding) are not counted. */
  examples: number;
}

/** Tallies: u32 [1 + ε slots]: the zero-gradient rows at 0, then the bits of each ε slot's largest |x̃ − x|. */
export const ZERO_GRADIENT_TALLY = 0;
export const perturbationTally = (slot: number): number => 1 + slot;

/** Clipping of x̃ as a per-call uniform: CLIP_BYTES bytes, made by encodeClip. */
export const CLIP_BYTES = 16;

/** The uniform that clips x̃ to [low, high], or leaves it unclipped (null). */
export function encodeClip(clip: readonly [number, number] | null): Uint8Array {
  const words = new ArrayBuffer(CLIP_BYTES);
  new Uint32Array(words)[0] = clip ? 1 : 0;
  if (clip) new Float32Array(words).set(clip, 1);
  return new Uint8Array(words);
}

export type FgsmExamplesShape = FgsmPassShape & { inputs: number };
export interface FgsmExamplesBuffers {
  passes: GPUBuffer;
  /** The clipping uniform (encodeClip). */
  clip: GPUBuffer;
  /** f32 [N × inputs]. */
  images: GPUBuffer;
  /** u32: the split's rows in batch order (a pass reads from cleanStart). */
  rowIndex: GPUBuffer;
  /** f32 [n × inputs]: sign(∇ₓJ) of the batch. */
  direction: GPUBuffer;
  /** f32: ε of slot s at element s. */
  epsilons: GPUBuffer;
  /** f32 [groupSize · n × inputs], written: block e holds x̃ at the group's ε number e. */
  adversarial: GPUBuffer;
  /** u32 tallies, raised: each ε slot's largest |x̃ − x| (perturbationTally). */
  tallies: GPUBuffer;
}

/** The output of the network whose logits a kernel reads: `classes` classes over logitColumns(top, classes) logits a row. */
export interface Output {
  classes: number;
  top: EngineTop;
}

/** The top's code in the kernels' shape uniforms (TOP_WGSL). */
const TOP_CODES: Record<EngineTop, number> = { softmax: 0, sigmoid: 1, logistic: 2, distance: 3 };

/** An output's words of a shape uniform: classes, logit columns, the top's code. */
const outputWords = ({ classes, top }: Output): number[] => [classes, logitColumns(top, classes), TOP_CODES[top]];

export type ErrorCountShape = FgsmPassShape & Output;
export interface ErrorCountBuffers {
  passes: GPUBuffer;
  /** f32 [groupSize · n × logit columns]: the pass's logits, block by block. */
  logits: GPUBuffer;
  /** u32 [N]: each example's class. */
  labels: GPUBuffer;
  rowIndex: GPUBuffer;
  /** u32, one per ε slot, added to: the misclassified rows seen so far. */
  counts: GPUBuffer;
}

/** softmax: p = softmax(z); sigmoid: p_k = σ(z_k), each class its own; logistic: [1 − σ(z), σ(z)] (as the models' `probabilities`). */
export type ProbabilitiesShape = FgsmPassShape & Output;
export interface ProbabilitiesBuffers {
  passes: GPUBuffer;
  /** f32 [groupSize · n × logit columns]: the pass's logits, block by block. */
  logits: GPUBuffer;
  /** f32 [ε slots × N × classes], written: slot s's probabilities of the split's row i at (s·N + i)·classes. */
  probabilities: GPUBuffer;
}

export type ZeroDirectionsShape = Omit<FgsmPassShape, 'groupSize'> & { inputs: number };
export interface ZeroDirectionsBuffers {
  passes: GPUBuffer;
  /** f32 [n × inputs]: sign(∇ₓJ) of the batch. */
  direction: GPUBuffer;
  /** u32 tallies, added to: the rows whose direction is all zero (ZERO_GRADIENT_TALLY). */
  tallies: GPUBuffer;
}

/**
 * What an IteratePass does. IterateStep: put the iterate at x (BIM), at x + noise projected (PGD's random start), or
 * one step on; or leave it and only tally |x̃ − x| (measure). KeepWorst: keep a restart's iterate where the attack did
 * best so far (keepFirst: the first restart's, whatever it did).
 */
export const ITERATE_PHASES = { startAtX: 0, startRandom: 1, step: 2, measure: 3, keepFirst: 4, keep: 5 } as const;
export type IteratePhase = keyof typeof ITERATE_PHASES;

/** One use of IterateStep: a batch of the split, the ε slot it attacks at, the phase, and whether to tally |x̃ − x|. */
export interface IteratePass {
  /** Where the batch starts in the row indices. */
  cleanStart: number;
  /** The ε (and step size, and perturbation tally) slot. */
  slot: number;
  phase: IteratePhase;
  /** Raise the slot's largest |x̃ − x| with this pass's iterate (the last step's). */
  tally: boolean;
}

/** Records for consecutive iterate passes, ready for a buffer bound as a kernel's 'step' binding. */
export function encodeIteratePasses(passes: readonly IteratePass[]): Uint32Array {
  const words = new Uint32Array((passes.length * STEP_RECORD_BYTES) / 4);
  passes.forEach((pass, i) => words.set([pass.cleanStart, pass.slot, ITERATE_PHASES[pass.phase], pass.tally ? 1 : 0], (i * STEP_RECORD_BYTES) / 4));
  return words;
}

export type IterateStepShape = Omit<FgsmPassShape, 'groupSize'> & { inputs: number };
export interface IterateStepBuffers {
  passes: GPUBuffer;
  /** The clipping uniform (encodeClip). */
  clip: GPUBuffer;
  /** f32 [N × inputs]. */
  images: GPUBuffer;
  /** u32: the split's rows in batch order (a pass reads from cleanStart). */
  rowIndex: GPUBuffer;
  /** f32 [n × inputs]: sign(∇ₓJ) at the iterate. */
  direction: GPUBuffer;
  /** f32 [n × inputs]: the random start's U(−ε, ε) of the batch's rows. */
  noise: GPUBuffer;
  /** f32: ε of slot s at element s. */
  epsilons: GPUBuffer;
  /** f32: the step α of slot s at element s (−α for a targeted attack, which steps down its target's loss). */
  stepSizes: GPUBuffer;
  /** f32 [n × inputs], read and written: the iterate x̃ₜ of the batch. */
  iterate: GPUBuffer;
  /** u32 tallies, raised: each slot's largest |x̃ − x| (perturbationTally). */
  tallies: GPUBuffer;
}

export type KeepWorstShape = Omit<FgsmPassShape, 'groupSize'> &
  Output & {
    inputs: number;
    sigmoidLoss: 'sum' | 'mean';
  };
export interface KeepWorstBuffers {
  passes: GPUBuffer;
  /** u32 uniform: 1 when the attack is targeted (it succeeds on its target class, and climbs down its loss). */
  aim: GPUBuffer;
  /** f32 [n × logit columns]: the logits of the restart's last iterate. */
  logits: GPUBuffer;
  /** u32 [N]: the class J takes, per example. */
  labels: GPUBuffer;
  rowIndex: GPUBuffer;
  /** f32 [n × inputs]: the restart's last iterate. */
  iterate: GPUBuffer;
  /** f32 [n × inputs], written: the iterate kept so far. */
  best: GPUBuffer;
  /** u32 [n] and f32 [n], written: the kept iterate's success (1 or 0) and objective. */
  bestSuccess: GPUBuffer;
  bestObjective: GPUBuffer;
}

const WORKGROUP = 64;

/**
 * A row's class probabilities as the models' `probabilities` make them: p(k) from the row's logits at `first`, for
 * the top's code (TOP_CODES).
 */
const PROBABILITY_WGSL = /* wgsl */ `
struct Softmax { top: f32, sum: f32 }
// tf.softmax's exp(z − max z) / Σ exp(z − max z)
fn softmaxOf(first: u32, classes: u32) -> Softmax {
  var top = logits[first];
  for (var k = 1u; k < classes; k++) { top = max(top, logits[first + k]); }
  var sum = 0.0;
  for (var k = 0u; k < classes; k++) { sum += exp(logits[first + k] - top); }
  return Softmax(top, sum);
}
fn probability(first: u32, k: u32, top: u32, softmax: Softmax) -> f32 {
  if (top == ${TOP_CODES.sigmoid}u) { return 1.0 / (1.0 + exp(-logits[first + k])); }
  // the RBF network's independent exp(−d_k), its logits −d_k
  if (top == ${TOP_CODES.distance}u) { return exp(logits[first + k]); }
  if (top == ${TOP_CODES.logistic}u) {
    // LogisticRegression's concat([1 − σ(z), σ(z)])
    let p = 1.0 / (1.0 + exp(-logits[first]));
    return select(1.0 - p, p, k == 1u);
  }
  return exp(logits[first + k] - softmax.top) / softmax.sum;
}
`;

const EXAMPLES_WGSL = /* wgsl */ `${PASS_RECORD_WGSL}
struct Shape { batchRows: u32, inputs: u32, examples: u32 }
struct Clip { clips: u32, low: f32, high: f32 }
@group(0) @binding(0) var<uniform> record: FgsmPass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<uniform> clip: Clip;
@group(0) @binding(3) var<storage, read> images: array<f32>;
@group(0) @binding(4) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(5) var<storage, read> direction: array<f32>;
@group(0) @binding(6) var<storage, read> epsilons: array<f32>;
@group(0) @binding(7) var<storage, read_write> adversarial: array<f32>;
@group(0) @binding(8) var<storage, read_write> tallies: array<atomic<u32>>;

var<workgroup> most: atomic<u32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let k = id.x;
  let r = id.y;
  let inside = k < shape.inputs && r < shape.batchRows;
  let counted = inside && record.cleanStart + r < shape.examples;
  var x = 0.0;
  var d = 0.0;
  if (inside) {
    x = images[rowIndex[record.cleanStart + r] * shape.inputs + k];
    d = direction[r * shape.inputs + k];
  }
  for (var e = 0u; e < record.epsilons; e++) {
    if (t == 0u) { atomicStore(&most, 0u); }
    workgroupBarrier();
    if (inside) {
      // as tfjs's x + direction·ε: ε·d is ±ε or 0 exactly, so x̃ is x + ε rounded once, the same in both; then
      // clipByValue's min(max(·, low), high)
      var stepped = x + epsilons[record.firstSlot + e] * d;
      if (clip.clips != 0u) { stepped = clamp(stepped, clip.low, clip.high); }
      adversarial[(e * shape.batchRows + r) * shape.inputs + k] = stepped;
      if (counted) { atomicMax(&most, bitcast<u32>(abs(stepped - x))); }
    }
    workgroupBarrier();
    if (t == 0u) {
      let seen = atomicLoad(&most);
      if (seen > 0u) { atomicMax(&tallies[${perturbationTally(0)}u + record.firstSlot + e], seen); }
    }
  }
}
`;

const COUNT_WGSL = /* wgsl */ `${PASS_RECORD_WGSL}
struct Shape { batchRows: u32, classes: u32, columns: u32, top: u32, examples: u32 }
@group(0) @binding(0) var<uniform> record: FgsmPass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(5) var<storage, read_write> counts: array<atomic<u32>>;

var<workgroup> wrong: atomic<u32>;

// workgroup (x, e): rows 64x.. of the block of the group's ε number e
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = group.x * ${WORKGROUP}u + t;
  let e = group.y;
  if (e < record.epsilons && r < shape.batchRows && record.cleanStart + r < shape.examples) {
    let first = (e * shape.batchRows + r) * shape.columns;
    // the first class of highest logit, as tf.argMax; logistic regression's of highest probability (σ(z) rounds to
    // 1 − σ(z) near z = 0, where argMax takes class 0)
    var predicted = 0u;
    if (shape.top == ${TOP_CODES.logistic}u) {
      let p = 1.0 / (1.0 + exp(-logits[first]));
      predicted = select(0u, 1u, p > 1.0 - p);
    } else {
      var best = logits[first];
      for (var k = 1u; k < shape.classes; k++) {
        let z = logits[first + k];
        if (z > best) {
          best = z;
          predicted = k;
        }
      }
    }
    if (predicted != labels[rowIndex[record.cleanStart + r]]) { atomicAdd(&wrong, 1u); }
  }
  workgroupBarrier();
  if (t == 0u && e < record.epsilons) {
    let seen = atomicLoad(&wrong);
    if (seen > 0u) { atomicAdd(&counts[record.firstSlot + e], seen); }
  }
}
`;

const PROBABILITIES_WGSL = /* wgsl */ `${PASS_RECORD_WGSL}
struct Shape { batchRows: u32, classes: u32, columns: u32, top: u32, examples: u32 }
@group(0) @binding(0) var<uniform> record: FgsmPass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> probabilities: array<f32>;
${PROBABILITY_WGSL}
// thread (r, e): row r of the block of the group's ε number e
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let r = id.x;
  let e = id.y;
  if (e >= record.epsilons || r >= shape.batchRows || record.cleanStart + r >= shape.examples) { return; }
  let first = (e * shape.batchRows + r) * shape.columns;
  let out = ((record.firstSlot + e) * shape.examples + record.cleanStart + r) * shape.classes;
  let softmax = softmaxOf(first, shape.columns);
  for (var k = 0u; k < shape.classes; k++) { probabilities[out + k] = probability(first, k, shape.top, softmax); }
}
`;

const ZERO_DIRECTIONS_WGSL = /* wgsl */ `${PASS_RECORD_WGSL}
struct Shape { batchRows: u32, inputs: u32, examples: u32 }
@group(0) @binding(0) var<uniform> record: FgsmPass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> direction: array<f32>;
@group(0) @binding(3) var<storage, read_write> tallies: array<atomic<u32>>;

var<workgroup> nonzero: atomic<u32>;

// workgroup r: row r of the batch
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = group.x;
  var seen = false;
  for (var k = t; k < shape.inputs; k += ${WORKGROUP}u) {
    if (direction[r * shape.inputs + k] != 0.0) { seen = true; }
  }
  if (seen) { atomicOr(&nonzero, 1u); }
  workgroupBarrier();
  if (t == 0u && atomicLoad(&nonzero) == 0u && record.cleanStart + r < shape.examples) {
    atomicAdd(&tallies[${ZERO_GRADIENT_TALLY}u], 1u);
  }
}
`;

const ITERATE_WGSL = /* wgsl */ `
struct IteratePass { cleanStart: u32, slot: u32, phase: u32, tally: u32 }
struct Shape { batchRows: u32, inputs: u32, examples: u32 }
struct Clip { clips: u32, low: f32, high: f32 }
@group(0) @binding(0) var<uniform> record: IteratePass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<uniform> clip: Clip;
@group(0) @binding(3) var<storage, read> images: array<f32>;
@group(0) @binding(4) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(5) var<storage, read> direction: array<f32>;
@group(0) @binding(6) var<storage, read> noise: array<f32>;
@group(0) @binding(7) var<storage, read> epsilons: array<f32>;
@group(0) @binding(8) var<storage, read> stepSizes: array<f32>;
@group(0) @binding(9) var<storage, read_write> iterate: array<f32>;
@group(0) @binding(10) var<storage, read_write> tallies: array<atomic<u32>>;

var<workgroup> most: atomic<u32>;

// thread (k, r): pixel k of the batch's row r
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let k = id.x;
  let r = id.y;
  let inside = k < shape.inputs;
  if (t == 0u) { atomicStore(&most, 0u); }
  workgroupBarrier();
  if (inside) {
    let at = r * shape.inputs + k;
    let x = images[rowIndex[record.cleanStart + r] * shape.inputs + k];
    var point = x;
    if (record.phase == ${ITERATE_PHASES.startRandom}u) { point = x + noise[at]; }
    // as tfjs's current + direction·α: α·d is ±α or 0 exactly
    if (record.phase == ${ITERATE_PHASES.step}u) { point = iterate[at] + stepSizes[record.slot] * direction[at]; }
    if (record.phase == ${ITERATE_PHASES.measure}u) { point = iterate[at]; }
    if (record.phase == ${ITERATE_PHASES.startRandom}u || record.phase == ${ITERATE_PHASES.step}u) {
      // the projection: min(max(·, x − ε), x + ε), then clipByValue's min(max(·, low), high)
      let epsilon = epsilons[record.slot];
      point = min(max(point, x - epsilon), x + epsilon);
      if (clip.clips != 0u) { point = clamp(point, clip.low, clip.high); }
    }
    iterate[at] = point;
    if (record.tally != 0u && record.cleanStart + r < shape.examples) { atomicMax(&most, bitcast<u32>(abs(point - x))); }
  }
  workgroupBarrier();
  if (t == 0u && record.tally != 0u) {
    let seen = atomicLoad(&most);
    if (seen > 0u) { atomicMax(&tallies[${perturbationTally(0)}u + record.slot], seen); }
  }
}
`;

const KEEP_WORST_WGSL = /* wgsl */ `
struct IteratePass { cleanStart: u32, slot: u32, phase: u32, tally: u32 }
struct Shape { batchRows: u32, inputs: u32, classes: u32, columns: u32, top: u32, meanLoss: u32 }
@group(0) @binding(0) var<uniform> record: IteratePass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<uniform> targeted: u32;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(6) var<storage, read> iterate: array<f32>;
@group(0) @binding(7) var<storage, read_write> best: array<f32>;
@group(0) @binding(8) var<storage, read_write> bestSuccess: array<u32>;
@group(0) @binding(9) var<storage, read_write> bestObjective: array<f32>;
${PROBABILITY_WGSL}
${LOG_SPACE_WGSL}
fn softplus(z: f32) -> f32 { return max(z, 0.0) + log(1.0 + exp(-abs(z))); }

var<workgroup> keep: u32;

// workgroup r: row r of the batch; thread 0 judges it, all copy it
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = group.x;
  if (t == 0u) {
    let first = r * shape.columns;
    let label = labels[rowIndex[record.cleanStart + r]];
    let softmax = softmaxOf(first, shape.columns);
    // the first class of highest probability, as tf.argMax over the model's probabilities
    var predicted = 0u;
    var most = probability(first, 0u, shape.top, softmax);
    for (var k = 1u; k < shape.classes; k++) {
      let p = probability(first, k, shape.top, softmax);
      if (p > most) {
        most = p;
        predicted = k;
      }
    }
    // the model's loss: softmax cross-entropy, the binary cross-entropies of the independent sigmoids, logistic
    // regression's softplus(−y·z), or the RBF network's binary cross-entropies of exp(−d_k)
    var loss = 0.0;
    if (shape.top == ${TOP_CODES.sigmoid}u) {
      for (var k = 0u; k < shape.classes; k++) { loss += softplus(logits[first + k]) - select(0.0, logits[first + k], k == label); }
      if (shape.meanLoss != 0u) { loss = loss / f32(shape.classes); }
    } else if (shape.top == ${TOP_CODES.logistic}u) {
      loss = softplus(-select(-1.0, 1.0, label == 1u) * logits[first]);
    } else if (shape.top == ${TOP_CODES.distance}u) {
      for (var k = 0u; k < shape.classes; k++) { loss += select(negLog1mExp(-logits[first + k]), -logits[first + k], k == label); }
    } else {
      loss = softmax.top + log(softmax.sum) - logits[first + label];
    }
    var success = select(0u, 1u, predicted != label);
    var objective = loss;
    if (targeted != 0u) {
      success = select(0u, 1u, predicted == label);
      objective = -loss;
    }
    let better = success > bestSuccess[r] || (success == bestSuccess[r] && objective > bestObjective[r]);
    keep = select(0u, 1u, record.phase == ${ITERATE_PHASES.keepFirst}u || better);
    if (keep != 0u) {
      bestSuccess[r] = success;
      bestObjective[r] = objective;
    }
  }
  if (workgroupUniformLoad(&keep) != 0u) {
    for (var k = t; k < shape.inputs; k += ${WORKGROUP}u) { best[r * shape.inputs + k] = iterate[r * shape.inputs + k]; }
  }
}
`;

function checkPassShape(shape: Partial<FgsmPassShape>): void {
  const sizes = [shape.batchRows, shape.groupSize ?? 1, shape.examples];
  if (sizes.some((n) => !Number.isInteger(n) || n! < 1)) throw new Error(`FGSM pass shape ${JSON.stringify(shape)}`);
}

function requireBytes(buffer: GPUBuffer, bytes: number, what: string): void {
  if (buffer.size < bytes) throw new Error(`${what}: ${buffer.size} bytes, needs ${bytes}`);
}

/** A pass kernel bound once: the pass records first, then its shape uniform (made here), then `buffers` as `bindings` says. */
async function build(
  runtime: GpuRuntime,
  name: string,
  code: string,
  shapeWords: readonly number[],
  buffers: readonly [GPUBuffer, ...GPUBuffer[]],
  bindings: readonly Binding[],
  grid: [number, number],
): Promise<[GpuRuntime, Kernel, GPUBindGroup, GPUBuffer, [number, number]]> {
  const kernel = await runtime.kernel(name, code, ['step', 'uniform', ...bindings]);
  const words = Uint32Array.from(shapeWords);
  const uniform = runtime.uniform(`${name} shape`, words.byteLength, words);
  const group = runtime.bind(kernel, [buffers[0], uniform, ...buffers.slice(1)]);
  return [runtime, kernel, group, uniform, grid];
}

/** x̃ = x + ε·direction (clipped as the clip uniform says) for each ε of the pass's group, into consecutive blocks of n rows. */
export class FgsmExamples extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: FgsmExamplesShape, buffers: FgsmExamplesBuffers): Promise<FgsmExamples> {
    checkPassShape(shape);
    const { batchRows: n, inputs, groupSize, examples } = shape;
    requireBytes(buffers.direction, n * inputs * 4, 'direction');
    requireBytes(buffers.adversarial, groupSize * n * inputs * 4, 'adversarial');
    const { passes, clip, images, rowIndex, direction, epsilons, adversarial, tallies } = buffers;
    const built = await build(
      runtime,
      'fgsm-examples',
      EXAMPLES_WGSL,
      [n, inputs, examples],
      [passes, clip, images, rowIndex, direction, epsilons, adversarial, tallies],
      ['uniform', 'read', 'read', 'read', 'read', 'write', 'write'],
      [Math.ceil(inputs / WORKGROUP), n],
    );
    return new FgsmExamples(...built);
  }
}

/** Adds each ε's misclassified rows of the pass (the first maximum of the logits against the label) to its counter. */
export class ErrorCount extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: ErrorCountShape, buffers: ErrorCountBuffers): Promise<ErrorCount> {
    checkPassShape(shape);
    const { batchRows: n, examples, groupSize } = shape;
    requireBytes(buffers.logits, groupSize * n * logitColumns(shape.top, shape.classes) * 4, 'logits');
    const { passes, logits, labels, rowIndex, counts } = buffers;
    const built = await build(
      runtime,
      'error-count',
      COUNT_WGSL,
      [n, ...outputWords(shape), examples],
      [passes, logits, labels, rowIndex, counts],
      ['read', 'read', 'read', 'write'],
      [Math.ceil(n / WORKGROUP), groupSize],
    );
    return new ErrorCount(...built);
  }
}

/** Each ε's class probabilities of the pass's rows, into their place among the split's rows. */
export class Probabilities extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: ProbabilitiesShape, buffers: ProbabilitiesBuffers): Promise<Probabilities> {
    checkPassShape(shape);
    const { batchRows: n, examples, groupSize } = shape;
    requireBytes(buffers.logits, groupSize * n * logitColumns(shape.top, shape.classes) * 4, 'logits');
    const { passes, logits, probabilities } = buffers;
    const built = await build(
      runtime,
      'probabilities',
      PROBABILITIES_WGSL,
      [n, ...outputWords(shape), examples],
      [passes, logits, probabilities],
      ['read', 'write'],
      [Math.ceil(n / WORKGROUP), groupSize],
    );
    return new Probabilities(...built);
  }
}

/** Counts the batch's rows (of the pass record's batch) whose direction sign(∇ₓJ) is zero everywhere. */
export class ZeroDirections extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: ZeroDirectionsShape, buffers: ZeroDirectionsBuffers): Promise<ZeroDirections> {
    checkPassShape(shape);
    const { batchRows: n, inputs, examples } = shape;
    requireBytes(buffers.direction, n * inputs * 4, 'direction');
    const { passes, direction, tallies } = buffers;
    const built = await build(
      runtime,
      'zero-directions',
      ZERO_DIRECTIONS_WGSL,
      [n, inputs, examples],
      [passes, direction, tallies],
      ['read', 'write'],
      [n, 1],
    );
    return new ZeroDirections(...built);
  }
}

/** The iterate of an iterative attack: set at its start (x, or x + noise projected) or moved one step of α·sign(∇ₓJ) and projected onto the ε-ball and the clip bounds. */
export class IterateStep extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: IterateStepShape, buffers: IterateStepBuffers): Promise<IterateStep> {
    checkPassShape(shape);
    const { batchRows: n, inputs, examples } = shape;
    for (const name of ['direction', 'noise', 'iterate'] as const) requireBytes(buffers[name], n * inputs * 4, name);
    const { passes, clip, images, rowIndex, direction, noise, epsilons, stepSizes, iterate, tallies } = buffers;
    const built = await build(
      runtime,
      'iterate-step',
      ITERATE_WGSL,
      [n, inputs, examples],
      [passes, clip, images, rowIndex, direction, noise, epsilons, stepSizes, iterate, tallies],
      ['uniform', 'read', 'read', 'read', 'read', 'read', 'read', 'write', 'write'],
      [Math.ceil(inputs / WORKGROUP), n],
    );
    return new IterateStep(...built);
  }
}

/**
 * Of the restarts of an iterative attack, keeps per row the iterate the attack did best with (iterativeGradientSign's
 * order: a success before a failure, then the higher objective, J up or, targeted, down), from the logits of the
 * restart's last iterate.
 */
export class KeepWorst extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: KeepWorstShape, buffers: KeepWorstBuffers): Promise<KeepWorst> {
    checkPassShape(shape);
    const { batchRows: n, inputs } = shape;
    for (const name of ['iterate', 'best'] as const) requireBytes(buffers[name], n * inputs * 4, name);
    requireBytes(buffers.logits, n * logitColumns(shape.top, shape.classes) * 4, 'logits');
    const { passes, aim, logits, labels, rowIndex, iterate, best, bestSuccess, bestObjective } = buffers;
    const built = await build(
      runtime,
      'keep-worst',
      KEEP_WORST_WGSL,
      [n, inputs, ...outputWords(shape), shape.sigmoidLoss === 'mean' ? 1 : 0],
      [passes, aim, logits, labels, rowIndex, iterate, best, bestSuccess, bestObjective],
      ['uniform', 'read', 'read', 'read', 'read', 'write', 'write', 'write'],
      [n, 1],
    );
    return new KeepWorst(...built);
  }
}
