import { BoundKernel, type GpuRuntime } from '../runtime.js';
import type { BatchInput, PassDropout } from './layers.js';
import { MAX_LANES, STEP_RECORD_WGSL } from './step-record.js';
import { THREEFRY_WGSL } from './threefry.js';
import { dropoutThreshold, type NoiseDistribution } from '../../core/counter-random.js';

/*
 * A pass's input made once: each lane's minibatch rows gathered from the resident examples (and its x̃ rows after
 * them), times the pass's input dropout mask, into one [lanes · rows × inputs] buffer. The first layer's forward GEMM
 * and its weight gradient then read plain rows: drawing the mask inside their loads would draw it again for every
 * tile of columns (15 times over at 240 units, 100 at 1,600). The reference is layers-reference.ts's
 * batchInputReference; with noise, counterNoise added to its clean rows.
 */

/**
 * §6's noise controls: x̃ = x + noise drawn here from the clean row (counterNoise's draw under the lane's dropout
 * seed, row r of x̃ from row r of x), before the input mask, as tfjs masks the rows [x; x̃]. A pass of 2n rows
 * (alpha-mix) holds x then x̃; a pass of n rows (replace) holds x̃ alone.
 */
export interface BatchNoise {
  distribution: NoiseDistribution;
  epsilon: number;
}

export interface BatchInputShape {
  lanes: number;
  /** Rows of each lane's pass: n, or 2n with x̃. */
  rows: number;
  inputs: number;
  dropout: PassDropout | null;
  noise?: BatchNoise | null;
}

const WORKGROUP = 256;

export function batchInputGrid(shape: Pick<BatchInputShape, 'lanes' | 'rows' | 'inputs'>): [number, number, number] {
  return [Math.ceil((shape.rows * shape.inputs) / WORKGROUP), 1, shape.lanes];
}

function shader(shape: BatchInputShape, adversarial: boolean): string {
  const seed = shape.dropout?.seed;
  const noise = shape.noise?.distribution;
  const draw =
    noise === 'sign'
      ? 'signNoise(step.lanes[lane].dropoutSeed, source, k, dims.epsilon)'
      : 'uniformNoise(step.lanes[lane].dropoutSeed, source, k, dims.epsilon, dims.opaqueZero)';
  return /* wgsl */ `
${STEP_RECORD_WGSL}
${THREEFRY_WGSL}
struct Dims { rows: u32, inputs: u32, batchRows: u32, indexStride: u32, threshold: u32, scale: f32, epsilon: f32, opaqueZero: u32 }
@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> images: array<f32>;
@group(0) @binding(3) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
${adversarial ? '@group(0) @binding(5) var<storage, read> adversarial: array<f32>;' : ''}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>) {
  let lane = group.z;
  let element = id.x;
  if (element >= dims.rows * dims.inputs) { return; }
  let row = element / dims.inputs;
  let k = element % dims.inputs;
  var value: f32;
  ${
    noise
      ? `let source = row % dims.batchRows;
  value = images[rowIndex[lane * dims.indexStride + step.lanes[lane].batchStart + source] * dims.inputs + k];
  // x̃'s rows are the pass's last n: all of a replace pass, the second half of [x; x̃]
  if (row + dims.batchRows >= dims.rows) { value = value + ${draw}; }`
      : `if (row < dims.batchRows) {
    value = images[rowIndex[lane * dims.indexStride + step.lanes[lane].batchStart + row] * dims.inputs + k];
  } else {
    ${adversarial ? 'value = adversarial[(lane * dims.batchRows + row - dims.batchRows) * dims.inputs + k];' : 'value = 0.0;'}
  }`
  }
  ${seed ? `value = value * select(0.0, dims.scale, dropoutKept(step.lanes[lane].${seed}, 0u, row, k, dims.threshold));` : ''}
  output[(lane * dims.rows + row) * dims.inputs + k] = value;
}
`;
}

/** One use of the kernel: a pass's masked batch input written to `output` [lanes · rows × inputs]. */
export class BatchInputKernel extends BoundKernel {
  static async create(
    runtime: GpuRuntime,
    shape: BatchInputShape,
    buffers: { steps: GPUBuffer; batch: BatchInput; output: GPUBuffer },
  ): Promise<BatchInputKernel> {
    const { lanes, rows, inputs, dropout, noise } = shape;
    const { batch } = buffers;
    const n = batch.batchRows;
    if (lanes < 1 || lanes > MAX_LANES) throw new Error(`${lanes} lanes: the engine stacks 1 to ${MAX_LANES}`);
    if (rows !== n && rows !== 2 * n) throw new Error(`a pass over the batch has n or 2n rows per lane, not ${rows} (n = ${n})`);
    // noisy rows are drawn here; other x̃ rows are read
    const adversarial = rows > n && !noise;
    if (adversarial && !batch.adversarial) throw new Error('a pass of 2n rows per lane reads x̃: the batch input needs its adversarial buffer');
    const kernel = await runtime.kernel(
      `batch-input${adversarial ? '-adversarial' : ''}${noise ? `-${noise.distribution}-noise` : ''}${dropout ? `-${dropout.seed}` : ''}`,
      shader(shape, adversarial),
      ['step', 'uniform', 'read', 'read', 'write', ...(adversarial ? (['read'] as const) : [])],
    );
    const values = new ArrayBuffer(32);
    const u32 = new Uint32Array(values);
    const f32 = new Float32Array(values);
    u32.set([rows, inputs, n, batch.indexStride, dropout ? dropoutThreshold(dropout.inputKeep) : 0]);
    f32[5] = dropout?.inputScale ?? 1;
    f32[6] = noise?.epsilon ?? 0; // and opaqueZero, u32[7], stays 0
    const dims = runtime.uniform('batch-input dims', values.byteLength, new Uint8Array(values));
    const group = runtime.bind(kernel, [
      buffers.steps,
      dims,
      batch.images,
      batch.rowIndex,
      buffers.output,
      ...(adversarial ? [batch.adversarial!] : []),
    ]);
    return new BatchInputKernel(runtime, kernel, group, dims, batchInputGrid(shape));
  }
}
