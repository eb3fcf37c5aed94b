import type { RbfSpec } from '../../models/classifier.js';
import type { EngineNetwork } from '../network.js';
import type { PackedLayout } from '../parameters.js';
import { BoundKernel, type Binding, type GpuRuntime, type Kernel } from '../runtime.js';
import { LOG_SPACE_WGSL, SOFTPLUS_THRESHOLD } from './float-functions.js';
import { MAX_LANES } from './step-record.js';

/*
 * The RBF network of §7 on the engine (RbfNetwork): its logits −d_k(x), d_k(x) = relu(Σ_f a_fk x_f² − 2 Σ_f x_f a_fk μ_fk
 * + Σ_f a_fk μ_fk²), a = f(ρ); the gradient of its parameters ρ and μ; and the FGSM step from the gradient of its
 * input. Each follows tfjs's operations on the model (the two products, the constant, the relu) and the order in which
 * autodiff meets them, so that they agree with tfjs to float32 rounding; the float64 reference beside them is
 * rbf-reference.ts. The network is small (K = 10 classes), so a thread takes one output and walks the sum it needs:
 * no tiles.
 *
 * ρ and μ lie in each lane's block of the packed parameters as layoutOf(network) places them: ρ [inputs × K] at 0,
 * μ [inputs × K] at `muOffset`; their gradients at the same places of the gradient buffer.
 */

export interface RbfShape {
  lanes: number;
  /** Rows per lane in the pass. */
  rows: number;
  inputs: number;
  classes: number;
  laneFloats: number;
  /** Where μ starts in a lane's block. */
  muOffset: number;
  precision: RbfSpec['precision'];
}

/** The shape of a pass of `rows` rows per lane over `lanes` stacked copies of an RBF network packed by `layout` (layoutOf). */
export function rbfShape(network: EngineNetwork, layout: PackedLayout, lanes: number, rows: number): RbfShape {
  if (!network.rbf) throw new Error('not an RBF network');
  const mu = layout.slots.find((slot) => slot.role === 'bias')!;
  const { inputSize: inputs, classes } = network;
  return { lanes, rows, inputs, classes: classes.length, laneFloats: layout.laneFloats, muOffset: mu.within, precision: network.rbf.precision };
}

const WORKGROUP = 64;

/**
 * a = f(ρ) and ∂a/∂ρ as tfjs's kernels compute them: exp (whose gradient is its value), softplus (σ; between its
 * thresholds log1p(exp(ρ)), as its cpu kernel's float64 log(exp(ρ) + 1) rounds, not webgpu's float32 log(1 + exp(ρ)),
 * which loses digits to 1), or ρ itself.
 */
function precisionWgsl(precision: RbfSpec['precision']): string {
  const value = {
    exp: 'return exp(rho);',
    softplus: `if (rho > ${SOFTPLUS_THRESHOLD}) { return rho; }
  if (rho < ${-SOFTPLUS_THRESHOLD}) { return exp(rho); }
  return log1p(exp(rho));`,
    clamp: 'return rho;',
  }[precision];
  const slope = { exp: 'return exp(rho);', softplus: 'return 1.0 / (1.0 + exp(-rho));', clamp: 'return 1.0;' }[precision];
  return /* wgsl */ `${precision === 'softplus' ? LOG_SPACE_WGSL : ''}
fn precisionOf(rho: f32) -> f32 {
  ${value}
}
fn precisionSlope(rho: f32) -> f32 {
  ${slope}
}`;
}

const SHAPE_WGSL = /* wgsl */ `
struct Shape { rows: u32, inputs: u32, classes: u32, laneFloats: u32, muOffset: u32, epsilon: f32 }
@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> parameters: array<f32>;
@group(0) @binding(2) var<storage, read> input: array<f32>;
`;

/**
 * ∂J/∂(the relu's input) of row r, class k, from ∂J/∂z: through z = −d and d = relu(pre), whose gradient tfjs takes
 * where pre > 0, that is where d > 0 and z < 0.
 */
const UPSTREAM_WGSL = /* wgsl */ `
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> dLogits: array<f32>;
fn upstream(at: u32) -> f32 {
  return select(0.0, -dLogits[at], logits[at] < 0.0);
}
`;

const FORWARD_WGSL = (precision: RbfSpec['precision']) => /* wgsl */ `${SHAPE_WGSL}
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
${precisionWgsl(precision)}

// thread (r·K + k, lane): −d_k of row r
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let lane = id.y;
  if (id.x >= shape.rows * shape.classes) { return; }
  let r = id.x / shape.classes;
  let k = id.x % shape.classes;
  let x0 = (lane * shape.rows + r) * shape.inputs;
  let p0 = lane * shape.laneFloats;
  var quadratic = 0.0;
  var cross = 0.0;
  var constant = 0.0;
  for (var f = 0u; f < shape.inputs; f++) {
    let at = p0 + f * shape.classes + k;
    let a = precisionOf(parameters[at]);
    let mu = parameters[at + shape.muOffset];
    let aMu = a * mu;
    let x = input[x0 + f];
    quadratic = quadratic + (x * x) * a;
    cross = cross + x * aMu;
    constant = constant + aMu * mu;
  }
  logits[(lane * shape.rows + r) * shape.classes + k] = -max((quadratic - cross * 2.0) + constant, 0.0);
}
`;

const PARAMETER_GRADIENT_WGSL = (precision: RbfSpec['precision']) => /* wgsl */ `${SHAPE_WGSL}${UPSTREAM_WGSL}
@group(0) @binding(5) var<storage, read_write> gradients: array<f32>;
${precisionWgsl(precision)}

// thread (f·K + k, lane): ∂J/∂ρ_fk and ∂J/∂μ_fk over the pass's rows; the first K threads also zero ρ's unused bias row
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let lane = id.y;
  if (id.x >= shape.inputs * shape.classes) { return; }
  let f = id.x / shape.classes;
  let k = id.x % shape.classes;
  let p0 = lane * shape.laneFloats;
  // the products' gradients: (x∘x)ᵀ·P, xᵀ·(−P·2) and the constant's Σ_r P
  var squares = 0.0;
  var linear = 0.0;
  var total = 0.0;
  for (var r = 0u; r < shape.rows; r++) {
    let row = lane * shape.rows + r;
    let g = upstream(row * shape.classes + k);
    let x = input[row * shape.inputs + f];
    squares = squares + (x * x) * g;
    linear = linear + x * ((-g) * 2.0);
    total = total + g;
  }
  let at = p0 + id.x;
  let rho = parameters[at];
  let a = precisionOf(rho);
  let mu = parameters[at + shape.muOffset];
  let aMu = a * mu;
  // aMu = a·μ feeds the cross product and the constant Σ_f aMu·μ; a feeds the quadratic product and aMu
  let dAMu = linear + total * mu;
  let dA = squares + dAMu * mu;
  gradients[at] = dA * precisionSlope(rho);
  gradients[at + shape.muOffset] = total * aMu + dAMu * a;
  if (id.x < shape.classes) { gradients[p0 + shape.inputs * shape.classes + id.x] = 0.0; }
}
`;

const INPUT_SIGN_WGSL = (precision: RbfSpec['precision'], fromInput: boolean) => /* wgsl */ `${SHAPE_WGSL}${UPSTREAM_WGSL}
@group(0) @binding(5) var<storage, read_write> output: array<f32>;
${precisionWgsl(precision)}

// thread (r·inputs + f, lane): ${fromInput ? 'x̃ = x + ε·sign(∂J/∂x)' : 'sign(∂J/∂x)'} of row r, pixel f
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let lane = id.y;
  if (id.x >= shape.rows * shape.inputs) { return; }
  let r = id.x / shape.inputs;
  let f = id.x % shape.inputs;
  let row = lane * shape.rows + r;
  let p0 = lane * shape.laneFloats;
  // from the quadratic product through x∘x (whose gradient is dy·(x·2)), and from the cross product
  var throughSquare = 0.0;
  var throughCross = 0.0;
  for (var k = 0u; k < shape.classes; k++) {
    let g = upstream(row * shape.classes + k);
    let at = p0 + f * shape.classes + k;
    let a = precisionOf(parameters[at]);
    throughSquare = throughSquare + g * a;
    throughCross = throughCross + ((-g) * 2.0) * (a * parameters[at + shape.muOffset]);
  }
  let x = input[row * shape.inputs + f];
  let gradient = throughSquare * (x * 2.0) + throughCross;
  output[row * shape.inputs + f] = ${fromInput ? 'x + shape.epsilon * sign(gradient)' : 'sign(gradient)'};
}
`;

function checkShape(shape: RbfShape): void {
  const sizes = [shape.lanes, shape.rows, shape.inputs, shape.classes];
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`RBF shape ${JSON.stringify(shape)}`);
  if (shape.lanes > MAX_LANES) throw new Error(`RBF: ${shape.lanes} lanes: the engine stacks at most ${MAX_LANES}`);
  if (shape.muOffset < shape.inputs * shape.classes || shape.muOffset + shape.inputs * shape.classes > shape.laneFloats)
    throw new Error(`RBF: μ at ${shape.muOffset} does not fit a lane's ${shape.laneFloats} floats beside ρ`);
}

/** A kernel bound once: its shape uniform (made here) first, then `buffers`, all read but the last, which it writes. */
async function build(
  runtime: GpuRuntime,
  name: string,
  code: string,
  shape: RbfShape,
  epsilon: number,
  buffers: readonly GPUBuffer[],
  threads: number,
): Promise<[GpuRuntime, Kernel, GPUBindGroup, GPUBuffer, [number, number]]> {
  checkShape(shape);
  const bindings: Binding[] = ['uniform', ...buffers.map((_, i): Binding => (i === buffers.length - 1 ? 'write' : 'read'))];
  const kernel = await runtime.kernel(name, code, bindings);
  const data = new ArrayBuffer(24);
  new Uint32Array(data).set([shape.rows, shape.inputs, shape.classes, shape.laneFloats, shape.muOffset]);
  new Float32Array(data)[5] = epsilon;
  const uniform = runtime.uniform(`${name} shape`, data.byteLength, new Uint8Array(data));
  const group = runtime.bind(kernel, [uniform, ...buffers]);
  return [runtime, kernel, group, uniform, [Math.ceil(threads / WORKGROUP), shape.lanes]];
}

/** The logits −d [lanes·R × K] of a pass's input [lanes·R × inputs]. */
export class RbfForward extends BoundKernel {
  static async create(
    runtime: GpuRuntime,
    shape: RbfShape,
    buffers: { parameters: GPUBuffer; input: GPUBuffer; logits: GPUBuffer },
  ): Promise<RbfForward> {
    const { parameters, input, logits } = buffers;
    const threads = shape.rows * shape.classes;
    return new RbfForward(
      ...(await build(runtime, `rbf-forward ${shape.precision}`, FORWARD_WGSL(shape.precision), shape, 0, [parameters, input, logits], threads)),
    );
  }
}

/** ∂J/∂ρ and ∂J/∂μ of a pass (its rows' ∂J/∂z as the loss kernel weighted them) into the gradient buffer's places of ρ and μ. */
export class RbfParameterGradient extends BoundKernel {
  static async create(
    runtime: GpuRuntime,
    shape: RbfShape,
    buffers: { parameters: GPUBuffer; input: GPUBuffer; logits: GPUBuffer; dLogits: GPUBuffer; gradients: GPUBuffer },
  ): Promise<RbfParameterGradient> {
    const { parameters, input, logits, dLogits, gradients } = buffers;
    const threads = shape.inputs * shape.classes;
    const code = PARAMETER_GRADIENT_WGSL(shape.precision);
    return new RbfParameterGradient(
      ...(await build(runtime, `rbf-gradient ${shape.precision}`, code, shape, 0, [parameters, input, logits, dLogits, gradients], threads)),
    );
  }
}

/**
 * The FGSM step of a pass over n clean rows: x̃ = x + ε·sign(∇ₓJ) [lanes·n × inputs] (training's J̃), or, with ε
 * null, sign(∇ₓJ) itself (the direction every ε of an attack takes).
 */
export class RbfInputSign extends BoundKernel {
  static async create(
    runtime: GpuRuntime,
    shape: RbfShape & { epsilon: number | null },
    buffers: { parameters: GPUBuffer; input: GPUBuffer; logits: GPUBuffer; dLogits: GPUBuffer; output: GPUBuffer },
  ): Promise<RbfInputSign> {
    const { parameters, input, logits, dLogits, output } = buffers;
    const threads = shape.rows * shape.inputs;
    const fromInput = shape.epsilon !== null;
    const code = INPUT_SIGN_WGSL(shape.precision, fromInput);
    const name = `rbf-input-sign ${shape.precision}${fromInput ? '' : ' direction'}`;
    return new RbfInputSign(...(await build(runtime, name, code, shape, shape.epsilon ?? 0, [parameters, input, logits, dLogits, output], threads)));
  }
}
