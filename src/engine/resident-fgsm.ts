import { stream } from '../core/rng.js';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier, ModelSpec } from '../models/classifier.js';
import { CrossEntropy, type EngineGradient } from './kernels/cross-entropy.js';
import type { AttackConfig } from '../config/schema.js';
import {
  CLIP_BYTES,
  encodeClip,
  encodeIteratePasses,
  encodePasses,
  ErrorCount,
  FgsmExamples,
  IterateStep,
  KeepWorst,
  perturbationTally,
  Probabilities,
  ZERO_GRADIENT_TALLY,
  ZeroDirections,
  type FgsmPass,
  type IteratePass,
} from './kernels/fgsm-passes.js';
import { BatchInputKernel } from './kernels/batch-input.js';
import { BackwardData, HiddenForward, OutputForward, type BatchInput, type InputGradientEpilogue, type LayerShape } from './kernels/layers.js';
import { RbfForward, RbfInputSign, rbfShape } from './kernels/rbf.js';
import { encodeSteps, type LaneStep } from './kernels/step-record.js';
import { asEngineNetwork, layoutOf, type EngineNetwork } from './network.js';
import type { PackedLayout } from './parameters.js';
import { ResidentData } from './resident-data.js';
import type { GpuRuntime } from './runtime.js';
import type { RecordedKernel } from './step-program.js';

/** The most rows of one batch's gradient pass. */
export const MOST_BATCH_ROWS = 10_000;

/**
 * The largest buffer an x̃ pass makes by default (x̃ itself, for MNIST): the ε values of a call share one forward
 * pass over their blocks of rows where they fit in it, so that a call's dispatches do not grow with the number of ε.
 */
export const PASS_BYTES = 256 * 2 ** 20;

export interface ResidentFgsmOptions {
  /** The most rows of a batch (default and at most MOST_BATCH_ROWS). */
  batchRows?: number;
  /** The largest buffer of an x̃ pass (default PASS_BYTES; the device's binding limit bounds it too). */
  passBytes?: number;
}

/**
 * Whose labels J takes and which way the step goes, where not the true labels upwards: the class index of every
 * example of the split (lossLabels), and whether the attack steps down that class's loss (targeted).
 */
export interface AttackAim {
  lossLabels: Int32Array;
  targeted: boolean;
}

/** What ResidentFgsm.attack measures over the split. */
export interface ResidentAttack {
  /** Per ε, the class probabilities on x̃, [N × k] in the split's order. */
  probabilities: Float32Array[];
  /** Examples whose ∇ₓJ is zero everywhere (x̃ = x at every ε). */
  zeroGradient: number;
  /** Per ε, the largest |x̃ − x| over the split's pixels. */
  maxPerturbation: number[];
}

/** An iterative attack as ResidentFgsm.iterative runs it: BIM, or PGD (from x or random starts, one run or several). */
export interface ResidentIterative {
  epsilons: readonly number[];
  /** α per ε, in their order. */
  stepSizes: readonly number[];
  steps: number;
  /** Start at x + U(−ε, ε) projected (PGD), or at x (BIM). */
  randomStart: boolean;
  /** Runs from independent random starts, per example the one the attack did best with kept (1 without randomStart). */
  restarts: number;
  /** The random starts' seed (iterativeGradientSign's). */
  seed: number;
  clip: readonly [number, number] | null;
  gradient: EngineGradient;
  /** J's labels and direction where not the true labels upwards. */
  aim: AttackAim | null;
}

/** What ResidentFgsm.iterative measures over the split: per ε, the probabilities on the last iterate and the largest |x̃ − x|. */
export type ResidentIterativeResult = Omit<ResidentAttack, 'zeroGradient'>;

/** The forms of ∇ₓJ the engine takes. */
export const ENGINE_GRADIENTS: readonly EngineGradient[] = ['standard', 'stable'];

/**
 * Whether ResidentFgsm measures `attack` on `spec` as evaluate does (FGSM, BIM, or PGD, with the
 * standard or the stable gradient, any labels and target, on a maxout, softmax, logistic or RBF network): null, or
 * what it lacks.
 */
export function residentFgsmSupport(spec: ModelSpec, attack: AttackConfig): string | null {
  if (!asEngineNetwork(spec)) return `the engine attacks maxout, softmax, logistic and RBF networks, not ${spec.kind}`;
  if (spec.inputSize !== IMAGE_SIZE) return `the engine attacks ${IMAGE_SIZE}-pixel images, not ${spec.inputSize}`;
  if (!ENGINE_GRADIENTS.includes(attack.gradient as EngineGradient))
    return `the engine takes ∇ₓJ with the standard or the stable gradient, not ${attack.gradient}`;
  return null;
}

/**
 * An engine's share of an ensemble's gradient pass (EnsembleFgsm, ensemble-fgsm.ts), its member's parameters and J's
 * labels loaded: per batch its forward pass into `logits`, and, once the ensemble's loss has put the member's
 * ∂J/∂z into `dLogits`, its backward pass down to layer 1's upstream gradient; then layer 1's ∇ₓ through a kernel
 * inputGradient builds (the caller's to dispose).
 */
export interface EnsembleMemberPasses {
  runtime: GpuRuntime;
  spec: EngineNetwork;
  /** Rows of a batch (n), and the batches of the split. */
  rows: number;
  batches: number;
  /** f32 [n × k]. */
  logits: GPUBuffer;
  dLogits: GPUBuffer;
  /** f32 [n × IMAGE_SIZE]: where adversarialAlong's x̃ kernel reads the direction. */
  direction: GPUBuffer;
  /** u32: J's label of every resident example, indexed through rowIndex. */
  labels: GPUBuffer;
  rowIndex: GPUBuffer;
  /** The step records: record b has batch b's start (lane 0). */
  steps: GPUBuffer;
  recordForward(batch: number): void;
  /** Down to layer 1's upstream gradient (no dispatch for softmax regression, whose layer 1 is its top). */
  recordHiddenBackward(batch: number): void;
  inputGradient(epilogue: InputGradientEpilogue, output: GPUBuffer): Promise<BackwardData>;
}

/** What every pass of the network shares: the device, the network's shape, its packed parameters and step records. */
interface Network {
  runtime: GpuRuntime;
  spec: EngineNetwork;
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
 * FGSM on a maxout network (or softmax or logistic regression or the RBF network, which have no hidden layer) over
 * one split resident on the device: the error at several ε, as fgsmErrorRate measures
 * it (§6's adversarial validation error), or the attack evaluate measures on the test set (probabilities on x̃,
 * zero gradients, the largest perturbation), each from one input gradient per batch serving every ε, the network's
 * parameters copied in from its tfjs variables once per call, and everything read once at the end of a call.
 *
 * Per batch of n rows: the forward pass, the loss gradient (of J summed over the rows), the backward pass down to
 * sign(∇ₓJ); then, per group of ε values, x̃ at each, one forward pass over all their blocks of n rows, and the
 * count (or the probabilities). That is 2L + 3 dispatches for L hidden layers plus L + 3 per group, and one group
 * unless x̃ at every ε outgrows the pass's buffer limit (PASS_BYTES): 12 a batch for two hidden layers (13 for the
 * attack, which also counts the zero gradients). The RBF network's forward pass is two dispatches (its rows, then
 * −d) and its input gradient one: 8 a batch (9 for the attack).
 *
 * The figures equal tfjs's wherever the two float32 computations agree on each prediction and each sign of ∇ₓJ:
 * they sum their products in different orders, so a logit or a gradient that lands within rounding of a tie or of 0
 * may go either way (rare; likelier where the softmax saturates and the gradient is made of tiny p_k), and the
 * probabilities differ within float32 rounding.
 */
export class ResidentFgsm {
  private passes: EpsilonPasses | null = null;
  private iterativePasses: IterativePasses | null = null;
  /** The probabilities of the split's own rows, and of rows the host gives (built by the first call of each). */
  private splitProbabilities: ProbabilityPasses | null = null;
  private hostProbabilities: ProbabilityPasses | null = null;
  /** Whether the lossLabels buffer holds the split's true labels (a call with an aim replaces them). */
  private trueLossLabels = true;

  private constructor(
    private readonly network: Network,
    private readonly attacked: Split,
    private readonly resident: ResidentData,
    private readonly batches: Batches,
    private readonly held: Holdings,
    private readonly passBytes: number,
    /** Per gradient form: the kernels down to the last hidden layer's gradient, then the one to sign(∇ₓJ). */
    private readonly gradientPasses: ReadonlyMap<EngineGradient, GradientPass>,
  ) {}

  /** Uploads `split` and builds the gradient pass (both forms) for batches of at most `batchRows` rows. */
  static async create(runtime: GpuRuntime, model: ModelSpec, split: Split, options: ResidentFgsmOptions = {}): Promise<ResidentFgsm> {
    const spec = asEngineNetwork(model);
    if (!spec) throw new Error(`the engine's FGSM is for maxout, softmax, logistic and RBF networks, not ${model.kind}`);
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
        if (spec.rbf) held.add('input', n * IMAGE_SIZE * 4);
        held.add('logits', n * spec.classes.length * 4);
        held.add('dLogits', n * spec.classes.length * 4);
        held.add('direction', n * IMAGE_SIZE * 4);
        // an all-zero batch (every row the zero image): the input-sign epilogue with ε = 1 over it writes
        // 0 + 1·sign(∇ₓJ), the direction itself, exactly
        held.add('zeroImage', IMAGE_SIZE * 4);
        held.add('zeroRows', n * 4);
        // the labels J takes, in the split's order (its first row is the resident set's first): the true ones unless a call aims elsewhere
        held.add('lossLabels', Uint32Array.from(split.y.subarray(0, split.n)));
        const batches: Batches = { rows: n, count, examples: split.n, rowIndex };
        const gradientPasses = new Map<EngineGradient, GradientPass>();
        for (const gradient of ENGINE_GRADIENTS) gradientPasses.set(gradient, await gradientPass(network, resident, batches, held, gradient));
        return new ResidentFgsm(network, split, resident, batches, held, passBytes, gradientPasses);
      });
    } catch (error) {
      resident.dispose();
      throw error;
    }
  }

  /** Why `runtime`'s adapter cannot hold `split` and the probabilities of `epsilons` values of ε over it, or null. */
  static cannotHold(runtime: GpuRuntime, spec: ModelSpec, split: Split, epsilons: number): string | null {
    const limit = runtime.device.limits.maxStorageBufferBindingSize;
    const buffers = [
      { what: `the ${split.n} resident ${split.name} examples`, bytes: split.n * spec.inputSize * 4 },
      { what: `the probabilities at ${epsilons} ε`, bytes: epsilons * split.n * spec.classes.length * 4 },
    ];
    const large = buffers.find(({ bytes }) => bytes > limit);
    return large
      ? `${large.what} take ${Math.ceil(large.bytes / 2 ** 20)} MiB, more than this adapter binds (${Math.floor(limit / 2 ** 20)} MiB)`
      : null;
  }

  /** The split this attacks, resident on the device. */
  get split(): Split {
    return this.attacked;
  }

  /** The device this runs on, the rows of its batches and the classes of its network. */
  get runtime(): GpuRuntime {
    return this.network.runtime;
  }

  get batchRows(): number {
    return this.batches.rows;
  }

  get classes(): number {
    return this.network.spec.classes.length;
  }

  /** Refuses a caller (`who`) that measures another split than the one resident here. */
  assertHolds(split: Split, who: string): void {
    if (split !== this.attacked) throw new Error(`${who}: the engine holds the ${this.attacked.name} split, not this ${split.name} split`);
  }

  /**
   * The error rate at each of `epsilons`, in their order, of `model` (a network of the spec this was built for) on unclipped FGSM examples with ∇ₓJ in the `gradient` form: one read.
   */
  async errorRates(model: Classifier, epsilons: readonly number[], gradient: EngineGradient): Promise<number[]> {
    const passes = await this.prepare(model, epsilons, gradient, null);
    await this.recordBatches(gradient, (b) => {
      for (let g = 0; g < passes.groups; g++) passes.recordCount(b * passes.groups + g, this.batches.count);
    });
    const counts = new Uint32Array(await this.network.runtime.read(passes.buffer('counts'), 0, epsilons.length * 4));
    return Array.from(counts, (wrong) => wrong / this.batches.examples);
  }

  /**
   * FGSM at each of `epsilons` on every example of the split (the deterministic network, ∇ₓJ in the `gradient`
   * form, up the true labels' loss unless `aim` says otherwise, x̃ clipped to `clip` unless null), as evaluate's
   * tfjs attack measures it: the class probabilities on x̃ per ε ([N × k], the split's order), the examples whose
   * input gradient is zero everywhere, and the largest |x̃ − x| per ε. Two reads.
   */
  async attack(
    model: Classifier,
    epsilons: readonly number[],
    gradient: EngineGradient,
    clip: readonly [number, number] | null,
    aim: AttackAim | null = null,
  ): Promise<ResidentAttack> {
    const passes = await this.prepare(model, epsilons, gradient, clip, aim);
    await this.recordBatches(gradient, (b) => {
      passes.recordZeroDirections(b * passes.groups);
      for (let g = 0; g < passes.groups; g++) passes.recordProbabilities(b * passes.groups + g, this.batches.count);
    });
    const { runtime } = this.network;
    const perExample = this.batches.examples * this.network.spec.classes.length;
    const probabilities = new Float32Array(await runtime.read(passes.buffer('probabilities'), 0, epsilons.length * perExample * 4));
    const tallies = new Uint32Array(await runtime.read(passes.buffer('tallies'), 0, (1 + epsilons.length) * 4));
    const largest = new Float32Array(tallies.buffer);
    return {
      probabilities: epsilons.map((_, e) => probabilities.subarray(e * perExample, (e + 1) * perExample)),
      zeroGradient: tallies[ZERO_GRADIENT_TALLY]!,
      maxPerturbation: epsilons.map((_, e) => largest[perturbationTally(e)]!),
    };
  }

  /**
   * FGSM examples at each of `epsilons` of every example of the split, as `attack` makes them (∇ₓJ in the `gradient`
   * form, up the true labels' loss unless `aim` says otherwise, clipped to `clip` unless null): x̃ per ε, [N ×
   * IMAGE_SIZE] in the split's order, for models that score them elsewhere (§6's transfer). Per batch the gradient
   * pass, then per group of ε x̃ in its blocks and one read of them.
   */
  async adversarial(
    model: Classifier,
    epsilons: readonly number[],
    gradient: EngineGradient,
    clip: readonly [number, number] | null,
    aim: AttackAim | null = null,
  ): Promise<Float32Array[]> {
    const passes = await this.prepare(model, epsilons, gradient, clip, aim);
    return await this.examplesAlong(passes, epsilons, (b) => this.recordGradient(gradient, b));
  }

  /**
   * FGSM examples as `adversarial` makes them, along the direction `recordDirection(b)` leaves in this engine's
   * direction buffer (EnsembleMemberPasses.direction) for batch b: an ensemble's (ensemble-fgsm.ts), this engine
   * its first member's. ε is negated where `targeted`; the labels and parameters are the caller's to load (asMember).
   */
  async adversarialAlong(
    epsilons: readonly number[],
    clip: readonly [number, number] | null,
    targeted: boolean,
    recordDirection: (batch: number) => void,
  ): Promise<Float32Array[]> {
    this.checkStep(epsilons, clip);
    return await this.examplesAlong(await this.epsilonPasses(epsilons, clip, targeted), epsilons, recordDirection);
  }

  /**
   * This engine as a member of an ensemble attacked as a whole (ensemble-fgsm.ts): `model`'s parameters and J's
   * labels (`aim`'s, or the true ones) loaded, and what the ensemble's gradient pass takes of its own.
   */
  asMember(model: Classifier, aim: AttackAim | null): EnsembleMemberPasses {
    this.check(model, [0], 'standard', null, aim);
    this.load(model, aim);
    const { runtime, spec, parameters, steps } = this.network;
    // the forward and hidden backward kernels are the same in both gradient forms: the form is in the loss kernel
    const pass = this.gradientPasses.get('standard')!;
    const held = this.held;
    const n = this.batches.rows;
    return {
      runtime,
      spec,
      rows: n,
      batches: this.batches.count,
      logits: held.get('logits'),
      dLogits: held.get('dLogits'),
      direction: held.get('direction'),
      labels: held.get('lossLabels'),
      rowIndex: this.batches.rowIndex,
      steps,
      recordForward: (b) => {
        for (const kernel of pass.forward) kernel.record(b);
      },
      recordHiddenBackward: (b) => {
        for (const kernel of pass.backward) kernel.record(b);
      },
      inputGradient: async (epilogue, output) =>
        await BackwardData.create(
          runtime,
          { ...layerShape(this.network, 1, n), dropout: null, epilogue },
          { steps, parameters, upstream: spec.layers.length === 0 ? held.get('dLogits') : held.get('dPre1'), output },
        ),
    };
  }

  /** x̃ at each ε per batch, along what `recordDirection(b)` leaves in the direction buffer; one read per batch and group of ε. */
  private async examplesAlong(passes: EpsilonPasses, epsilons: readonly number[], recordDirection: (batch: number) => void): Promise<Float32Array[]> {
    const { rows: n, examples } = this.batches;
    const out = epsilons.map(() => new Float32Array(examples * IMAGE_SIZE));
    for (let b = 0; b < this.batches.count; b++) {
      recordDirection(b);
      const kept = Math.min(n, examples - b * n) * IMAGE_SIZE;
      for (let g = 0; g < passes.groups; g++) {
        passes.recordExamples(b * passes.groups + g);
        const first = g * passes.groupSize;
        const made = Math.min(passes.groupSize, epsilons.length - first);
        const blocks = new Float32Array(await this.network.runtime.read(passes.buffer('adversarial'), 0, made * n * IMAGE_SIZE * 4));
        for (let e = 0; e < made; e++) out[first + e]!.set(blocks.subarray(e * n * IMAGE_SIZE, e * n * IMAGE_SIZE + kept), b * n * IMAGE_SIZE);
      }
    }
    return out;
  }

  /**
   * BIM or PGD (from x or random starts, one run or several) at each of `attack.epsilons` on every example of the
   * split, as iterativeGradientSign makes it: the class probabilities on the kept iterate per ε ([N × k], the split's
   * order) and the largest |x̃ − x| per ε. Per batch and ε, per run: the start, then per step the forward pass over
   * the iterate, the gradient pass and the step; with restarts, the forward pass over the run's last iterate and
   * KeepWorst. Then the tally of |x̃ − x|, the forward pass and the probabilities. Each random start is uploaded
   * (one batch's U(−ε, ε), drawn as iterativeGradientSign draws it); two reads.
   */
  async iterative(model: Classifier, attack: ResidentIterative): Promise<ResidentIterativeResult> {
    const { epsilons, stepSizes, steps, randomStart, restarts, seed, clip, gradient, aim } = attack;
    this.check(model, epsilons, gradient, clip, aim);
    if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`steps: an integer ≥ 1, not ${steps}`);
    if (!(Number.isInteger(restarts) && restarts >= 1 && (randomStart || restarts === 1)))
      throw new Error(`restarts: an integer ≥ 1 (1 without a random start), not ${restarts}`);
    if (stepSizes.length !== epsilons.length || stepSizes.some((alpha) => !(Number.isFinite(alpha) && alpha > 0)))
      throw new Error(`stepSizes: one α > 0 per ε, not [${stepSizes}] for [${epsilons}]`);
    if (!Number.isInteger(seed)) throw new Error(`seed: an integer, not ${seed}`);
    const { runtime, spec } = this.network;
    const passes = await this.iterativeFor(epsilons.length);
    // a targeted attack steps down its target's loss: x̃ + (−α)·sign is tfjs's x̃ + (−sign)·α exactly
    const direction = aim?.targeted ? -1 : 1;
    runtime.write(passes.buffer('epsilons'), Float32Array.from(epsilons));
    runtime.write(
      passes.buffer('stepSizes'),
      Float32Array.from(stepSizes, (alpha) => direction * alpha),
    );
    runtime.write(passes.buffer('tallies'), new Uint32Array(1 + epsilons.length));
    runtime.write(passes.buffer('clip'), encodeClip(clip));
    runtime.write(passes.buffer('aim'), Uint32Array.from([aim?.targeted ? 1 : 0]));
    this.load(model, aim);
    const gradientPass = this.gradientPasses.get(gradient)!;
    const unindexed = this.batches.count;
    const { rows, count, examples } = this.batches;
    const noise = randomStart ? new Float32Array(rows * IMAGE_SIZE) : null;
    for (let b = 0; b < count; b++) {
      for (const [e, epsilon] of epsilons.entries()) {
        for (let restart = 0; restart < restarts; restart++) {
          if (noise) {
            // row i of the split starts at the draw of stream(seed, 'random-start', restart, i), as iterativeGradientSign's
            noise.fill(0);
            for (let r = 0; r < rows && b * rows + r < examples; r++)
              stream(seed, 'random-start', restart, b * rows + r).fillUniform(
                noise.subarray(r * IMAGE_SIZE, (r + 1) * IMAGE_SIZE),
                -epsilon,
                epsilon,
              );
            runtime.write(passes.buffer('noise'), noise);
          }
          passes.recordStart(b, e, randomStart);
          for (let step = 0; step < steps; step++) {
            passes.recordForward(unindexed);
            recordBackward(gradientPass, b, unindexed);
            passes.recordStep(b, e);
          }
          if (restarts > 1) {
            passes.recordForward(unindexed);
            passes.recordKeep(b, e, restart === 0);
          }
        }
        if (restarts > 1) passes.restoreKept();
        passes.recordMeasure(b, e);
        passes.recordForward(unindexed);
        passes.recordProbabilities(b, e);
      }
    }
    const perExample = examples * spec.classes.length;
    const probabilities = new Float32Array(await runtime.read(passes.buffer('probabilities'), 0, epsilons.length * perExample * 4));
    const largest = new Float32Array(await runtime.read(passes.buffer('tallies'), 0, (1 + epsilons.length) * 4));
    return {
      probabilities: epsilons.map((_, e) => probabilities.subarray(e * perExample, (e + 1) * perExample)),
      maxPerturbation: epsilons.map((_, e) => largest[perturbationTally(e)]!),
    };
  }

  /**
   * The deterministic network's class probabilities on every example of the split, [N × k] in its order, as
   * predictProbabilities measures them (the clean figures): per batch the forward pass and the probabilities; one read.
   */
  async probabilities(model: Classifier): Promise<Float32Array> {
    this.checkModel(model);
    this.loadParameters(model);
    this.splitProbabilities ??= await ProbabilityPasses.create(this.network, this.batches.rows, this.batches.examples, this.held, 'split');
    const forward = this.gradientPasses.get('standard')!.forward;
    for (let b = 0; b < this.batches.count; b++) {
      for (const kernel of forward) kernel.record(b);
      this.splitProbabilities.recordProbabilities(b);
    }
    return await this.splitProbabilities.read();
  }

  /**
   * The deterministic network's class probabilities on rows the host gives (`rows`: M images of IMAGE_SIZE pixels,
   * e.g. §A's rubbish inputs), [M × k] in their order: uploaded a batch of n rows at a time, each followed by the
   * forward pass and the probabilities; one read.
   */
  async probabilitiesOf(model: Classifier, rows: Float32Array): Promise<Float32Array> {
    const examples = rows.length / IMAGE_SIZE;
    if (!(Number.isInteger(examples) && examples >= 1))
      throw new Error(`rows: whole images of ${IMAGE_SIZE} pixels, at least one, not ${rows.length} values`);
    this.checkModel(model);
    this.loadParameters(model);
    const n = this.batches.rows;
    if (this.hostProbabilities?.examples !== examples) {
      this.hostProbabilities?.dispose();
      this.hostProbabilities = null;
      this.hostProbabilities = await ProbabilityPasses.create(this.network, n, examples, this.held, 'host');
    }
    const passes = this.hostProbabilities;
    const unindexed = this.batches.count;
    for (let b = 0; b * n < examples; b++) {
      this.network.runtime.write(passes.buffer('hostRows'), rows.subarray(b * n * IMAGE_SIZE, Math.min(examples, (b + 1) * n) * IMAGE_SIZE));
      passes.recordForward(unindexed);
      passes.recordProbabilities(b);
    }
    return await passes.read();
  }

  /** Releases every buffer (the split's included). */
  dispose(): void {
    this.splitProbabilities?.dispose();
    this.hostProbabilities?.dispose();
    this.splitProbabilities = this.hostProbabilities = null;
    this.iterativePasses?.dispose();
    this.iterativePasses = null;
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

  /** The iterative attack's passes for `epsilons` values of ε, built by the first call with that many (kept until another count). */
  private async iterativeFor(epsilons: number): Promise<IterativePasses> {
    if (this.iterativePasses?.epsilonCount === epsilons) return this.iterativePasses;
    this.iterativePasses?.dispose();
    this.iterativePasses = null;
    this.iterativePasses = await IterativePasses.create(this.network, this.resident, this.batches, this.held, epsilons);
    return this.iterativePasses;
  }

  /** Checks a call's arguments; writes ε (negated for a targeted step), the clipping, the loss labels, zeroed counters and the model's parameters. */
  private async prepare(
    model: Classifier,
    epsilons: readonly number[],
    gradient: EngineGradient,
    clip: readonly [number, number] | null,
    aim: AttackAim | null = null,
  ): Promise<EpsilonPasses> {
    this.check(model, epsilons, gradient, clip, aim);
    const passes = await this.epsilonPasses(epsilons, clip, aim?.targeted ?? false);
    this.load(model, aim);
    return passes;
  }

  /** The x̃ passes for `epsilons`, with ε (negated where `targeted`), the clipping and zeroed counters written. */
  private async epsilonPasses(epsilons: readonly number[], clip: readonly [number, number] | null, targeted: boolean): Promise<EpsilonPasses> {
    const { runtime } = this.network;
    const passes = await this.passesFor(epsilons.length);
    const slots = passes.groupSize * passes.groups;
    // x + (−ε)·sign(∇ₓJ) is tfjs's x + (−sign)·ε exactly: ε·d is ±ε or 0 either way
    const direction = targeted ? -1 : 1;
    runtime.write(
      passes.buffer('epsilons'),
      Float32Array.from({ length: slots }, (_, s) => direction * (epsilons[s] ?? 0)),
    );
    runtime.write(passes.buffer('counts'), new Uint32Array(slots));
    runtime.write(passes.buffer('tallies'), new Uint32Array(1 + slots));
    runtime.write(passes.buffer('clip'), encodeClip(clip));
    return passes;
  }

  /** Checks what every call takes. */
  private check(
    model: Classifier,
    epsilons: readonly number[],
    gradient: EngineGradient,
    clip: readonly [number, number] | null,
    aim: AttackAim | null,
  ): void {
    this.checkStep(epsilons, clip);
    if (!this.gradientPasses.has(gradient)) throw new Error(`the engine takes ∇ₓJ with the standard or the stable gradient, not ${gradient}`);
    this.checkModel(model);
    const classes = this.network.spec.classes.length;
    if (aim && (aim.lossLabels.length !== this.attacked.n || aim.lossLabels.some((c) => !(c >= 0 && c < classes))))
      throw new Error(`aim.lossLabels: one class index in 0..${classes - 1} per example of the ${this.attacked.n}`);
  }

  /** Checks the ε values and the clipping of a step. */
  private checkStep(epsilons: readonly number[], clip: readonly [number, number] | null): void {
    if (epsilons.length === 0 || epsilons.some((eps) => !(Number.isFinite(eps) && eps >= 0)))
      throw new Error(`epsilons: at least one, each finite and ≥ 0, not [${epsilons}]`);
    if (clip && !(clip[0] <= clip[1])) throw new Error(`clip: [low, high] with low ≤ high, not [${clip}]`);
  }

  /** Writes the labels J takes (the true ones unless `aim` gives others) and the model's parameters. */
  private load(model: Classifier, aim: AttackAim | null): void {
    if (aim || !this.trueLossLabels) {
      const labels = aim ? aim.lossLabels : this.attacked.y.subarray(0, this.attacked.n);
      this.network.runtime.write(this.held.get('lossLabels'), Uint32Array.from(labels));
      this.trueLossLabels = !aim;
    }
    this.loadParameters(model);
  }

  private loadParameters(model: Classifier): void {
    const { runtime, layout, parameters } = this.network;
    layout.copyIn(runtime, model.parameters, (p) => p.variable, parameters, 1);
  }

  /** Per batch b: the gradient pass down to sign(∇ₓJ), then `afterwards(b)` (awaited before the next batch). */
  private async recordBatches(gradient: EngineGradient, afterwards: (batch: number) => void | Promise<void>): Promise<void> {
    for (let b = 0; b < this.batches.count; b++) {
      this.recordGradient(gradient, b);
      await afterwards(b);
    }
  }

  /** Batch b's gradient pass down to sign(∇ₓJ) in the direction buffer. */
  private recordGradient(gradient: EngineGradient, b: number): void {
    const gradientPass = this.gradientPasses.get(gradient)!;
    for (const kernel of gradientPass.forward) kernel.record(b);
    recordBackward(gradientPass, b, this.batches.count);
  }

  /** A network of this spec, one network (not stacked): its parameters fit the packed layout. */
  private checkModel(model: Classifier): void {
    const { spec, layout } = this.network;
    const given = asEngineNetwork(model.spec);
    const same =
      given !== null &&
      given.top === spec.top &&
      given.rbf?.precision === spec.rbf?.precision &&
      given.inputSize === spec.inputSize &&
      given.classes.length === spec.classes.length &&
      JSON.stringify(given.layers) === JSON.stringify(spec.layers);
    if (!same) throw new Error('the model is not the network this was built for');
    for (const p of model.parameters) {
      const size = layout.slots.find((slot) => slot.layer === p.layer && slot.role === p.role)?.floats ?? 0;
      if (p.variable.size !== size) throw new Error(`parameter ${p.name} holds ${p.variable.size} values, not the ${size} of one network`);
    }
  }
}

/**
 * The kernels of ∇ₓJ over one batch, recorded in this order: the forward pass over the batch, the loss gradient,
 * the backward pass down to layer 1's output, then to sign(∇ₓJ) through the zero batch (under the unindexed record:
 * it reads none of the split's rows). The loss reads the labels of the batch's rows under the batch's record, so the
 * forward pass may be another one into the same buffers (an iterate's).
 */
interface GradientPass {
  forward: RecordedKernel[];
  loss: RecordedKernel;
  backward: RecordedKernel[];
  direction: RecordedKernel;
}

/** Records a gradient pass after its forward pass: the loss and backward kernels under batch b's record, the direction under `unindexed`. */
function recordBackward(pass: GradientPass, b: number, unindexed: number): void {
  pass.loss.record(b);
  for (const kernel of pass.backward) kernel.record(b);
  pass.direction.record(unindexed);
}

async function gradientPass(
  network: Network,
  resident: ResidentData,
  batches: Batches,
  held: Holdings,
  gradient: EngineGradient,
): Promise<GradientPass> {
  const { runtime, spec, steps, parameters } = network;
  const n = batches.rows;
  const batch: BatchInput = { images: resident.images!, rowIndex: batches.rowIndex, indexStride: batches.count * n, batchRows: n };
  const forwardPass = await forward(network, n, batch, held, held);
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
  const loss = held.keep(
    await CrossEntropy.create(runtime, crossEntropy, {
      steps,
      logits: held.get('logits'),
      labels: held.get('lossLabels'),
      rowIndex: batch.rowIndex,
      dLogits,
    }),
  );
  if (spec.rbf) {
    const buffers = { parameters, input: held.get('input'), logits: held.get('logits'), dLogits, output: held.get('direction') };
    const direction = await RbfInputSign.create(runtime, { ...rbfShape(spec, network.layout, 1, n), epsilon: null }, buffers);
    return { forward: forwardPass, loss, backward: [], direction: held.keep(direction) };
  }
  const backward: RecordedKernel[] = [];
  const top = spec.layers.length + 1;
  const upstream = (j: number) => (j === top ? dLogits : held.get(`dPre${j}`));
  for (let j = top; j >= 2; j--) {
    const shape = { ...layerShape(network, j, n), dropout: null, epilogue: { kind: 'maxout', pieces: spec.layers[j - 2]!.pieces } } as const;
    const buffers = { steps, parameters, upstream: upstream(j), output: held.get(`dPre${j - 1}`), route: held.get(`route${j - 1}`) };
    backward.push(held.keep(await BackwardData.create(runtime, shape, buffers)));
  }
  const zeroBatch: BatchInput = { images: held.get('zeroImage'), rowIndex: held.get('zeroRows'), indexStride: n, batchRows: n };
  const direction = await BackwardData.create(
    runtime,
    { ...layerShape(network, 1, n), dropout: null, epilogue: { kind: 'input-sign', epsilon: 1 } },
    { steps, parameters, upstream: upstream(1), output: held.get('direction'), batch: zeroBatch },
  );
  return { forward: forwardPass, loss, backward, direction: held.keep(direction) };
}

/**
 * The x̃ passes of a call with a given number of ε values, in groups of at most `fitting`: x̃ at each ε of a group
 * in its own block of n rows, one forward pass over the blocks (a batch of their own, read in order through
 * blockRows under the unindexed record), then each ε's count (errorRates) or probabilities (attack).
 */
/** Passes whose buffers and kernels are held together: a buffer by name, and one release. */
class HeldPasses {
  constructor(protected readonly held: Holdings) {}

  buffer(name: string): GPUBuffer {
    return this.held.get(name);
  }

  dispose(): void {
    this.held.release();
  }
}

class EpsilonPasses extends HeldPasses {
  private constructor(
    readonly epsilonCount: number,
    readonly groups: number,
    readonly groupSize: number,
    held: Holdings,
    private readonly kernels: {
      examples: FgsmExamples;
      forward: RecordedKernel[];
      count: ErrorCount;
      probabilities: Probabilities;
      zeroDirections: ZeroDirections;
    },
  ) {
    super(held);
  }

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
    const classes = spec.classes.length;
    return Holdings.build(runtime, async (held) => {
      const adversarial = held.add('adversarial', rows * IMAGE_SIZE * 4);
      if (spec.rbf) held.add('input', rows * IMAGE_SIZE * 4);
      spec.layers.forEach((layer, i) => {
        held.add(`h${i + 1}`, rows * layer.units * 4);
        held.add(`route${i + 1}`, rows * layer.units * 4);
      });
      held.add('logits', rows * classes * 4);
      const epsilonValues = held.add('epsilons', groups * groupSize * 4);
      const counts = held.add('counts', groups * groupSize * 4);
      const tallies = held.add('tallies', (1 + groups * groupSize) * 4);
      const probabilities = held.add('probabilities', epsilons * batches.examples * classes * 4);
      const clip = held.addUniform('clip', new Uint8Array(CLIP_BYTES));
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
      const shape = { batchRows: n, groupSize, examples: batches.examples };
      const logits = held.get('logits');
      const examples = held.keep(
        await FgsmExamples.create(
          runtime,
          { ...shape, inputs: IMAGE_SIZE },
          { passes, clip, images: resident.images!, rowIndex: batches.rowIndex, direction, epsilons: epsilonValues, adversarial, tallies },
        ),
      );
      const blocks: BatchInput = { images: adversarial, rowIndex: blockRows, indexStride: rows, batchRows: rows };
      const forwardPass = await forward(network, rows, blocks, held, held);
      const count = held.keep(
        await ErrorCount.create(
          runtime,
          { ...shape, classes, top: spec.top },
          { passes, logits, labels: resident.labels!, rowIndex: batches.rowIndex, counts },
        ),
      );
      const probabilitiesKernel = held.keep(
        await Probabilities.create(runtime, { ...shape, classes, top: spec.top }, { passes, logits, probabilities }),
      );
      const zeroDirections = held.keep(await ZeroDirections.create(runtime, { ...shape, inputs: IMAGE_SIZE }, { passes, direction, tallies }));
      return new EpsilonPasses(epsilons, groups, groupSize, held, {
        examples,
        forward: forwardPass,
        count,
        probabilities: probabilitiesKernel,
        zeroDirections,
      });
    });
  }

  /** Records x̃, the forward pass and the count of pass record `pass` (the forward pass under record `unindexed`). */
  recordCount(pass: number, unindexed: number): void {
    this.recordForward(pass, unindexed);
    this.kernels.count.record(pass);
  }

  /** Records x̃, the forward pass and the probabilities of pass record `pass`. */
  recordProbabilities(pass: number, unindexed: number): void {
    this.recordForward(pass, unindexed);
    this.kernels.probabilities.record(pass);
  }

  /** Records x̃ at each ε of pass record `pass`, each in its block of rows of the adversarial buffer. */
  recordExamples(pass: number): void {
    this.kernels.examples.record(pass);
  }

  /** Records the zero-gradient count of the batch of pass record `pass`. */
  recordZeroDirections(pass: number): void {
    this.kernels.zeroDirections.record(pass);
  }

  private recordForward(pass: number, unindexed: number): void {
    this.recordExamples(pass);
    for (const kernel of this.kernels.forward) kernel.record(unindexed);
  }
}

/**
 * The class probabilities of the deterministic network on `examples` rows, n at a time, from the logits in `main`:
 * the split's own (the caller records the gradient pass's forward pass over batch b), or rows the host uploads into
 * hostRows (the forward pass over them writes main's h·, route· and logits, as the gradient pass's does).
 */
class ProbabilityPasses extends HeldPasses {
  private constructor(
    readonly examples: number,
    private readonly classes: number,
    held: Holdings,
    private readonly kernels: { forward: RecordedKernel[]; probabilities: Probabilities },
    private readonly runtime: GpuRuntime,
  ) {
    super(held);
  }

  static create(network: Network, n: number, examples: number, main: Holdings, rows: 'split' | 'host'): Promise<ProbabilityPasses> {
    const { runtime, spec } = network;
    const classes = spec.classes.length;
    return Holdings.build(runtime, async (held) => {
      const batches = Math.ceil(examples / n);
      const passes = held.addUniform(
        'probability passes',
        encodePasses(Array.from({ length: batches }, (_, b) => ({ cleanStart: b * n, firstSlot: 0, epsilons: 1 }))),
      );
      const probabilities = held.add('probabilities', examples * classes * 4);
      let forwardPass: RecordedKernel[] = [];
      if (rows === 'host') {
        const hostRows = held.add('hostRows', n * IMAGE_SIZE * 4);
        const rowIndex = held.add(
          'hostRowIndex',
          Uint32Array.from({ length: n }, (_, i) => i),
        );
        forwardPass = await forward(network, n, { images: hostRows, rowIndex, indexStride: n, batchRows: n }, main, held);
      }
      const kernel = held.keep(
        await Probabilities.create(
          runtime,
          { batchRows: n, groupSize: 1, examples, classes, top: spec.top },
          { passes, logits: main.get('logits'), probabilities },
        ),
      );
      return new ProbabilityPasses(examples, classes, held, { forward: forwardPass, probabilities: kernel }, runtime);
    });
  }

  /** The forward pass over the host's rows (under the unindexed record: its rows are hostRows's own). */
  recordForward(unindexed: number): void {
    for (const kernel of this.kernels.forward) kernel.record(unindexed);
  }

  recordProbabilities(batch: number): void {
    this.kernels.probabilities.record(batch);
  }

  async read(): Promise<Float32Array> {
    return new Float32Array(await this.runtime.read(this.buffer('probabilities'), 0, this.examples * this.classes * 4));
  }
}

/** IterativePasses's records of each batch and ε slot, in this order. */
const ITERATE_RECORDS: readonly Pick<IteratePass, 'phase' | 'tally'>[] = [
  { phase: 'startAtX', tally: false },
  { phase: 'startRandom', tally: false },
  { phase: 'step', tally: false },
  { phase: 'measure', tally: true },
  { phase: 'keepFirst', tally: false },
  { phase: 'keep', tally: false },
];
const recordIndex = (phase: IteratePass['phase']): number => ITERATE_RECORDS.findIndex((record) => record.phase === phase);

/**
 * The passes of an iterative attack with a given number of ε values: the iterate of one batch (n rows), its
 * random start, the step kernel, the forward pass over the iterate (into the gradient pass's buffers, so that the
 * gradient pass's loss and backward kernels take ∇ₓJ there), and the probabilities of the last iterate.
 */
class IterativePasses extends HeldPasses {
  private constructor(
    readonly epsilonCount: number,
    held: Holdings,
    private readonly kernels: { step: IterateStep; keep: KeepWorst; forward: RecordedKernel[]; probabilities: Probabilities },
    private readonly runtime: GpuRuntime,
  ) {
    super(held);
  }

  static create(network: Network, resident: ResidentData, batches: Batches, main: Holdings, epsilons: number): Promise<IterativePasses> {
    const { runtime, spec } = network;
    const n = batches.rows;
    return Holdings.build(runtime, async (held) => {
      const iterate = held.add('iterate', n * IMAGE_SIZE * 4);
      const noise = held.add('noise', n * IMAGE_SIZE * 4);
      const epsilonValues = held.add('epsilons', epsilons * 4);
      const stepSizes = held.add('stepSizes', epsilons * 4);
      const tallies = held.add('tallies', (1 + epsilons) * 4);
      const probabilities = held.add('probabilities', epsilons * batches.examples * spec.classes.length * 4);
      const clip = held.addUniform('clip', new Uint8Array(CLIP_BYTES));
      const aim = held.addUniform('aim', new Uint32Array(1));
      const best = held.add('best', n * IMAGE_SIZE * 4);
      const bestSuccess = held.add('bestSuccess', n * 4);
      const bestObjective = held.add('bestObjective', n * 4);
      const iterateRows = held.add(
        'iterateRows',
        Uint32Array.from({ length: n }, (_, i) => i),
      );
      const records: IteratePass[] = [];
      const probabilityRecords: FgsmPass[] = [];
      for (let b = 0; b < batches.count; b++) {
        for (let e = 0; e < epsilons; e++) {
          records.push(...ITERATE_RECORDS.map((what) => ({ cleanStart: b * n, slot: e, ...what })));
          probabilityRecords.push({ cleanStart: b * n, firstSlot: e, epsilons: 1 });
        }
      }
      const passes = held.addUniform('iterate passes', encodeIteratePasses(records));
      const probabilityPasses = held.addUniform('probability passes', encodePasses(probabilityRecords));
      const shape = { batchRows: n, examples: batches.examples };
      const step = held.keep(
        await IterateStep.create(
          runtime,
          { ...shape, inputs: IMAGE_SIZE },
          {
            passes,
            clip,
            images: resident.images!,
            rowIndex: batches.rowIndex,
            direction: main.get('direction'),
            noise,
            epsilons: epsilonValues,
            stepSizes,
            iterate,
            tallies,
          },
        ),
      );
      const keep = held.keep(
        await KeepWorst.create(
          runtime,
          { ...shape, inputs: IMAGE_SIZE, classes: spec.classes.length, top: spec.top, sigmoidLoss: spec.sigmoidLoss },
          {
            passes,
            aim,
            logits: main.get('logits'),
            labels: main.get('lossLabels'),
            rowIndex: batches.rowIndex,
            iterate,
            best,
            bestSuccess,
            bestObjective,
          },
        ),
      );
      const input: BatchInput = { images: iterate, rowIndex: iterateRows, indexStride: n, batchRows: n };
      const forwardPass = await forward(network, n, input, main, held);
      const probabilitiesKernel = held.keep(
        await Probabilities.create(
          runtime,
          { ...shape, groupSize: 1, classes: spec.classes.length, top: spec.top },
          { passes: probabilityPasses, logits: main.get('logits'), probabilities },
        ),
      );
      return new IterativePasses(epsilons, held, { step, keep, forward: forwardPass, probabilities: probabilitiesKernel }, runtime);
    });
  }

  recordStart(batch: number, slot: number, random: boolean): void {
    this.kernels.step.record(this.recordOf(batch, slot, random ? 'startRandom' : 'startAtX'));
  }

  recordStep(batch: number, slot: number): void {
    this.kernels.step.record(this.recordOf(batch, slot, 'step'));
  }

  /** The largest |x̃ − x| of the iterate into the slot's tally. */
  recordMeasure(batch: number, slot: number): void {
    this.kernels.step.record(this.recordOf(batch, slot, 'measure'));
  }

  /** KeepWorst after a run's forward pass over its last iterate. */
  recordKeep(batch: number, slot: number, first: boolean): void {
    this.kernels.keep.record(this.recordOf(batch, slot, first ? 'keepFirst' : 'keep'));
  }

  /** The kept iterates back into the iterate (a copy, not a dispatch). */
  restoreKept(): void {
    const iterate = this.buffer('iterate');
    this.runtime.copy(this.buffer('best'), 0, iterate, 0, iterate.size);
  }

  /** The forward pass over the iterate (under the unindexed record: its rows are the iterate's own). */
  recordForward(unindexed: number): void {
    for (const kernel of this.kernels.forward) kernel.record(unindexed);
  }

  recordProbabilities(batch: number, slot: number): void {
    this.kernels.probabilities.record(batch * this.epsilonCount + slot);
  }

  private recordOf(batch: number, slot: number, phase: IteratePass['phase']): number {
    return (batch * this.epsilonCount + slot) * ITERATE_RECORDS.length + recordIndex(phase);
  }
}

/** The deterministic network's forward pass over `rows` rows of `input`, into `into`'s h·, route· and logits; its kernels kept by `keeper`. */
async function forward(network: Network, rows: number, input: BatchInput, into: Holdings, keeper: Holdings): Promise<RecordedKernel[]> {
  const { runtime, spec, steps, parameters } = network;
  if (spec.rbf) {
    // the RBF network reads its rows from a buffer of their own, which its input gradient reads too
    const shape = { lanes: 1, rows, inputs: IMAGE_SIZE, dropout: null, noise: null };
    const rowsOf = keeper.keep(await BatchInputKernel.create(runtime, shape, { steps, batch: input, output: into.get('input') }));
    const buffers = { parameters, input: into.get('input'), logits: into.get('logits') };
    return [rowsOf, keeper.keep(await RbfForward.create(runtime, rbfShape(spec, network.layout, 1, rows), buffers))];
  }
  const kernels: RecordedKernel[] = [];
  for (const [i, { pieces }] of spec.layers.entries()) {
    const buffers = {
      steps,
      parameters,
      input: i === 0 ? input : into.get(`h${i}`),
      output: into.get(`h${i + 1}`),
      route: into.get(`route${i + 1}`),
    };
    kernels.push(keeper.keep(await HiddenForward.create(runtime, { ...layerShape(network, i + 1, rows), pieces, dropout: null }, buffers)));
  }
  const top = spec.layers.length + 1;
  const buffers = { steps, parameters, input: top === 1 ? input : into.get(`h${top - 1}`), output: into.get('logits') };
  kernels.push(keeper.keep(await OutputForward.create(runtime, layerShape(network, top, rows), buffers)));
  return kernels;
}

function layerShape(network: Network, j: number, rows: number): LayerShape {
  const { inputs, columns, offset } = network.layout.layers[j - 1]!;
  return { lanes: 1, rows, layer: j, inputs, columns, laneFloats: network.layout.laneFloats, offset };
}

function laneStep(batchStart: number): LaneStep {
  return { dropoutSeed: 0, gradientSeed: 0, batchStart, active: true, learningRate: 0, momentum: 0, statsSlot: 0 };
}
