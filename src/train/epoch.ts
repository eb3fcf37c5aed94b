import * as tf from '@tensorflow/tfjs-core';
import type { TrainingConfig } from '../config/schema.js';
import { FgsmError } from '../core/errors.js';
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

export interface EpochContext {
  model: Classifier;
  config: TrainingConfig;
  seed: number;
  perturbation: TrainingPerturbation | null;
  optimizer: MomentumSgd;
  progress: Progress;
}

/**
 * One pass over the stage's split in a fresh seeded order: per minibatch x̃ (if any), the objective's gradient,
 * the update and the max-norm constraint. Advances `state.step`; returns the epoch's record (training figures
 * only: the stage monitors the rest).
 */
export async function trainEpoch(context: EpochContext, stage: Stage, state: TrainingState, epoch: number): Promise<EpochRecord> {
  const { model, config, seed, perturbation, optimizer, progress } = context;
  const split = stage.split;
  const order = stream(seed, 'shuffle', ...stage.streams, epoch).permutation(split.n);
  const batches = Math.ceil(split.n / config.batchSize);
  const momentum = stage.momentum.at(epoch);
  const variables = model.parameters.map((p) => p.variable);
  const where = `stage ${state.stage} epoch ${epoch}`;
  const tally = new Tally(where, batches, state.step);
  let learningRate = stage.learningRate.at(state.step);
  progress.start(batches, where);
  try {
    for (let b = 0; b < batches; b++) {
      const batch = gatherBatch(split, order, b * config.batchSize, Math.min(split.n, (b + 1) * config.batchSize));
      learningRate = stage.learningRate.at(state.step);
      const dropoutSeed = streamSeed(seed, 'step', ...stage.streams, epoch, b);
      const { loss, wrong } = tf.tidy(() => {
        const x = tf.tensor2d(batch.x, [batch.n, IMAGE_SIZE]);
        const y = tf.tensor1d(batch.y, 'int32');
        // x̃ is computed outside the objective's tape: a constant, no gradient flows through it
        const perturbed = perturbation ? perturbation.perturb(model, x, y, dropoutSeed) : null;
        let misclassified: tf.Scalar | null = null;
        const { value, grads } = tf.variableGrads(() => {
          const objective = minibatchObjective(model, x, y, perturbed, perturbation, dropoutSeed);
          misclassified = tf.keep(objective.misclassified); // leaves variableGrads' scope; returned from this one
          return objective.loss;
        }, variables);
        optimizer.apply(grads, learningRate, momentum);
        model.constrain();
        return { loss: value, wrong: misclassified! };
      });
      tally.add(loss, wrong, batch.n);
      state.step++;
      if (b % READ_EVERY === 0 || b === batches - 1) {
        await tally.read();
        progress.update(b + 1, `loss ${(tally.lossSum / tally.examples).toFixed(4)}`);
      }
    }
  } finally {
    tally.dispose();
  }
  progress.stop();
  return {
    stage: state.stage,
    epoch,
    learningRate,
    momentum,
    trainLoss: tally.lossSum / split.n,
    trainError: tally.errors / split.n,
    validationError: null,
    adversarialValidationError: null,
    heldOutLoss: null,
    seconds: 0,
  };
}

/**
 * The epoch's loss sum and error count. Each minibatch's loss and error count stay on the device until `read`,
 * which fetches all of them since the last read in one transfer (a read waits for every queued step), then sums
 * them on the host in float64, minibatch by minibatch: the same sums, to the bit, as reading every minibatch.
 */
class Tally {
  lossSum = 0;
  errors = 0;
  examples = 0;
  /** Minibatches read so far. */
  private done = 0;
  private pending: { loss: tf.Scalar; wrong: tf.Scalar; n: number }[] = [];

  constructor(
    private readonly where: string,
    private readonly batches: number,
    /** The stage's steps before this epoch. */
    private readonly stepsBefore: number,
  ) {}

  /** Takes over the minibatch's loss and error count. */
  add(loss: tf.Scalar, wrong: tf.Scalar, n: number): void {
    this.pending.push({ loss, wrong, n });
  }

  /**
   * Adds the pending minibatches to the sums; a non-finite loss among them means training diverged. Reads
   * asynchronously (WebGPU in Node has no synchronous read); the steps queued before it are its only wait.
   */
  async read(): Promise<void> {
    const stacked = tf.tidy(() => tf.stack(this.pending.flatMap((p) => [p.loss, p.wrong])));
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
    tf.dispose(this.pending.flatMap((p) => [p.loss, p.wrong]));
    this.pending = [];
  }
}
