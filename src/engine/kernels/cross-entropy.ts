import type { SigmoidLoss, SoftmaxGradient } from '../../models/classifier.js';
import { logitColumns, type EngineTop } from '../network.js';
import { BoundKernel, type GpuRuntime } from '../runtime.js';
import { LOG_SPACE_WGSL, SIGMOID_SOFTPLUS_WGSL } from './float-functions.js';
import { MAX_LANES, STEP_RECORD_WGSL } from './step-record.js';

/*
 * The loss layer of the engine: from each lane's logits, the gradient of its minibatch objective with respect to
 * them, computed as tfjs's autodiff computes it in float32 (the saturation of the standard forms included: see
 * SoftmaxGradient), and optionally the step's objective and error count per lane. The float64 reference beside it
 * (cross-entropy-reference.ts) gives the same results.
 */

/** The two gradient forms every figure is reported in (otherGradient); the other two are tfjs-only variants. */
export type EngineGradient = Extract<SoftmaxGradient, 'standard' | 'stable'>;

export interface CrossEntropyShape {
  lanes: number;
  /** Rows of each lane's pass: its minibatch's `batch` rows, then (with x̃) as many rows of x̃ in the same order. */
  rows: number;
  batch: number;
  /** Classes; the logits have logitColumns(top, classes) columns. */
  classes: number;
  /** Where lane l's example indices start in rowIndex: l · indexStride. */
  indexStride: number;
  top: EngineTop;
  /** The sigmoid top's per-example loss: the sum or the mean of its classes' binary cross-entropies. */
  sigmoidLoss: SigmoidLoss;
  gradient: EngineGradient;
  /**
   * The objective's weights of the mean loss over the first `batch` rows and over the rest: α and 1 − α for
   * alpha-mix; 1 (and no further rows) for a plain pass or for 'replace', whose pass holds only x̃.
   */
  weights: { clean: number; adversarial: number };
  /**
   * mean: a row's gradient is its term's weight / batch, that of the objective (training); sum: the weight itself,
   * the gradient of Σ J (the FGSM pass, weight 1).
   */
  reduction: 'mean' | 'sum';
  /**
   * null: no statistics. Otherwise each lane's objective and its count of misclassified rows among the first
   * `misclassifiedRows` (minibatchObjective counts x under alpha-mix, the pass's x̃ under replace: `batch` either way).
   */
  statistics: { misclassifiedRows: number } | null;
}

export interface CrossEntropyBuffers {
  /** The step records (STEP_RECORD_WGSL): batchStart and statsSlot per lane. */
  steps: GPUBuffer;
  /** f32 [lanes · rows × logit columns]. */
  logits: GPUBuffer;
  /** u32 [N]: every resident example's class. */
  labels: GPUBuffer;
  /** u32: lane l's example indices for the epoch from l · indexStride. */
  rowIndex: GPUBuffer;
  /** f32 [lanes · rows × logit columns], written: each row's weight times ∂J/∂z. */
  dLogits: GPUBuffer;
  /** f32, written when shape.statistics is set: (statsSlot · lanes + l) · 2 + {0: objective, 1: misclassified}. */
  stats?: GPUBuffer;
}

const WORKGROUP = 64;

/**
 * Workgroups of one dispatch, [x, lanes]. With statistics one workgroup per lane walks all its rows, so that its
 * sums come from one fixed-order tree (deterministic, no atomics); without, a thread per row.
 */
export function crossEntropyGrid(shape: CrossEntropyShape): [number, number] {
  return [shape.statistics ? 1 : Math.ceil(shape.rows / WORKGROUP), shape.lanes];
}

/**
 * The gradient tfjs's backward pass sends into each row's loss, in float32: the objective's weight w (a float32
 * scalar), through tf.mean (w / batch) and, for the sigmoid top's mean, through the division by the class count.
 */
function rowWeights(shape: CrossEntropyShape): { clean: number; adversarial: number } {
  const f = Math.fround;
  const perRow = (weight: number) => {
    const term = shape.reduction === 'mean' ? f(f(weight) / shape.batch) : f(weight);
    return shape.top === 'sigmoid' && shape.sigmoidLoss === 'mean' ? f(term / shape.classes) : term;
  };
  return { clean: perRow(shape.weights.clean), adversarial: perRow(shape.weights.adversarial) };
}

/**
 * One row's loss, its prediction (the first class of highest probability, as tfjs's argMax over
 * model.probabilities) and its gradient, written to dLogits; `u` is the row's upstream gradient. Every form follows
 * the order of tfjs's operations and of its backward pass (tape.ts accumulates a tensor's gradients as
 * earlier + later, in reverse op order).
 */
function rowFunction(shape: CrossEntropyShape): string {
  const header = `fn row(first: u32, label: u32, u: f32) -> RowResult {`;
  if (shape.top === 'softmax') {
    // logSumExp: m = max z, c = Σ exp(z − m), m + log c; J = that − z_y
    const common = `
      var m = logits[first];
      for (var k = 1u; k < shape.classes; k++) { m = max(m, logits[first + k]); }
      var c = 0.0;
      for (var k = 0u; k < shape.classes; k++) { c = c + exp(logits[first + k] - m); }
      var predicted = 0u;
      var best = -1.0;
      for (var k = 0u; k < shape.classes; k++) {
        let p = exp(logits[first + k] - m) / c;
        if (p > best) { best = p; predicted = k; }
      }
      let lse = m + log(c);`;
    const gradient =
      shape.gradient === 'standard'
        ? // autodiff of lse − z_y: −u at y, then exp's (u / c)·exp(z − m), then max's u − Σ of those at every tied max;
          // once c rounds to 1 at y = argmax, the three cancel to exactly 0 there
          `
      let q = u / c;
      var spread = 0.0;
      for (var k = 0u; k < shape.classes; k++) { spread = spread + q * exp(logits[first + k] - m); }
      let residue = u - spread;
      for (var k = 0u; k < shape.classes; k++) {
        let z = logits[first + k];
        var d = q * exp(z - m);
        if (k == label) { d = -u + d; }
        if (z == m) { d = d + residue; }
        dLogits[first + k] = d;
      }`
        : // stableLogSoftmaxGradient with g = −u·onehot: p_k·u off the label, −u·Σ_{k≠y} p_k at it, p = exp(z − lse)
          `
      var others = 0.0;
      for (var k = 0u; k < shape.classes; k++) {
        if (k != label) { others = others + exp(logits[first + k] - lse); }
      }
      for (var k = 0u; k < shape.classes; k++) {
        dLogits[first + k] = select(exp(logits[first + k] - lse) * u, -(u * others), k == label);
      }`;
    return `${header}${common}${gradient}
      return RowResult(lse - logits[first + label], predicted);
    }`;
  }
  if (shape.top === 'distance') {
    // expDistanceCrossEntropy(d) at d = −z: d_y + Σ_{k≠y} −log(1 − e^(−d_k)), whose autodiff gives −u at y and
    // −((−u) / expm1(d_k)) elsewhere (no saturating step, no gradient choice); the prediction is the first class of
    // highest exp(z)
    return `${header}
      var loss = 0.0;
      var predicted = 0u;
      var best = -1.0;
      for (var k = 0u; k < shape.classes; k++) {
        let d = -logits[first + k];
        let p = exp(logits[first + k]);
        if (p > best) { best = p; predicted = k; }
        if (k == label) {
          loss = loss + d;
          dLogits[first + k] = -u;
        } else {
          loss = loss + negLog1mExp(d);
          dLogits[first + k] = -((-u) / expm1(d));
        }
      }
      return RowResult(loss, predicted);
    }`;
  }
  if (shape.top === 'logistic') {
    // LogisticRegression's softplus(−(y·z)), y = ±1: autodiff gives −(u·σ(x))·y at x = −(y·z), whichever form; the
    // prediction is the first of the two largest of [1 − σ(z), σ(z)], as tf.argMax over its probabilities
    return `${header}
      let z = logits[first];
      let y = select(-1.0, 1.0, label == 1u);
      let x = -(y * z);
      dLogits[first] = -(u * sigmoid(x)) * y;
      let p = sigmoid(z);
      return RowResult(softplus(x), select(0u, 1u, p > 1.0 - p));
    }`;
  }
  // standard: Σ softplus(z) − z_y, whose autodiff gives (−u at y) + u·σ(z); stable: Σ softplus(s·z), s = −1 at y
  // and 1 elsewhere, whose autodiff gives (u·σ(s·z))·s
  const perClass =
    shape.gradient === 'standard'
      ? `loss = loss + softplus(z);
        var d = u * p;
        if (k == label) { d = -u + d; }
        dLogits[first + k] = d;`
      : `let s = select(1.0, -1.0, k == label);
        loss = loss + softplus(s * z);
        dLogits[first + k] = (u * sigmoid(s * z)) * s;`;
  const total = shape.gradient === 'standard' ? 'loss - logits[first + label]' : 'loss';
  return `${header}
      var loss = 0.0;
      var predicted = 0u;
      var best = -1.0;
      for (var k = 0u; k < shape.classes; k++) {
        let z = logits[first + k];
        let p = sigmoid(z);
        if (p > best) { best = p; predicted = k; }
        ${perClass}
      }
      return RowResult(${shape.sigmoidLoss === 'mean' ? `(${total}) / f32(shape.classes)` : total}, predicted);
    }`;
}

function wgsl(shape: CrossEntropyShape): string {
  const statistics = shape.statistics !== null;
  return /* wgsl */ `
${STEP_RECORD_WGSL}
struct Shape {
  rows: u32,
  classes: u32,
  columns: u32,
  batch: u32,
  misclassifiedRows: u32,
  indexStride: u32,
  lanes: u32,
  cleanRowWeight: f32,
  adversarialRowWeight: f32,
  cleanWeight: f32,
  adversarialWeight: f32,
}
struct RowResult { loss: f32, predicted: u32 }
@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(5) var<storage, read_write> dLogits: array<f32>;
${statistics ? '@group(0) @binding(6) var<storage, read_write> stats: array<f32>;' : ''}

${SIGMOID_SOFTPLUS_WGSL}
${LOG_SPACE_WGSL}

${rowFunction(shape)}

${
  statistics
    ? `var<workgroup> cleanLosses: array<f32, ${WORKGROUP}>;
var<workgroup> adversarialLosses: array<f32, ${WORKGROUP}>;
var<workgroup> wrongRows: array<u32, ${WORKGROUP}>;`
    : ''
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let lane = group.y;
  let indices = lane * shape.indexStride + step.lanes[lane].batchStart;
  ${
    statistics
      ? `var clean = 0.0;
  var adversarial = 0.0;
  var wrong = 0u;`
      : ''
  }
  for (var r = group.x * ${WORKGROUP}u + t; r < shape.rows; r += groups.x * ${WORKGROUP}u) {
    let label = labels[rowIndex[indices + r % shape.batch]];
    let isClean = r < shape.batch;
    let result = row((lane * shape.rows + r) * shape.columns, label, select(shape.adversarialRowWeight, shape.cleanRowWeight, isClean));
    ${
      statistics
        ? `if (isClean) { clean = clean + result.loss; } else { adversarial = adversarial + result.loss; }
    if (r < shape.misclassifiedRows && result.predicted != label) { wrong = wrong + 1u; }`
        : ''
    }
  }
  ${
    statistics
      ? `cleanLosses[t] = clean;
  adversarialLosses[t] = adversarial;
  wrongRows[t] = wrong;
  workgroupBarrier();
  for (var half = ${WORKGROUP / 2}u; half > 0u; half = half >> 1u) {
    if (t < half) {
      cleanLosses[t] = cleanLosses[t] + cleanLosses[t + half];
      adversarialLosses[t] = adversarialLosses[t] + adversarialLosses[t + half];
      wrongRows[t] = wrongRows[t] + wrongRows[t + half];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    var objective = shape.cleanWeight * (cleanLosses[0] / f32(shape.batch));
    if (shape.rows > shape.batch) {
      objective = objective + shape.adversarialWeight * (adversarialLosses[0] / f32(shape.rows - shape.batch));
    }
    let at = (step.lanes[lane].statsSlot * shape.lanes + lane) * 2u;
    stats[at] = objective;
    stats[at + 1u] = f32(wrongRows[0]);
  }`
      : ''
  }
}`;
}

function shapeProblems(shape: CrossEntropyShape): string[] {
  const problems: string[] = [];
  if (shape.lanes > MAX_LANES) problems.push(`${shape.lanes} lanes: a step record holds ${MAX_LANES}`);
  if (shape.rows !== shape.batch && shape.rows !== 2 * shape.batch)
    problems.push(`rows ${shape.rows} is neither the batch ${shape.batch} nor twice it`);
  if (shape.statistics && shape.statistics.misclassifiedRows > shape.rows)
    problems.push(`misclassifiedRows ${shape.statistics.misclassifiedRows} exceeds the ${shape.rows} rows`);
  return problems;
}

/**
 * The cross-entropy kernel bound to its buffers: one dispatch per record(step). It does every lane's rows whatever
 * its active flag (the update skips idle lanes): an idle lane's gradient and statistics are there but meaningless.
 */
export class CrossEntropy extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: CrossEntropyShape, buffers: CrossEntropyBuffers): Promise<CrossEntropy> {
    const problems = shapeProblems(shape);
    if (problems.length > 0) throw new Error(`cross-entropy: ${problems.join('; ')}`);
    if (shape.statistics && !buffers.stats) throw new Error('cross-entropy: statistics need a stats buffer');
    const statistics = shape.statistics !== null;
    const kernel = await runtime.kernel(`cross-entropy ${shape.top} ${shape.gradient}`, wgsl(shape), [
      'step',
      'uniform',
      'read',
      'read',
      'read',
      'write',
      ...(statistics ? (['write'] as const) : []),
    ]);
    const data = new ArrayBuffer(44);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    const columns = logitColumns(shape.top, shape.classes);
    u32.set([shape.rows, shape.classes, columns, shape.batch, shape.statistics?.misclassifiedRows ?? 0, shape.indexStride, shape.lanes]);
    const weights = rowWeights(shape);
    f32.set([weights.clean, weights.adversarial, shape.weights.clean, shape.weights.adversarial], 7);
    const uniform = runtime.uniform('cross-entropy shape', data.byteLength, u32);
    const bound = [
      buffers.steps,
      uniform,
      buffers.logits,
      buffers.labels,
      buffers.rowIndex,
      buffers.dLogits,
      ...(statistics ? [buffers.stats!] : []),
    ];
    return new CrossEntropy(runtime, kernel, runtime.bind(kernel, bound), uniform, crossEntropyGrid(shape));
  }
}
