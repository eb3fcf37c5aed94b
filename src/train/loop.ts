import * as tf from '@tensorflow/tfjs';
import type { TrainingConfig } from '../config/schema.js';
import { FgsmError, InterruptedError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { stream, streamSeed } from '../core/rng.js';
import { gatherBatch } from '../data/batches.js';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier } from '../models/classifier.js';
import { errorRate } from '../models/inference.js';
import { assignParameters } from '../models/weights-io.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { learningRateAt, momentumAt } from './schedule.js';
import { MomentumSgd } from './sgd.js';

export interface EpochRecord {
  epoch: number;
  learningRate: number;
  momentum: number;
  /** Mean minibatch loss over the epoch (training state, e.g. with dropout). */
  trainLoss: number;
  /** Fraction of minibatch examples misclassified during the epoch (training state). */
  trainError: number;
  validationError: number | null;
  seconds: number;
}

export interface TrainingState {
  /** Epochs completed. */
  epoch: number;
  /** Minibatch updates so far (the t of the learning-rate decay). */
  step: number;
  bestEpoch: number | null;
  bestValidationError: number | null;
  epochsSinceBest: number;
  stoppedBy: 'early-stopping' | 'max-epochs' | null;
  history: EpochRecord[];
}

export interface TrainingSummary {
  epochs: number;
  steps: number;
  bestEpoch: number | null;
  bestValidationError: number | null;
  stoppedBy: 'early-stopping' | 'max-epochs';
  /** The epoch whose parameters the model ends with. */
  chosenEpoch: number;
  finalTrainingError: number;
  resumedFromEpoch: number | null;
  seconds: number;
  history: EpochRecord[];
}

export interface TrainOptions {
  model: Classifier;
  train: Split;
  validation: Split | null;
  config: TrainingConfig;
  seed: number;
  /** Where checkpoints go (and are resumed from); null: no checkpoints. */
  checkpointDir: string | null;
  progress: Progress;
  /** Checked after each epoch's checkpoint: stop there with InterruptedError. */
  signal?: AbortSignal;
  /** Called after each epoch, after its checkpoint is written. */
  onEpoch?: (record: EpochRecord, state: TrainingState) => void;
}

const freshState = (): TrainingState => ({
  epoch: 0,
  step: 0,
  bestEpoch: null,
  bestValidationError: null,
  epochsSinceBest: 0,
  stoppedBy: null,
  history: [],
});

/**
 * The training loop (not model.fit): seeded reshuffling every epoch, minibatch SGD with momentum and the
 * configured schedules, max-norm after every update, early stopping on validation error with patience,
 * keeping the best parameters, and a checkpoint after every epoch from which an interrupted run resumes
 * with results identical to an uninterrupted one.
 */
export async function train(options: TrainOptions): Promise<TrainingSummary> {
  const { model, config, progress } = options;
  const started = Date.now();
  const optimizer = new MomentumSgd(model.parameters, config.weightDecay);
  const best = new Map<string, tf.Variable>(model.parameters.map((p) => [p.name, tf.variable(p.variable, false)]));
  const early = config.earlyStopping;
  const validating = early.metric === 'validation-error' && options.validation !== null;
  let state = freshState();
  let resumedFromEpoch: number | null = null;

  try {
    const checkpoint = options.checkpointDir ? loadCheckpoint<TrainingState>(options.checkpointDir) : null;
    if (checkpoint) {
      const t = checkpoint.tensors;
      const pick = (prefix: string) => Object.fromEntries(model.parameters.map((p) => [p.name, t[`${prefix}/${p.name}`]!]));
      assignParameters(model, pick('params'), 'checkpoint');
      for (const [name, v] of optimizer.velocities) v.assign(t[`velocity/${name}`]!);
      for (const [name, v] of best) v.assign(t[`best/${name}`]!);
      tf.dispose(Object.values(t));
      state = checkpoint.state;
      resumedFromEpoch = state.epoch;
      progress.line(`resuming from the checkpoint after epoch ${state.epoch} (step ${state.step})`);
    }

    while (state.stoppedBy === null) {
      const epoch = state.epoch + 1;
      const epochStarted = Date.now();
      const record = runEpoch(options, optimizer, state, epoch);
      record.seconds = (Date.now() - epochStarted) / 1000;
      state.epoch = epoch;

      if (validating) {
        record.validationError = errorRate(model, options.validation!.x, options.validation!.y);
        if (state.bestValidationError === null || record.validationError < state.bestValidationError) {
          state.bestValidationError = record.validationError;
          state.bestEpoch = epoch;
          state.epochsSinceBest = 0;
          for (const p of model.parameters) best.get(p.name)!.assign(p.variable);
        } else {
          state.epochsSinceBest++;
        }
      }
      state.history.push(record);
      if (validating && state.epochsSinceBest >= early.patience) state.stoppedBy = 'early-stopping';
      else if (epoch >= config.epochs) state.stoppedBy = 'max-epochs';

      if (options.checkpointDir) {
        const tensors: Record<string, tf.Tensor> = {};
        for (const p of model.parameters) tensors[`params/${p.name}`] = p.variable;
        for (const [name, v] of optimizer.velocities) tensors[`velocity/${name}`] = v;
        for (const [name, v] of best) tensors[`best/${name}`] = v;
        await saveCheckpoint(options.checkpointDir, epoch, { state, tensors });
      }
      progress.line(describeEpoch(record, state, config.epochs));
      options.onEpoch?.(record, state);
      // the epoch ran synchronously (wasm resolves data() as microtasks): let signal handlers and timers run
      await new Promise((resolve) => setImmediate(resolve));
      if (options.signal?.aborted && state.stoppedBy === null)
        throw new InterruptedError(`interrupted after epoch ${epoch}; rerun the same command to resume`);
    }

    let chosenEpoch = state.epoch;
    if (validating && early.keepBest && state.bestEpoch !== null) {
      for (const p of model.parameters) p.variable.assign(best.get(p.name)!);
      chosenEpoch = state.bestEpoch;
    }
    const last = state.history.at(-1)!;
    return {
      epochs: state.epoch,
      steps: state.step,
      bestEpoch: state.bestEpoch,
      bestValidationError: state.bestValidationError,
      stoppedBy: state.stoppedBy,
      chosenEpoch,
      finalTrainingError: last.trainError,
      resumedFromEpoch,
      seconds: (Date.now() - started) / 1000,
      history: state.history,
    };
  } finally {
    optimizer.dispose();
    for (const v of best.values()) v.dispose();
  }
}

function runEpoch(options: TrainOptions, optimizer: MomentumSgd, state: TrainingState, epoch: number): EpochRecord {
  const { model, config, train: split, progress } = options;
  const order = stream(options.seed, 'shuffle', epoch).permutation(split.n);
  const batches = Math.ceil(split.n / config.batchSize);
  const momentum = momentumAt(epoch, config.momentum);
  const variables = model.parameters.map((p) => p.variable);
  let lossSum = 0;
  let errors = 0;
  let learningRate = learningRateAt(state.step, config.learningRate);
  progress.start(batches, `epoch ${epoch}/${config.epochs}`);
  for (let b = 0; b < batches; b++) {
    const batch = gatherBatch(split, order, b * config.batchSize, Math.min(split.n, (b + 1) * config.batchSize));
    learningRate = learningRateAt(state.step, config.learningRate);
    const stepSeed = streamSeed(options.seed, 'step', epoch, b);
    const [loss, wrong] = tf.tidy((): number[] => {
      const x = tf.tensor2d(batch.x, [batch.n, IMAGE_SIZE]);
      const y = tf.tensor1d(batch.y, 'int32');
      let misclassified: tf.Scalar | null = null;
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.trainingLogits(x, stepSeed);
        misclassified = tf.keep(tf.sum(tf.cast(tf.notEqual(tf.argMax(model.probabilities(logits), 1), y), 'float32')) as tf.Scalar);
        return tf.mean(model.loss(logits, y)) as tf.Scalar;
      }, variables);
      optimizer.apply(grads, learningRate, momentum);
      model.constrain();
      const counts = [value.dataSync()[0]!, misclassified!.dataSync()[0]!];
      misclassified!.dispose(); // kept out of variableGrads' own scope
      return counts;
    }) as [number, number];
    if (!Number.isFinite(loss)) {
      throw new FgsmError(
        `training diverged: the loss is ${loss} at epoch ${epoch}, step ${state.step + 1} (minibatch ${b + 1} of ${batches})`,
        'lower training.learningRate.initial; the last good checkpoint is kept',
      );
    }
    state.step++;
    lossSum += loss * batch.n;
    errors += wrong;
    if (b % 20 === 0 || b === batches - 1) progress.update(b + 1, `loss ${(lossSum / Math.min(split.n, (b + 1) * config.batchSize)).toFixed(4)}`);
  }
  progress.stop();
  return { epoch, learningRate, momentum, trainLoss: lossSum / split.n, trainError: errors / split.n, validationError: null, seconds: 0 };
}

function describeEpoch(record: EpochRecord, state: TrainingState, maxEpochs: number): string {
  const parts = [`epoch ${record.epoch}/${maxEpochs}`, `loss ${record.trainLoss.toFixed(4)}`, `train error ${(100 * record.trainError).toFixed(2)}%`];
  if (record.validationError !== null)
    parts.push(
      `validation error ${(100 * record.validationError).toFixed(2)}% (best ${(100 * state.bestValidationError!).toFixed(2)}% @ ${state.bestEpoch})`,
    );
  parts.push(`η ${record.learningRate.toPrecision(3)}`, `μ ${record.momentum.toFixed(3)}`, `${record.seconds.toFixed(1)} s`);
  if (state.stoppedBy) parts.push(`→ stop (${state.stoppedBy})`);
  return parts.join(' | ');
}
