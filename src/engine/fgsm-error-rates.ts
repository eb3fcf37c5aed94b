import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier, ModelSpec } from '../models/classifier.js';
import { CrossEntropy, type EngineGradient } from './kernels/cross-entropy.js';
import { encodePasses, ErrorCount, FgsmExamples, type FgsmPass } from './kernels/error-count.js';
import { BackwardData, HiddenForward, OutputForward, type BatchInput, type LayerShape } from './kernels/layers.js';
import { encodeSteps, type LaneStep } from './kernels/step-record.js';
import { PackedLayout } from './parameters.js';
import { ResidentData } from './resident-data.js';
import type { GpuRuntime } from './runtime.js';
import type { RecordedKernel } from './step-program.js';

type MaxoutSpec = Extract<ModelSpec, { kind: 'maxout' }>;

/** The most rows of one batch's gradient pass. */
export const MOST_BATCH_ROWS = 10_000;

/**
 * The largest buffer an x̃ pass makes by default (x̃ itself, for MNIST): the ε values of a call share one forward
 * pass over their blocks of rows where they fit in it, so that a call's dispatches do not grow with the number of ε.
 */
export const PASS_BYTES = 256 * 2 ** 20;

export interface FgsmErrorRatesOptions {
  /** The most rows of a batch (default and at most MOST_BATCH_ROWS). */
  batchRows?: number;
  /** The largest buffer of an x̃ pass (default PASS_BYTES; the device's binding limit bounds it too). */
  passBytes?: number;
}

const GRADIENT_FORMS: readonly EngineGradient[] = ['standard', 'stable'];

/** What every pass of the network shares: the device, the network's shape, its packed parameters and step records. */
interface Network {
  runtime: GpuRuntime;
  spec: MaxoutSpec;
  layout: PackedLayout;
  parameters: GPUBuffer;
  /** Records 0..batches − 1: batch b (batchStart b·n); record `batches`, batchStart 0: passes over rows of their own. */
  steps: GPUBuffer;
}

/** The batches of a split: `count` of `rows` rows (rows past the split repeat its first example and are not counted). */
interface Batches {
  rows: number;
  count: number;
  /** N. */
  examples: number;
  /** u32 [count · rows]: the split's resident rows in order, then the padding. */
  rowIndex: GPUBuffer;
}

/** Buffers and kernel uses made for one purpose, released together (also when building them fails half-way). */
class Holdings {
  private readonly buffers = new Map<string, GPUBuffer>();
  private readonly kernels: RecordedKernel[] = [];

  constructor(private readonly runtime: GpuRuntime) {}

  /** A zeroed storage buffer of `contents` bytes, or one holding `contents`. */
  add(name: string, contents: number | ArrayBufferView): GPUBuffer {
    const buffer = typeof contents === 'number' ? this.runtime.buffer(name, contents) : this.runtime.bufferWith(name, contents);
    this.buffers.set(name, buffer);
    return buffer;
  }

  addUniform(name: string, data: ArrayBufferView): GPUBuffer {
    const buffer = this.runtime.uniform(name, data.byteLength, data);
    this.buffers.set(name, buffer);
    return buffer;
  }

  get(name: string): GPUBuffer {
    const buffer = this.buffers.get(name);
    if (!buffer) throw new Error(`no buffer ${name}`);
    return buffer;
  }

  keep<K extends RecordedKernel>(kernel: K): K {
    this.kernels.push(kernel);
    return kernel;
  }

  /** Builds with `build`, releasing whatever was made if it throws. */
  static async build<T>(runtime: GpuRuntime, build: (held: Holdings) => Promise<T>): Promise<T> {
    const held = new Holdings(runtime);
    try {
      return await build(held);
    } catch (error) {
      held.release();
      throw error;
    }
  }

  release(): void {
    for (const kernel of this.kernels.splice(0)) kernel.dispose();
    for (const buffer of this.buffers.values()) this.runtime.release(buffer);
    this.buffers.clear();
  }
}

/**
 * The error of a maxout network on FGSM examples of one split at several ε, as fgsmErrorRate measures it (true
 * labels, no clipping, the deterministic network, the softmax gradient given) but on the device: the split resident,
 * one input gradient per batch serving every ε, the network's parameters copied in from its tfjs variables once per
 * call, the misclassified rows counted on the device and read once per call.
 *
 * Per batch of n rows: the forward pass, the loss gradient (of J summed over the rows), the backward pass down to
 * sign(∇ₓJ); then, per group of ε values, x̃ at each, one forward pass over all their blocks of n rows, and the
 * count. That is 2L + 3 dispatches for L hidden layers plus L + 3 per group, and one group unless x̃ at every ε
 * outgrows the pass's buffer limit (PASS_BYTES): 12 a batch for two hidden layers.
 *
 * The counts equal fgsmErrorRate's wherever the two float32 computations agree on each prediction and each sign of
 * ∇ₓJ: they sum their products in different orders, so a logit or a gradient that lands within rounding of a tie or
 * of 0 may go either way (rare; likelier where the softmax saturates and the gradient is made of tiny p_k).
 */
export class FgsmErrorRates {
  private passes: EpsilonPasses | null = null;

  private constructor(
    private readonly network: Network,
    private readonly resident: ResidentData,
    private readonly batches: Batches,
    private readonly held: Holdings,
    private readonly passBytes: number,
    /** Per gradient form: the kernels down to the last hidden layer's gradient, then the one to sign(∇ₓJ). */
    private readonly gradientPasses: ReadonlyMap<EngineGradient, { toLayer1: RecordedKernel[]; direction: RecordedKernel }>,
  ) {}

  /** Uploads `split` and builds the gradient pass (both forms) for batches of at most `batchRows` rows. */
  static async create(runtime: GpuRuntime, spec: ModelSpec, split: Split, options: FgsmErrorRatesOptions = {}): Promise<FgsmErrorRates> {
    if (spec.kind !== 'maxout') throw new Error(`the engine's FGSM error rates are for maxout networks, not ${spec.kind}`);
    if (spec.inputSize !== IMAGE_SIZE) throw new Error(`the engine's resident data holds ${IMAGE_SIZE}-pixel images, not ${spec.inputSize}`);
    if (split.n < 1) throw new Error(`the ${split.name} split is empty`);
    const most = options.batchRows ?? MOST_BATCH_ROWS;
    if (!Number.isInteger(most) || most < 1 || most > MOST_BATCH_ROWS) throw new Error(`batchRows: 1 to ${MOST_BATCH_ROWS}, not ${most}`);
    const passBytes = Math.min(options.passBytes ?? PASS_BYTES, runtime.device.limits.maxStorageBufferBindingSize);
    if (!(passBytes > 0)) throw new Error(`passBytes: a positive number of bytes, not ${options.passBytes}`);
    // batches as even as they can be: the last one's padding is the least work
    const count = Math.ceil(split.n / most);
    const n = Math.ceil(split.n / count);
    const resident = new ResidentData(runtime);
    try {
      const base = resident.baseOf(split);
      return await Holdings.build(runtime, async (held) => {
        const rowIndex = held.add(
          'rowIndex',
          Uint32Array.from({ length: count * n }, (_, i) => base + (i < split.n ? i : 0)),
        );
        const layout = layoutOf(spec);
        const starts = [...Array.from({ length: count }, (_, b) => b * n), 0];
        const network: Network = {
          runtime,
          spec,
          layout,
          parameters: held.add('params', layout.laneFloats * 4),
          steps: held.addUniform('fgsm steps', new Uint8Array(encodeSteps(starts.map((batchStart) => [laneStep(batchStart)])))),
        };
        spec.layers.forEach((layer, i) => {
          held.add(`h${i + 1}`, n * layer.units * 4);
          held.add(`route${i + 1}`, n * layer.units * 4);
          held.add(`dPre${i + 1}`, n * layer.units * layer.pieces * 4);
        });
        held.add('logits', n * spec.classes.length * 4);
        held.add('dLogits', n * spec.classes.length * 4);
        held.add('direction', n * IMAGE_SIZE * 4);
        // an all-zero batch (every row the zero image): the input-sign epilogue with ε = 1 over it writes
        // 0 + 1·sign(∇ₓJ), the direction itself, exactly
        held.add('zeroImage', IMAGE_SIZE * 4);
        held.add('zeroRows', n * 4);
        const batches: Batches = { rows: n, count, examples: split.n, rowIndex };
        const gradientPasses = new Map<EngineGradient, { toLayer1: RecordedKernel[]; direction: RecordedKernel }>();
        for (const gradient of GRADIENT_FORMS) gradientPasses.set(gradient, await gradientPass(network, resident, batches, held, gradient));
        return new FgsmErrorRates(network, resident, batches, held, passBytes, gradientPasses);
      });
    } catch (error) {
      resident.dispose();
      throw error;
    }
  }

  /**
   * The error rate at each of `epsilons`, in their order, of `model` (a maxout network of the spec this was built
   * for) with ∇ₓJ in the `gradient` form: one read.
   */
  async errorRates(model: Classifier, epsilons: readonly number[], gradient: EngineGradient): Promise<number[]> {
    if (epsilons.length === 0 || epsilons.some((eps) => !(Number.isFinite(eps) && eps >= 0)))
      throw new Error(`epsilons: at least one, each finite and ≥ 0, not [${epsilons}]`);
    const gradientPass = this.gradientPasses.get(gradient);
    if (!gradientPass) throw new Error(`the engine takes ∇ₓJ with the standard or the stable gradient, not ${gradient}`);
    this.checkModel(model);
    const { runtime, layout, parameters } = this.network;
    const passes = await this.passesFor(epsilons.length);
    const slots = passes.groupSize * passes.groups;
    runtime.write(
      passes.epsilons,
      Float32Array.from({ length: slots }, (_, s) => epsilons[s] ?? 0),
    );
    runtime.write(passes.counts, new Uint32Array(slots));
    layout.copyIn(runtime, model.parameters, (p) => p.variable, parameters, 1);
    const unindexed = this.batches.count;
    for (let b = 0; b < this.batches.count; b++) {
      for (const kernel of gradientPass.toLayer1) kernel.record(b);
      gradientPass.direction.record(unindexed);
      for (let g = 0; g < passes.groups; g++) passes.record(b * passes.groups + g, unindexed);
    }
    const counts = new Uint32Array(await runtime.read(passes.counts, 0, epsilons.length * 4));
    return Array.from(counts, (wrong) => wrong / this.batches.examples);
  }

  /** Releases every buffer (the split's included). */
  dispose(): void {
    this.passes?.dispose();
    this.passes = null;
    this.held.release();
    this.resident.dispose();
  }

  /** The x̃ passes for `epsilons` values of ε, built by the first call with that many (kept until another count). */
  private async passesFor(epsilons: number): Promise<EpsilonPasses> {
    if (this.passes?.epsilonCount === epsilons) return this.passes;
    this.passes?.dispose();
    this.passes = null;
    const { spec } = this.network;
    const widest = Math.max(IMAGE_SIZE, ...spec.layers.map((layer) => layer.units), spec.classes.length);
    const fitting = Math.max(1, Math.floor(this.passBytes / (this.batches.rows * widest * 4)));
    this.passes = await EpsilonPasses.create(this.network, this.resident, this.batches, this.held.get('direction'), epsilons, fitting);
    return this.passes;
  }

  /** A maxout network of this spec, one network (not stacked): its parameters fit the packed layout. */
  private checkModel(model: Classifier): void {
    const { spec, layout } = this.network;
    const same =
      model.spec.kind === 'maxout' &&
      model.spec.inputSize === spec.inputSize &&
      model.spec.classes.length === spec.classes.length &&
      JSON.stringify(model.spec.layers) === JSON.stringify(spec.layers);
    if (!same) throw new Error('the model is not the maxout network these FGSM error rates were built for');
    for (const p of model.parameters) {
      const layer = layout.layers[p.layer - 1];
      const size = layer ? (p.role === 'weight' ? layer.inputs * layer.columns : layer.columns) : 0;
      if (p.variable.size !== size) throw new Error(`parameter ${p.name} holds ${p.variable.size} values, not the ${size} of one network`);
    }
  }
}

/**
 * Over one batch: the forward pass, the loss gradient, the backward pass down to layer 1's output, then to
 * sign(∇ₓJ) through the zero batch (under the unindexed record: it reads none of the split's rows).
 */
async function gradientPass(
  network: Network,
  resident: ResidentData,
  batches: Batches,
  held: Holdings,
  gradient: EngineGradient,
): Promise<{ toLayer1: RecordedKernel[]; direction: RecordedKernel }> {
  const { runtime, spec, steps, parameters } = network;
  const n = batches.rows;
  const batch: BatchInput = { images: resident.images!, rowIndex: batches.rowIndex, indexStride: batches.count * n, batchRows: n };
  const toLayer1 = await forward(network, n, batch, held);
  const crossEntropy = {
    lanes: 1,
    rows: n,
    batch: n,
    classes: spec.classes.length,
    indexStride: batch.indexStride,
    top: spec.top,
    sigmoidLoss: spec.sigmoidLoss,
    gradient,
    weights: { clean: 1, adversarial: 0 },
    reduction: 'sum',
    statistics: null,
  } as const;
  const dLogits = held.get('dLogits');
  toLayer1.push(
    held.keep(
      await CrossEntropy.create(runtime, crossEntropy, {
        steps,
        logits: held.get('logits'),
        labels: resident.labels!,
        rowIndex: batch.rowIndex,
        dLogits,
      }),
    ),
  );
  const top = spec.layers.length + 1;
  const upstream = (j: number) => (j === top ? dLogits : held.get(`dPre${j}`));
  for (let j = top; j >= 2; j--) {
    const shape = { ...layerShape(network, j, n), dropout: null, epilogue: { kind: 'maxout', pieces: spec.layers[j - 2]!.pieces } } as const;
    const buffers = { steps, parameters, upstream: upstream(j), output: held.get(`dPre${j - 1}`), route: held.get(`route${j - 1}`) };
    toLayer1.push(held.keep(await BackwardData.create(runtime, shape, buffers)));
  }
  const zeroBatch: BatchInput = { images: held.get('zeroImage'), rowIndex: held.get('zeroRows'), indexStride: n, batchRows: n };
  const direction = await BackwardData.create(
    runtime,
    { ...layerShape(network, 1, n), dropout: null, epilogue: { kind: 'input-sign', epsilon: 1 } },
    { steps, parameters, upstream: upstream(1), output: held.get('direction'), batch: zeroBatch },
  );
  return { toLayer1, direction: held.keep(direction) };
}

/**
 * The x̃ passes of a call with a given number of ε values, in groups of at most `fitting`: x̃ at each ε of a group
 * in its own block of n rows, one forward pass over the blocks (a batch of their own, read in order through
 * blockRows under the unindexed record), and the count into each ε's counter.
 */
class EpsilonPasses {
  private constructor(
    readonly epsilonCount: number,
    readonly groups: number,
    readonly groupSize: number,
    private readonly held: Holdings,
    private readonly kernels: { examples: FgsmExamples; forward: RecordedKernel[]; count: ErrorCount },
  ) {}

  static create(
    network: Network,
    resident: ResidentData,
    batches: Batches,
    direction: GPUBuffer,
    epsilons: number,
    fitting: number,
  ): Promise<EpsilonPasses> {
    const { runtime, spec } = network;
    const groups = Math.ceil(epsilons / fitting);
    // groups as even as they can be: the last one's unused blocks are the least work
    const groupSize = Math.ceil(epsilons / groups);
    const n = batches.rows;
    const rows = groupSize * n;
    return Holdings.build(runtime, async (held) => {
      const adversarial = held.add('adversarial', rows * IMAGE_SIZE * 4);
      spec.layers.forEach((layer, i) => {
        held.add(`h${i + 1}`, rows * layer.units * 4);
        held.add(`route${i + 1}`, rows * layer.units * 4);
      });
      held.add('logits', rows * spec.classes.length * 4);
      const epsilonValues = held.add('epsilons', groups * groupSize * 4);
      const counts = held.add('counts', groups * groupSize * 4);
      const blockRows = held.add(
        'blockRows',
        Uint32Array.from({ length: rows }, (_, i) => i),
      );
      const records: FgsmPass[] = [];
      for (let b = 0; b < batches.count; b++) {
        for (let g = 0; g < groups; g++) {
          const firstSlot = g * groupSize;
          records.push({ cleanStart: b * n, firstSlot, epsilons: Math.min(groupSize, epsilons - firstSlot) });
        }
      }
      const passes = held.addUniform('fgsm passes', encodePasses(records));
      const shape = { batchRows: n, groupSize };
      const examples = held.keep(
        await FgsmExamples.create(
          runtime,
          { ...shape, inputs: IMAGE_SIZE },
          { passes, images: resident.images!, rowIndex: batches.rowIndex, direction, epsilons: epsilonValues, adversarial },
        ),
      );
      const blocks: BatchInput = { images: adversarial, rowIndex: blockRows, indexStride: rows, batchRows: rows };
      const forwardPass = await forward(network, rows, blocks, held);
      const count = held.keep(
        await ErrorCount.create(
          runtime,
          { ...shape, classes: spec.classes.length, examples: batches.examples },
          { passes, logits: held.get('logits'), labels: resident.labels!, rowIndex: batches.rowIndex, counts },
        ),
      );
      return new EpsilonPasses(epsilons, groups, groupSize, held, { examples, forward: forwardPass, count });
    });
  }

  get epsilons(): GPUBuffer {
    return this.held.get('epsilons');
  }

  get counts(): GPUBuffer {
    return this.held.get('counts');
  }

  /** Records x̃, the forward pass and the count of pass record `pass` (the forward pass under record `unindexed`). */
  record(pass: number, unindexed: number): void {
    this.kernels.examples.record(pass);
    for (const kernel of this.kernels.forward) kernel.record(unindexed);
    this.kernels.count.record(pass);
  }

  dispose(): void {
    this.held.release();
  }
}

/** The deterministic network's forward pass over `rows` rows of `input`, into held's h·, route· and logits. */
async function forward(network: Network, rows: number, input: BatchInput, held: Holdings): Promise<RecordedKernel[]> {
  const { runtime, spec, steps, parameters } = network;
  const kernels: RecordedKernel[] = [];
  for (const [i, { pieces }] of spec.layers.entries()) {
    const buffers = {
      steps,
      parameters,
      input: i === 0 ? input : held.get(`h${i}`),
      output: held.get(`h${i + 1}`),
      route: held.get(`route${i + 1}`),
    };
    kernels.push(held.keep(await HiddenForward.create(runtime, { ...layerShape(network, i + 1, rows), pieces, dropout: null }, buffers)));
  }
  const top = spec.layers.length + 1;
  const buffers = { steps, parameters, input: held.get(`h${top - 1}`), output: held.get('logits') };
  kernels.push(held.keep(await OutputForward.create(runtime, layerShape(network, top, rows), buffers)));
  return kernels;
}

function layerShape(network: Network, j: number, rows: number): LayerShape {
  const { inputs, columns, offset } = network.layout.layers[j - 1]!;
  return { lanes: 1, rows, layer: j, inputs, columns, laneFloats: network.layout.laneFloats, offset };
}

function laneStep(batchStart: number): LaneStep {
  return { dropoutSeed: 0, gradientSeed: 0, batchStart, active: true, learningRate: 0, momentum: 0, statsSlot: 0 };
}

function layoutOf(spec: MaxoutSpec): PackedLayout {
  let inputs = spec.inputSize;
  const shapes = spec.layers.map((layer) => {
    const shape = { inputs, columns: layer.units * layer.pieces };
    inputs = layer.units;
    return shape;
  });
  return new PackedLayout([...shapes, { inputs, columns: spec.classes.length }]);
}
