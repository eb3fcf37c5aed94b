import * as tf from '@tensorflow/tfjs-core';
import type { TrainingConfig } from '../config/schema.js';
import { FgsmError } from '../core/errors.js';
import { yieldToEventLoop } from '../core/event-loop.js';
import type { Progress } from '../core/progress.js';
import { stream, streamSeed } from '../core/rng.js';
import { gatherBatch } from '../data/batches.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier } from '../models/classifier.js';
import { minibatchObjective, type TrainingPerturbation } from './objective.js';
import type { MomentumSgd } from './sgd.js';
import type { Stage } from './stages.js';
import type { EpochRecord, TrainingState } from './state.js';

/** The progress bar (and the loss it shows) moves every this many minibatches: the only reads inside an epoch. */
const READ_EVERY = 20;

/**
 * The epoch yields to the event loop every this many minibatches (no device read: on wasm its reads resolve as
 * microtasks and it would never yield), so that a signal's handler runs at once and the epoch stops soon after.
 */
const YIELD_EVERY = 4;

export interface EpochContext {
  /** The network trained: one, or several seeds stacked (MaxoutNetwork with lanes; one lane per seed). */
  model: Classifier;
  config: TrainingConfig;
  perturbation: TrainingPerturbation | null;
  optimizer: MomentumSgd;
  progress: Progress;
  /**
   * Called after a lane's last minibatch of the epoch, before the steps of longer lanes go on (stacked seeds: the
   * lane's parameters are taken out there; later steps leave its rows idle but still pass through its network).
   */
  laneDone?: (lane: number) => void;
  /** Checked every few minibatches: once aborted, the epoch stops there and is discarded. */
  signal?: AbortSignal;
}

/**
 * Something that trains an epoch with trainEpoch's contract (the same lanes, orders, streams, schedules and records)
 * without tfjs's ops: an engine built for the network (src/engine). Training does not know which runs it.
 */
export interface EpochEngine {
  trainEpoch(context: EpochContext, lanes: readonly LaneEpoch[]): Promise<EpochRecord[] | null>;
  /** Releases what it holds on the device (again: nothing). */
  dispose(): void;
}

/** The order in which a lane visits its stage's split in `epoch`: a fresh seeded permutation. */
export function epochOrder(lane: LaneEpoch, epoch: number): Int32Array {
  return stream(lane.seed, 'shuffle', ...lane.stage.streams, epoch).permutation(lane.stage.split.n);
}

/** The seed of a lane's dropout masks (and a noise control's noise) at minibatch `b` of `epoch`. */
export function stepSeed(lane: LaneEpoch, epoch: number, b: number): number {
  return streamSeed(lane.seed, 'step', ...lane.stage.streams, epoch, b);
}

/** One lane's part of an epoch: its seed's training, in its own stage, order, schedule and random streams. */
export interface LaneEpoch {
  seed: number;
  stage: Stage;
  state: TrainingState;
}

/**
 * One epoch of each lane (one per network of the model, in order): a pass over the lane's stage's split in a
 * fresh seeded order, per minibatch x̃ (if any), the objective's gradient, the update and the max-norm
 * constraint. Every lane's minibatches, dropout masks, learning rate and momentum are those of its seed trained
 * alone; a lane with fewer minibatches (stage 1 beside stage 2) idles on zero rows once done. Advances each
 * state's step; returns each lane's record (training figures only: the stage monitors the rest), or null when
 * `context.signal` stopped it part-way (the states' steps are then those of an unfinished epoch: discard them).
 */
export async function trainEpoch(context: EpochContext, lanes: readonly LaneEpoch[]): Promise<EpochRecord[] | null> {
  const { model, config, perturbation, optimizer, progress } = context;
  const batchSize = config.batchSize;
  const plans = lanes.map((lane) => {
    const epoch = lane.state.epoch + 1;
    const { split } = lane.stage;
    return {
      ...lane,
      epoch,
      order: epochOrder(lane, epoch),
      batches: Math.ceil(split.n / batchSize),
      momentum: lane.stage.momentum.at(epoch),
      learningRate: lane.stage.learningRate.at(lane.state.step),
      tally: new Tally(`stage ${lane.state.stage} epoch ${epoch}`, Math.ceil(split.n / batchSize), lane.state.step),
    };
  });
  const stacked = lanes.length > 1;
  const steps = Math.max(...plans.map((plan) => plan.batches));
  const ragged = stacked ? plans.find((plan) => plan.stage.split.n % batchSize !== 0) : undefined;
  if (ragged) throw new Error(`stacked seeds train whole minibatches only: a split of ${ragged.stage.split.n} in batches of ${batchSize}`);
  const variables = model.parameters.map((p) => p.variable);
  const idle = stacked ? { x: new Float32Array(batchSize * IMAGE_SIZE), y: new Int32Array(batchSize), n: batchSize } : null;
  progress.start(steps, plans.map((plan) => `${stacked ? `seed ${plan.seed} ` : ''}stage ${plan.state.stage} epoch ${plan.epoch}`).join(', '));
  try {
    for (let b = 0; b < steps; b++) {
      if (b % YIELD_EVERY === 0) {
        await yieldToEventLoop();
        if (context.signal?.aborted) return null;
      }
      const training = plans.map((plan) => (b < plan.batches ? plan : null));
      const batches = training.map((plan) =>
        plan ? gatherBatch(plan.stage.split, plan.order, b * batchSize, Math.min(plan.stage.split.n, (b + 1) * batchSize)) : idle!,
      );
      const dropoutSeeds = training.map((plan) => (plan ? stepSeed(plan, plan.epoch, b) : 0));
      for (const plan of training) if (plan) plan.learningRate = plan.stage.learningRate.at(plan.state.step);
      const { losses, wrong } = tf.tidy(() => {
        const x = tf.tensor2d(concatenated(batches.map((batch) => batch.x)), [batches.reduce((n, batch) => n + batch.n, 0), IMAGE_SIZE]);
        const y = tf.tensor1d(concatenated(batches.map((batch) => batch.y)), 'int32');
        // x̃ is computed outside the objective's tape: a constant, no gradient flows through it
        const perturbed = perturbation ? perturbation.perturb(model, x, y, dropoutSeeds) : null;
        let misclassified: tf.Tensor1D | null = null;
        let networkLosses: tf.Tensor1D | null = null;
        const { grads } = tf.variableGrads(() => {
          const objective = minibatchObjective(model, x, y, perturbed, perturbation, dropoutSeeds);
          misclassified = tf.keep(objective.misclassified); // leave variableGrads' scope; returned from this one
          networkLosses = tf.keep(objective.networkLosses);
          return objective.loss;
        }, variables);
        // idle lanes: no step (their parameters are put back before they train again)
        const perLane = (value: (plan: NonNullable<(typeof training)[number]>) => number): number | tf.Tensor =>
          stacked
            ? tf.tensor3d(
                training.map((plan) => (plan ? value(plan) : 0)),
                [lanes.length, 1, 1],
              )
            : value(training[0]!);
        optimizer.apply(
          grads,
          perLane((plan) => plan.learningRate),
          perLane((plan) => plan.momentum),
        );
        model.constrain();
        return { losses: networkLosses!, wrong: misclassified! };
      });
      let read: Promise<void>[] = [];
      training.forEach((plan, lane) => {
        if (!plan) return;
        plan.tally.add(losses, wrong, lane, batches[lane]!.n);
        plan.state.step++;
        if (b % READ_EVERY === 0 || b === plan.batches - 1) read.push(plan.tally.read());
        if (b === plan.batches - 1) context.laneDone?.(lane);
      });
      tf.dispose([losses, wrong]);
      if (read.length > 0) {
        await Promise.all(read);
        const running = plans.reduce((sum, plan) => sum + plan.tally.lossSum / Math.max(1, plan.tally.examples), 0) / plans.length;
        progress.update(b + 1, `loss ${running.toFixed(4)}`);
      }
      read = [];
    }
  } finally {
    for (const plan of plans) plan.tally.dispose();
    progress.stop();
  }
  return plans.map((plan) => ({
    stage: plan.state.stage,
    epoch: plan.epoch,
    learningRate: plan.learningRate,
    momentum: plan.momentum,
    trainLoss: plan.tally.lossSum / plan.stage.split.n,
    trainError: plan.tally.errors / plan.stage.split.n,
    validationError: null,
    adversarialValidationError: null,
    heldOutLoss: null,
    seconds: 0,
  }));
}

/** The arrays one after another in one array (no copy for one). */
function concatenated<T extends Float32Array | Int32Array>(parts: T[]): T {
  if (parts.length === 1) return parts[0]!;
  const all = new (parts[0]!.constructor as new (n: number) => T)(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

/**
 * One lane's loss sum and error count over its epoch. Each minibatch's losses and error counts (one per lane)
 * stay on the device until `read`, which fetches all of them since the last read in one transfer (a read waits
 * for every queued step), then sums the lane's on the host in float64, minibatch by minibatch: the same sums, to
 * the bit, as reading every minibatch.
 */
class Tally {
  lossSum = 0;
  errors = 0;
  examples = 0;
  /** Minibatches read so far. */
  private done = 0;
  private pending: { losses: tf.Tensor1D; wrong: tf.Tensor1D; lane: number; n: number }[] = [];

  constructor(
    private readonly where: string,
    private readonly batches: number,
    /** The stage's steps before this epoch. */
    private readonly stepsBefore: number,
  ) {}

  /** Keeps the minibatch's per-lane losses and error counts (its own reference: the caller disposes its own). */
  add(losses: tf.Tensor1D, wrong: tf.Tensor1D, lane: number, n: number): void {
    this.pending.push({ losses: tf.clone(losses), wrong: tf.clone(wrong), lane, n });
  }

  /**
   * Adds the pending minibatches to the sums; a non-finite loss among them means training diverged. Reads
   * asynchronously (WebGPU in Node has no synchronous read); the steps queued before it are its only wait.
   */
  async read(): Promise<void> {
    const stacked = tf.tidy(() => tf.stack(this.pending.flatMap((p) => [tf.gather(p.losses, p.lane), tf.gather(p.wrong, p.lane)])));
    let values: Float32Array;
    try {
      values = (await stacked.data()) as Float32Array;
    } finally {
      stacked.dispose();
    }
    this.pending.forEach(({ n }, i) => {
      const loss = values[2 * i]!;
      const minibatch = this.done + i + 1;
      if (!Number.isFinite(loss)) {
        throw new FgsmError(
          `training diverged: the loss is ${loss} at ${this.where}, step ${this.stepsBefore + minibatch} (minibatch ${minibatch} of ${this.batches})`,
          'lower training.learningRate.initial; the last good checkpoint is kept',
        );
      }
      this.lossSum += loss * n;
      this.errors += values[2 * i + 1]!;
      this.examples += n;
    });
    this.done += this.pending.length;
    this.dispose();
  }

  dispose(): void {
    tf.dispose(this.pending.flatMap((p) => [p.losses, p.wrong]));
    this.pending = [];
  }
}
