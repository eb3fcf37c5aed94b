import { FgsmError } from '../core/errors.js';
import { yieldToEventLoop } from '../core/event-loop.js';
import { gradientStateSeed } from '../attacks/training-perturbations.js';
import type { Split } from '../data/dataset.js';
import type { Classifier, ModelSpec, SoftmaxGradient } from '../models/classifier.js';
import { ResidentFgsm } from './resident-fgsm.js';
import { epochOrder, stepSeed, type EpochContext, type EpochEngine, type LaneEpoch } from '../train/epoch.js';
import type { EpochRecord } from '../train/state.js';
import { encodeSteps, MAX_LANES, type LaneStep } from './kernels/step-record.js';
import { asEngineNetwork, layoutOf, stackedParametersTooLarge, type EngineNetwork } from './network.js';
import type { PackedLayout } from './parameters.js';
import { ResidentData } from './resident-data.js';
import { GpuRuntime } from './runtime.js';
import { StepProgram, type EngineTraining, type ProgramShape } from './step-program.js';

/** Minibatches between reads of the losses and error counts (the progress bar moves, divergence is caught): the only waits. */
export const READ_EVERY = 50;

/**
 * Why the engine cannot train this network with this objective and these penalties (null: it can). What it runs:
 * maxout networks with the softmax or independent-sigmoid top, softmax and logistic regression and the RBF network
 * (networks with no hidden layer), dropout from the counter-based stream threefry-v1 or none, trained clean,
 * adversarially (§6's J̃ in each gradient state and form) or on §6's noise controls (whose noise threefry-v1 also
 * draws: so only with that dropout), with momentum, max-norm, weight decay and L1.
 */
export function engineSupport(spec: ModelSpec, training: EngineTraining, lanes = 1): string | null {
  const { objective } = training;
  const network = asEngineNetwork(spec);
  if (!network) return `it trains maxout, softmax, logistic and RBF networks, not ${spec.kind}`;
  const stream = network.dropout ? (network.dropout.stream ?? 'sfc32-rows') : null;
  if (stream && stream !== 'threefry-v1')
    return `it draws dropout on the device from the counter-based stream: set model.dropout.stream: threefry-v1 (this config uses ${stream})`;
  if (objective.kind === 'noise' && !network.dropout)
    return "it draws the noise controls' noise from the counter-based stream, which comes with model.dropout.stream: threefry-v1 (this network has no dropout)";
  if (objective.kind === 'adversarial' && objective.gradient !== 'standard' && objective.gradient !== 'stable')
    return `it takes ∇ₓJ with the standard or the stable gradient, not ${objective.gradient}`;
  if (lanes > MAX_LANES) return `it stacks at most ${MAX_LANES} seeds, not ${lanes}`;
  return null;
}

/**
 * The paper's networks trained on the device (DESIGN.md, "A WebGPU engine"): examples resident, dropout
 * drawn by the kernels, each step's work recorded into one command stream without host work that grows with the
 * batch, losses and error counts read once per READ_EVERY steps. Parameters and velocities move between tfjs's
 * variables and the engine's packed buffers on the device, once per epoch: stages, early stopping, checkpoints
 * and evaluation see tfjs variables as they do after trainEpoch.
 */
export class TrainingEngine implements EpochEngine {
  private readonly network: EngineNetwork;
  private readonly layout: PackedLayout;
  private readonly resident: ResidentData;
  private program: StepProgram | null = null;
  private readonly attacks = new Map<Split, ResidentFgsm>();

  constructor(
    private readonly runtime: GpuRuntime,
    private readonly spec: ModelSpec,
    private readonly training: EngineTraining,
  ) {
    const network = asEngineNetwork(spec);
    if (!network) throw new Error(`the WebGPU engine cannot train this: ${engineSupport(spec, training)}`);
    this.network = network;
    this.layout = layoutOf(network);
    this.resident = new ResidentData(runtime);
  }

  /** An engine on tfjs's active webgpu backend's device. */
  static onTfjsDevice(spec: ModelSpec, training: EngineTraining): TrainingEngine {
    const reason = engineSupport(spec, training);
    if (reason) throw new Error(`the WebGPU engine cannot train this: ${reason}`);
    return new TrainingEngine(GpuRuntime.ofTfjsBackend(), spec, training);
  }

  get counters() {
    return this.runtime.counters;
  }

  /** Device buffers the engine holds (none once disposed). */
  get liveBuffers(): number {
    return this.runtime.liveBuffers;
  }

  async trainEpoch(context: EpochContext, lanes: readonly LaneEpoch[]): Promise<EpochRecord[] | null> {
    const { config, progress } = context;
    const batchSize = config.batchSize;
    // a ragged last minibatch has kernels of its own, which every lane would have to need at the same step
    const ragged = lanes.find((lane) => lane.stage.split.n % batchSize !== 0);
    if (ragged && lanes.length > 1)
      throw new Error(`stacked seeds train whole minibatches only: a split of ${ragged.stage.split.n} in batches of ${batchSize}`);
    const remainder = lanes.length === 1 ? lanes[0]!.stage.split.n % batchSize : 0;
    const reason = engineSupport(this.spec, this.training, lanes.length);
    if (reason) throw new Error(`the WebGPU engine cannot train this: ${reason}`);
    const plans = lanes.map((lane) => {
      const epoch = lane.state.epoch + 1;
      const { split } = lane.stage;
      return { ...lane, epoch, batches: Math.ceil(split.n / batchSize), momentum: lane.stage.momentum.at(epoch), base: this.resident.baseOf(split) };
    });
    const steps = Math.max(...plans.map((plan) => plan.batches));
    const indexStride = Math.max(...plans.map((plan) => plan.stage.split.n));
    const program = await this.programFor({ lanes: lanes.length, batchSize, remainder, indexStride, steps });
    const rowsOf = (b: number) => (remainder > 0 && b === steps - 1 ? remainder : batchSize);

    // the epoch's row indices and per-step records: its only uploads
    const rowIndex = new Uint32Array(lanes.length * indexStride);
    plans.forEach((plan, l) => {
      const order = epochOrder(plan, plan.epoch);
      for (let i = 0; i < order.length; i++) rowIndex[l * indexStride + i] = plan.base + order[i]!;
    });
    const learningRates = plans.map(() => 0);
    const records: LaneStep[][] = [];
    for (let b = 0; b < steps; b++) {
      records.push(
        plans.map((plan, l) => {
          const active = b < plan.batches;
          if (active) learningRates[l] = plan.stage.learningRate.at(plan.state.step + b);
          const dropoutSeed = active ? stepSeed(plan, plan.epoch, b) : 0;
          return {
            dropoutSeed,
            gradientSeed: gradientStateSeed(dropoutSeed),
            batchStart: active ? b * batchSize : 0,
            active,
            learningRate: active ? learningRates[l]! : 0,
            momentum: plan.momentum,
            statsSlot: b,
          };
        }),
      );
    }
    program.upload(rowIndex, encodeSteps(records));
    this.layout.copyIn(this.runtime, context.model.parameters, (p) => p.variable, program.params, lanes.length);
    this.layout.copyIn(this.runtime, context.model.parameters, (p) => context.optimizer.velocities.get(p.name)!, program.velocity, lanes.length);

    const sums = plans.map(() => ({ loss: 0, errors: 0 }));
    progress.start(
      steps,
      plans.map((plan) => `${lanes.length > 1 ? `seed ${plan.seed} ` : ''}stage ${plan.state.stage} epoch ${plan.epoch}`).join(', '),
    );
    // chunks of READ_EVERY steps, pipelined: the next is recorded and submitted before the last one's figures are read
    const chunk = (from: number): { from: number; to: number; stats: Promise<Float32Array> } => {
      const to = Math.min(steps, from + READ_EVERY);
      const stats = this.runtime.checked(`steps ${from + 1}–${to} of the epoch`, () => {
        const recording = performance.now();
        for (let b = from; b < to; b++) program.recordStep(b);
        this.runtime.submit();
        this.runtime.counters.recordingMilliseconds += performance.now() - recording;
        return program.readStats(from, to);
      });
      stats.catch(() => undefined); // awaited in turn; a chunk left behind by a failure before it is not an unhandled one
      return { from, to, stats };
    };
    try {
      let inFlight = chunk(0);
      for (;;) {
        const { from, to } = inFlight;
        const next = to < steps && !context.signal?.aborted ? chunk(to) : null;
        const stats = await inFlight.stats;
        plans.forEach((plan, l) => {
          for (let b = from; b < Math.min(to, plan.batches); b++) {
            const loss = stats[(b - from) * lanes.length * 2 + l * 2]!;
            if (!Number.isFinite(loss)) {
              throw new FgsmError(
                `training diverged: the loss is ${loss} at stage ${plan.state.stage} epoch ${plan.epoch}, step ${plan.state.step + b + 1} (minibatch ${b + 1} of ${plan.batches})`,
                'lower training.learningRate.initial; the last good checkpoint is kept',
              );
            }
            sums[l]!.loss += loss * rowsOf(b);
            sums[l]!.errors += stats[(b - from) * lanes.length * 2 + l * 2 + 1]!;
          }
        });
        const seen = plans.reduce((sum, plan, l) => sum + sums[l]!.loss / Math.min(plan.stage.split.n, to * batchSize), 0) / plans.length;
        progress.update(to, `loss ${seen.toFixed(4)}`);
        await yieldToEventLoop();
        if (context.signal?.aborted) {
          await next?.stats.catch(() => undefined); // the epoch is discarded; its last chunk only drains
          return null;
        }
        if (!next) break;
        inFlight = next;
      }
    } finally {
      progress.stop();
    }
    this.layout.copyOut(this.runtime, context.model.parameters, (p) => p.variable, program.params, lanes.length);
    this.layout.copyOut(this.runtime, context.model.parameters, (p) => context.optimizer.velocities.get(p.name)!, program.velocity, lanes.length);
    plans.forEach((plan, l) => {
      plan.state.step += plan.batches;
      context.laneDone?.(l);
    });
    return plans.map((plan, l) => ({
      stage: plan.state.stage,
      epoch: plan.epoch,
      learningRate: learningRates[l]!,
      momentum: plan.momentum,
      trainLoss: sums[l]!.loss / plan.stage.split.n,
      trainError: sums[l]!.errors / plan.stage.split.n,
      validationError: null,
      adversarialValidationError: null,
      heldOutLoss: null,
      seconds: 0,
    }));
  }

  /**
   * Why this device cannot hold `splits` resident (each distinct one once, one after another in one buffer) or the
   * parameters of `lanes` stacked seeds, or null when it can: a software adapter binds 128 MiB, less than MNIST's
   * 50,000 training images.
   */
  cannotHold(splits: readonly Split[], lanes: number): string | null {
    const rows = splits.reduce((sum, split) => sum + split.n, 0);
    const bytes = rows * this.spec.inputSize * 4;
    const limit = this.runtime.device.limits.maxStorageBufferBindingSize;
    if (bytes > limit)
      return `its ${rows} resident examples take ${Math.ceil(bytes / 2 ** 20)} MiB, more than this adapter binds (${Math.floor(limit / 2 ** 20)} MiB)`;
    return stackedParametersTooLarge(this.spec, lanes, limit);
  }

  /** The step program for this many lanes and shapes, rebuilt when they (or the resident data) change. */
  private async programFor(shape: Omit<ProgramShape, 'residentVersion'>): Promise<StepProgram> {
    const wanted = { ...shape, residentVersion: this.resident.version };
    if (this.program && !this.program.fits(wanted)) {
      this.program.dispose();
      this.program = null;
    }
    this.program ??= await StepProgram.create(this.runtime, this.network, this.training, this.layout, this.resident, wanted);
    return this.program;
  }

  /**
   * The error on FGSM examples of `split` at ε (§6's adversarial validation error, what fgsmErrorRate measures) on
   * the device, the split uploaded once; null for a gradient form the engine does not compute.
   */
  async fgsmErrorRate(model: Classifier, split: Split, epsilon: number, gradient: SoftmaxGradient): Promise<number | null> {
    if (gradient !== 'standard' && gradient !== 'stable') return null;
    return (await (await this.residentFgsm(split)).errorRates(model, [epsilon], gradient))[0]!;
  }

  /** FGSM on `split` resident on the device (built once per split, released with the engine). */
  async residentFgsm(split: Split): Promise<ResidentFgsm> {
    let attack = this.attacks.get(split);
    if (!attack) {
      attack = await ResidentFgsm.create(this.runtime, this.spec, split);
      this.attacks.set(split, attack);
    }
    return attack;
  }

  dispose(): void {
    for (const attack of this.attacks.values()) attack.dispose();
    this.attacks.clear();
    this.program?.dispose();
    this.resident.dispose();
    this.program = null;
  }
}
