import { BoundKernel, STEP_RECORD_BYTES, type GpuRuntime, type Kernel } from '../runtime.js';

/*
 * The two kernels that turn one input gradient per batch into FGSM error counts at several ε (see
 * fgsm-error-rates.ts): FgsmExamples writes x̃ = x + ε·sign(∇ₓJ) for a group of ε values, one block of n rows per
 * ε, so that one forward pass of the network serves the whole group; ErrorCount counts each block's misclassified
 * rows into that ε's counter, on the device, so that a whole split at every ε costs one read. Both take what
 * changes between passes (which batch, which ε) from a pass record (STEP_RECORD_BYTES) chosen by the dispatch's dynamic offset.
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

/** The shape both kernels are built for. */
export interface FgsmPassShape {
  /** n: rows of a batch (and of each ε's block). */
  batchRows: number;
  /** ε values per pass (blocks of n rows). */
  groupSize: number;
}

export type FgsmExamplesShape = FgsmPassShape & { inputs: number };
export interface FgsmExamplesBuffers {
  passes: GPUBuffer;
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
}

export type ErrorCountShape = FgsmPassShape & {
  classes: number;
  /** N: rows past it (the last batch's padding) are not counted. */
  examples: number;
};
export interface ErrorCountBuffers {
  passes: GPUBuffer;
  /** f32 [groupSize · n × classes]: the pass's logits, block by block. */
  logits: GPUBuffer;
  /** u32 [N]: each example's class. */
  labels: GPUBuffer;
  rowIndex: GPUBuffer;
  /** u32, one per ε slot, added to: the misclassified rows seen so far. */
  counts: GPUBuffer;
}

const WORKGROUP = 64;

const EXAMPLES_WGSL = /* wgsl */ `${PASS_RECORD_WGSL}
struct Shape { batchRows: u32, inputs: u32 }
@group(0) @binding(0) var<uniform> record: FgsmPass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> images: array<f32>;
@group(0) @binding(3) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(4) var<storage, read> direction: array<f32>;
@group(0) @binding(5) var<storage, read> epsilons: array<f32>;
@group(0) @binding(6) var<storage, read_write> adversarial: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let k = id.x;
  let r = id.y;
  if (k >= shape.inputs || r >= shape.batchRows) { return; }
  let x = images[rowIndex[record.cleanStart + r] * shape.inputs + k];
  let d = direction[r * shape.inputs + k];
  // as tfjs's x + direction·ε: ε·d is ±ε or 0 exactly, so x̃ is x + ε rounded once, the same in both
  for (var e = 0u; e < record.epsilons; e++) {
    adversarial[(e * shape.batchRows + r) * shape.inputs + k] = x + epsilons[record.firstSlot + e] * d;
  }
}
`;

const COUNT_WGSL = /* wgsl */ `${PASS_RECORD_WGSL}
struct Shape { batchRows: u32, classes: u32, examples: u32 }
@group(0) @binding(0) var<uniform> record: FgsmPass;
@group(0) @binding(1) var<uniform> shape: Shape;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(5) var<storage, read_write> counts: array<atomic<u32>>;

var<workgroup> wrong: atomic<u32>;

// workgroup (x, e): rows 64x.. of the block of the group's ε number e; integer sums, so the order of the atomic
// additions leaves the counts the same
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = group.x * ${WORKGROUP}u + t;
  let e = group.y;
  if (e < record.epsilons && r < shape.batchRows && record.cleanStart + r < shape.examples) {
    let first = (e * shape.batchRows + r) * shape.classes;
    // the first class of highest logit, as tf.argMax
    var predicted = 0u;
    var best = logits[first];
    for (var k = 1u; k < shape.classes; k++) {
      let z = logits[first + k];
      if (z > best) {
        best = z;
        predicted = k;
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

function checkPassShape(shape: FgsmPassShape): void {
  if ([shape.batchRows, shape.groupSize].some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`FGSM pass shape ${JSON.stringify(shape)}`);
}

function requireBytes(buffer: GPUBuffer, bytes: number, what: string): void {
  if (buffer.size < bytes) throw new Error(`${what}: ${buffer.size} bytes, needs ${bytes}`);
}

interface Built {
  kernel: Kernel;
  group: GPUBindGroup;
  uniform: GPUBuffer;
  grid: [number, number];
}

/** `buffers`: the pass records, the storage buffers read, then the one written; the shape uniform goes second. */
async function build(
  runtime: GpuRuntime,
  name: string,
  code: string,
  shapeWords: readonly number[],
  buffers: readonly GPUBuffer[],
  grid: [number, number],
): Promise<Built> {
  const reads = Array<'read'>(buffers.length - 2).fill('read');
  const kernel = await runtime.kernel(name, code, ['step', 'uniform', ...reads, 'write']);
  const words = Uint32Array.from(shapeWords);
  const uniform = runtime.uniform(`${name} shape`, words.byteLength, words);
  const group = runtime.bind(kernel, [buffers[0]!, uniform, ...buffers.slice(1)]);
  return { kernel, group, uniform, grid };
}

/** One use of a pass kernel, built once; record(pass) adds its dispatch. */
abstract class PassKernel extends BoundKernel {
  protected constructor(runtime: GpuRuntime, built: Built) {
    super(runtime, built.kernel, built.group, built.uniform, built.grid);
  }
}

/** x̃ = x + ε·direction for each ε of the pass's group, into consecutive blocks of n rows. */
export class FgsmExamples extends PassKernel {
  static async create(runtime: GpuRuntime, shape: FgsmExamplesShape, buffers: FgsmExamplesBuffers): Promise<FgsmExamples> {
    checkPassShape(shape);
    const { batchRows: n, inputs, groupSize } = shape;
    requireBytes(buffers.direction, n * inputs * 4, 'direction');
    requireBytes(buffers.adversarial, groupSize * n * inputs * 4, 'adversarial');
    const { passes, images, rowIndex, direction, epsilons, adversarial } = buffers;
    const built = await build(
      runtime,
      'fgsm-examples',
      EXAMPLES_WGSL,
      [n, inputs],
      [passes, images, rowIndex, direction, epsilons, adversarial],
      [Math.ceil(inputs / WORKGROUP), n],
    );
    return new FgsmExamples(runtime, built);
  }
}

/** Adds each ε's misclassified rows of the pass (the first maximum of the logits against the label) to its counter. */
export class ErrorCount extends PassKernel {
  static async create(runtime: GpuRuntime, shape: ErrorCountShape, buffers: ErrorCountBuffers): Promise<ErrorCount> {
    checkPassShape(shape);
    const { batchRows: n, classes, examples, groupSize } = shape;
    requireBytes(buffers.logits, groupSize * n * classes * 4, 'logits');
    const { passes, logits, labels, rowIndex, counts } = buffers;
    const built = await build(
      runtime,
      'error-count',
      COUNT_WGSL,
      [n, classes, examples],
      [passes, logits, labels, rowIndex, counts],
      [Math.ceil(n / WORKGROUP), groupSize],
    );
    return new ErrorCount(runtime, built);
  }
}
