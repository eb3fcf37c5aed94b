import type { MaxoutTop } from '../../models/classifier.js';
import { BoundKernel, type GpuRuntime } from '../runtime.js';
import type { EngineGradient } from './cross-entropy.js';
import { SIGMOID_SOFTPLUS_WGSL } from './float-functions.js';
import { STEP_RECORD_WGSL } from './step-record.js';

/*
 * The loss layer of FGSM against a whole ensemble (§9, models/ensemble.ts): from every member's logits of one batch,
 * the gradient of J = Σ_rows −log p̄_y, p̄ = (1/M) Σ_m p_m, with respect to each member's logits, computed as tfjs's
 * autodiff of EnsembleClassifier computes it in float32. Per row, S_m = log p_m,y is the member's logProbabilities
 * at the label; logsumexp over the members gives each its upstream g_m = −w_m, w = softmax_m(S) (exactly
 * p_m,y / Σ p_m',y in real numbers); the member's log-probability backward turns g_m at y into its dLogits. One
 * thread per row, no sum across threads: every bit is decided by a fixed order. The float64 reference beside it is
 * ensemble-loss-reference.ts.
 */

export interface EnsembleLossShape {
  /** Each member's top, in member order (the order of EnsembleClassifier.members). */
  tops: readonly MaxoutTop[];
  /** Rows of a batch (n). */
  rows: number;
  classes: number;
  /** How a softmax member's log-softmax is differentiated (logSoftmax in models/linear.ts); a sigmoid member has one form. */
  gradient: EngineGradient;
}

export interface EnsembleLossBuffers {
  /** The step records (STEP_RECORD_WGSL): lane 0's batchStart is where the batch's indices start in rowIndex. */
  steps: GPUBuffer;
  /** f32 [M · rows × classes]: member m's logits of the batch in block m. */
  logits: GPUBuffer;
  /** u32: J's label of every resident example. */
  labels: GPUBuffer;
  /** u32: the batches' example indices. */
  rowIndex: GPUBuffer;
  /** f32 [M · rows × classes], written: ∂J/∂z of member m's logits in block m. */
  dLogits: GPUBuffer;
}

const WORKGROUP = 64;

/** The ensemble's members: at least one, at most what the kernel's per-row array is built for. */
export const MOST_MEMBERS = 64;

/** log p_y of a softmax member as tf.logSoftmax computes it: (z_y − max z) − log Σ exp(z − max z). */
const SOFTMAX_LOG_PROBABILITY = /* wgsl */ `
fn logSoftmaxAt(first: u32, k: u32) -> f32 {
  var m = logits[first];
  for (var j = 1u; j < shape.classes; j++) { m = max(m, logits[first + j]); }
  var c = 0.0;
  for (var j = 0u; j < shape.classes; j++) { c = c + exp(logits[first + j] - m); }
  return (logits[first + k] - m) - log(c);
}`;

/**
 * A softmax member's dLogits from upstream g at the label. standard: tf.logSoftmax's own gradient dy − (Σ dy)·exp(value),
 * Σ dy = g exactly; stable: stableLogSoftmaxGradient(exp(value), dy), whose products with the ones-off-diagonal
 * matrix are Σ_{j≠k} p_j and g off the label, 0 at it.
 */
function softmaxBackward(gradient: EngineGradient): string {
  const body =
    gradient === 'standard'
      ? `for (var k = 0u; k < shape.classes; k++) {
    dLogits[first + k] = select(0.0, g, k == label) - g * exp(logSoftmaxAt(first, k));
  }`
      : `var others = 0.0;
  for (var k = 0u; k < shape.classes; k++) {
    if (k != label) { others = others + exp(logSoftmaxAt(first, k)); }
  }
  for (var k = 0u; k < shape.classes; k++) {
    dLogits[first + k] = select(0.0 - exp(logSoftmaxAt(first, k)) * g, g * others, k == label);
  }`;
  return /* wgsl */ `
fn softmaxBackward(first: u32, label: u32, g: f32) {
  ${body}
}`;
}

/** A sigmoid member: log p_y = −softplus(−z_y) (MaxoutNetwork.logProbabilities), whose autodiff gives g·σ(−z_y) at y, 0 elsewhere. */
const SIGMOID_TOP = /* wgsl */ `${SIGMOID_SOFTPLUS_WGSL}
fn logSigmoidAt(first: u32, k: u32) -> f32 { return -softplus(-logits[first + k]); }
fn sigmoidBackward(first: u32, label: u32, g: f32) {
  for (var k = 0u; k < shape.classes; k++) {
    dLogits[first + k] = select(0.0, g * sigmoid(-logits[first + k]), k == label);
  }
}`;

function wgsl(shape: EnsembleLossShape): string {
  const members = shape.tops.length;
  const first = (m: number) => `(${m}u * shape.rows + r) * shape.classes`;
  const logProbability = (top: MaxoutTop, m: number) => `${top === 'softmax' ? 'logSoftmaxAt' : 'logSigmoidAt'}(${first(m)}, label)`;
  const backward = (top: MaxoutTop, m: number) => `${top === 'softmax' ? 'softmaxBackward' : 'sigmoidBackward'}(${first(m)}, label, g[${m}]);`;
  return /* wgsl */ `
${STEP_RECORD_WGSL}
struct Shape { rows: u32, classes: u32 }
@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(5) var<storage, read_write> dLogits: array<f32>;
${shape.tops.includes('softmax') ? `${SOFTMAX_LOG_PROBABILITY}${softmaxBackward(shape.gradient)}` : ''}
${shape.tops.includes('sigmoid') ? SIGMOID_TOP : ''}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let r = id.x;
  if (r >= shape.rows) { return; }
  let label = labels[rowIndex[step.lanes[0].batchStart + r]];
  var s: array<f32, ${members}>;
  ${shape.tops.map((top, m) => `s[${m}] = ${logProbability(top, m)};`).join('\n  ')}
  // logSumExp over the members (tfjs's: max, exp of the shifted, sum, log) differentiated with upstream −1, the
  // gradient of −log p̄_y (the − log M does not change it): q·exp(S_m − max), plus at a tied max the max's share
  // −1 − Σ q·exp(S − max), accumulated after it as tfjs's tape does
  var top = s[0];
  for (var m = 1u; m < ${members}u; m++) { top = max(top, s[m]); }
  var c = 0.0;
  for (var m = 0u; m < ${members}u; m++) { c = c + exp(s[m] - top); }
  let q = -1.0 / c;
  var spread = 0.0;
  for (var m = 0u; m < ${members}u; m++) { spread = spread + q * exp(s[m] - top); }
  let residue = -1.0 - spread;
  var g: array<f32, ${members}>;
  for (var m = 0u; m < ${members}u; m++) {
    g[m] = q * exp(s[m] - top);
    if (s[m] == top) { g[m] = g[m] + residue; }
  }
  ${shape.tops.map((top, m) => backward(top, m)).join('\n  ')}
}`;
}

/** The ensemble's loss kernel bound to its buffers: one dispatch per record(batch), a thread per row. */
export class EnsembleLoss extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: EnsembleLossShape, buffers: EnsembleLossBuffers): Promise<EnsembleLoss> {
    const members = shape.tops.length;
    if (members < 1 || members > MOST_MEMBERS) throw new Error(`ensemble loss: 1 to ${MOST_MEMBERS} members, not ${members}`);
    if (!(shape.rows >= 1 && shape.classes >= 1)) throw new Error(`ensemble loss: ${shape.rows} rows of ${shape.classes} classes`);
    const floats = members * shape.rows * shape.classes;
    for (const [name, buffer] of [
      ['logits', buffers.logits],
      ['dLogits', buffers.dLogits],
    ] as const)
      if (buffer.size < floats * 4)
        throw new Error(`ensemble loss: ${name} holds ${buffer.size} bytes, not the ${floats * 4} of every member's rows`);
    const kernel = await runtime.kernel(`ensemble loss ${shape.tops.join(' ')} ${shape.gradient}`, wgsl(shape), [
      'step',
      'uniform',
      'read',
      'read',
      'read',
      'write',
    ]);
    const uniform = runtime.uniform('ensemble loss shape', 8, Uint32Array.from([shape.rows, shape.classes]));
    const group = runtime.bind(kernel, [buffers.steps, uniform, buffers.logits, buffers.labels, buffers.rowIndex, buffers.dLogits]);
    return new EnsembleLoss(runtime, kernel, group, uniform, [Math.ceil(shape.rows / WORKGROUP)]);
  }
}
