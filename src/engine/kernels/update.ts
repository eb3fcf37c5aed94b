import type { Penalties } from '../../train/sgd.js';
import type { PackedLayer } from '../parameters.js';
import { BoundKernel, type GpuRuntime } from '../runtime.js';
import { MAX_LANES, STEP_RECORD_WGSL } from './step-record.js';

/*
 * The optimiser step of the engine: MomentumSgd.apply then the model's max-norm constraint, for every layer of
 * every active lane in one dispatch, in tfjs's float32 order: g' = (g + λ₂·θ) + λ₁·sign(θ), v ← μ·v − η·g',
 * θ ← θ + v, then each column of W times min(1, maxNorm / max(‖column‖₂, 1e-12)), its squares summed down the rows
 * (as fusedColumnNormScale does), or layer 1's weights clamped at 0. The float64 reference beside it is
 * update-reference.ts.
 */

export interface UpdateShape {
  lanes: number;
  /** Floats in one lane's block of the packed parameters (and of the gradients and velocities). */
  laneFloats: number;
  /** Each layer's [W; b] in a lane's block, the first layer (the one L1 penalises) first. */
  layers: readonly PackedLayer[];
  penalties: Penalties;
  /** null: no max-norm constraint. */
  maxColumnNorm: number | null;
  /** Layer 1's weights projected onto ≥ 0 after the step: the RBF network's clamped precisions (RbfNetwork.constrain). */
  nonNegativeFirstLayer?: boolean;
  /**
   * The layers whose W weight decay reaches, the first ones (default: all): the RBF network's first (ρ), not the
   * second, whose W holds μ (layoutOf).
   */
  decayedLayers?: number;
}

export interface UpdateBuffers {
  /** The step records (STEP_RECORD_WGSL): active, learningRate and momentum per lane. */
  steps: GPUBuffer;
  /** f32 packed parameters, updated in place. */
  parameters: GPUBuffer;
  /** f32, the same layout: ∂objective/∂θ. */
  gradients: GPUBuffer;
  /** f32, the same layout, updated in place. */
  velocities: GPUBuffer;
}

const WORKGROUP = 64;

/** Every layer's columns, one after another: a thread per column of one lane walks its W and bias. */
const totalColumns = (shape: UpdateShape) => shape.layers.reduce((sum, layer) => sum + layer.columns, 0);

/** Workgroups of one dispatch: [columns of all layers / WORKGROUP, lanes]. */
export function updateGrid(shape: UpdateShape): [number, number] {
  return [Math.ceil(totalColumns(shape) / WORKGROUP), shape.lanes];
}

/** Penalties and max-norm are static choices: tfjs skips a penalty whose λ is 0, so the kernel leaves out its terms. */
function wgsl(shape: UpdateShape): string {
  const { weightDecay, l1FirstLayer } = shape.penalties;
  return /* wgsl */ `
${STEP_RECORD_WGSL}
struct Shape {
  laneFloats: u32,
  columns: u32,
  weightDecay: f32,
  l1: f32,
  maxNorm: f32,
  // (offset, inputs, columns, the layer's first column among all layers')
  layers: array<vec4<u32>, ${shape.layers.length}>,
}
@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(3) var<storage, read> gradients: array<f32>;
@group(0) @binding(4) var<storage, read_write> velocities: array<f32>;

fn exactSign(x: f32) -> f32 { return select(0.0, 1.0, x > 0.0) - select(0.0, 1.0, x < 0.0); }

/** One parameter's momentum step; returns its new value. */
fn advance(at: u32, gradient: f32, momentum: f32, rate: f32) -> f32 {
  let v = momentum * velocities[at] - rate * gradient;
  velocities[at] = v;
  let next = parameters[at] + v;
  parameters[at] = next;
  return next;
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let lane = id.y;
  let laneStep = step.lanes[lane];
  if (laneStep.isActive == 0u || id.x >= shape.columns) { return; }
  var j = 0u;
  while (id.x >= shape.layers[j].w + shape.layers[j].z) { j++; }
  let layer = shape.layers[j];
  let columns = layer.z;
  let first = lane * shape.laneFloats + layer.x + (id.x - layer.w);
  var squares = 0.0;
  for (var row = 0u; row < layer.y; row++) {
    let at = first + row * columns;
    var g = gradients[at];
    ${weightDecay > 0 ? `if (j < ${shape.decayedLayers ?? shape.layers.length}u) { g = g + shape.weightDecay * parameters[at]; }` : ''}
    ${l1FirstLayer > 0 ? 'if (j == 0u) { g = g + shape.l1 * exactSign(parameters[at]); }' : ''}
    let next = advance(at, g, laneStep.momentum, laneStep.learningRate);
    ${shape.nonNegativeFirstLayer ? 'if (j == 0u && next < 0.0) { parameters[at] = 0.0; }' : ''}
    squares = squares + next * next;
  }
  let bias = first + layer.y * columns;
  advance(bias, gradients[bias], laneStep.momentum, laneStep.learningRate);
  ${
    shape.maxColumnNorm === null
      ? ''
      : `let scale = min(1.0, shape.maxNorm / max(sqrt(squares), 1e-12));
  for (var row = 0u; row < layer.y; row++) {
    let at = first + row * columns;
    parameters[at] = parameters[at] * scale;
  }`
  }
}`;
}

/** The update kernel bound to its buffers: one dispatch per record(step). */
export class Update extends BoundKernel {
  static async create(runtime: GpuRuntime, shape: UpdateShape, buffers: UpdateBuffers): Promise<Update> {
    if (shape.layers.length === 0) throw new Error('update: no layers');
    if (shape.lanes > MAX_LANES) throw new Error(`update: ${shape.lanes} lanes: a step record holds ${MAX_LANES}`);
    if (shape.nonNegativeFirstLayer && shape.maxColumnNorm !== null) throw new Error('update: clamped weights take no max-norm');
    const kernel = await runtime.kernel('update', wgsl(shape), ['step', 'uniform', 'write', 'read', 'write']);
    const data = new ArrayBuffer(16 * (2 + shape.layers.length));
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    u32.set([shape.laneFloats, totalColumns(shape)]);
    f32.set([shape.penalties.weightDecay, shape.penalties.l1FirstLayer, shape.maxColumnNorm ?? 0], 2);
    let firstColumn = 0;
    shape.layers.forEach((layer, j) => {
      u32.set([layer.offset, layer.inputs, layer.columns, firstColumn], 8 + 4 * j);
      firstColumn += layer.columns;
    });
    const uniform = runtime.uniform('update shape', data.byteLength, u32);
    const group = runtime.bind(kernel, [buffers.steps, uniform, buffers.parameters, buffers.gradients, buffers.velocities]);
    return new Update(runtime, kernel, group, uniform, updateGrid(shape));
  }
}
