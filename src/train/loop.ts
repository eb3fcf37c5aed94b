import * as tf from '@tensorflow/tfjs';
import type { TrainingConfig } from '../config/schema.js';
import { FgsmError, InterruptedError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { stream, streamSeed } from '../core/rng.js';
import { gatherBatch } from '../data/batches.js';
import { joinSplits, type Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier } from '../models/classifier.js';
import { errorRate, meanTrainingLoss } from '../models/inference.js';
import { assignParameters } from '../models/weights-io.js';
import { loadCheckpoint, readCheckpointState, saveCheckpoint } from './checkpoint.js';
import { minibatchObjective, type TrainingPerturbation } from './objective.js';
import { learningRateAt, momentumAt } from './schedule.js';
import { MomentumSgd } from './sgd.js';

export interface EpochRecord {
  /** 1: selection on the first 50,000 with early stopping; 2: continue / retrain on all 60,000. */
  stage: 1 | 2;
  /** Epoch within its stage, from 1. */
  epoch: number;
  learningRate: number;
  momentum: number;
  /** Mean minibatch objective over the epoch (training state: dropout, J̃, noise). */
  trainLoss: number;
  /** Fraction of minibatch examples misclassified during the epoch (training state). */
  trainError: number;
  validationError: number | null;
  /** Error on FGSM examples of the validation split (when early stopping uses it). */
  adversarialValidationError: number | null;
  /** Stage 2 (continue): the dropout loss on the last 10,000 that the stage stops on. */
  heldOutLoss: number | null;
  seconds: number;
}

export type StopReason = 'early-stopping' | 'max-epochs' | 'target-loss' | 'chosen-epochs';

export interface TrainingState {
  stage: 1 | 2;
  /** Epochs completed in the current stage. */
  epoch: number;
  /** Minibatch updates in the current stage (the t of the learning-rate decay). */
  step: number;
  stoppedBy: StopReason | null;
  /** Stage 1's early-stopping state. */
  bestEpoch: number | null;
  bestStep: number | null;
  bestValidationError: number | null;
  /** The dropout loss on the training split at the best epoch: stage 2 (continue) stops when reaching it. */
  bestTrainingLoss: number | null;
  epochsSinceBest: number;
  /** Set when stage 1 ends and a stage 2 follows. */
  stage1: { epochs: number; steps: number; stoppedBy: StopReason } | null;
  history: EpochRecord[];
}

export interface StageSummary {
  epochs: number;
  steps: number;
  stoppedBy: StopReason;
}

export interface TrainingSummary {
  /** Stage 1. */
  epochs: number;
  steps: number;
  bestEpoch: number | null;
  bestValidationError: number | null;
  stoppedBy: StopReason;
  /** The stage-1 epoch whose parameters stage 1 ends with. */
  chosenEpoch: number;
  stage2: (StageSummary & { mode: 'continue' | 'retrain'; targetLoss: number | null; finalHeldOutLoss: number | null }) | null;
  /** Training-state error of the last epoch trained (stage 2's when there is one). */
  finalTrainingError: number;
  resumedFromEpoch: { stage: 1 | 2; epoch: number } | null;
  /** Seconds this invocation trained (a resumed run counts only its own part). */
  seconds: number;
  /** Seconds of training over every invocation: the sum of the epochs' times, each measured where it ran. */
  totalSeconds: number;
  history: EpochRecord[];
}

export interface TrainOptions {
  model: Classifier;
  train: Split;
  validation: Split | null;
  config: TrainingConfig;
  seed: number;
  /** x̃ of J̃ or the noise of a control (from the attacks module); null for the clean objective. */
  perturbation?: TrainingPerturbation | null;
  /** The error on FGSM examples of a split; needed when early stopping uses adversarial-validation-error. */
  adversarialError?: (model: Classifier, split: Split) => number;
  /** Where checkpoints go (and are resumed from); null: no checkpoints. */
  checkpointDir: string | null;
  progress: Progress;
  /** Called before each checkpoint is written; throws to stop without writing (e.g. the run folder's lock was lost). */
  beforeCheckpoint?: () => void;
  /** Checked after each epoch's checkpoint: stop there with InterruptedError. */
  signal?: AbortSignal;
  /** Called after each epoch, after its checkpoint is written. */
  onEpoch?: (record: EpochRecord, state: TrainingState) => void;
}

const freshState = (): TrainingState => ({
  stage: 1,
  epoch: 0,
  step: 0,
  stoppedBy: null,
  bestEpoch: null,
  bestStep: null,
  bestValidationError: null,
  bestTrainingLoss: null,
  epochsSinceBest: 0,
  stage1: null,
  history: [],
});

/** How one stage trains: on what, with which schedule values, and with which random streams. */
interface StagePlan {
  split: Split;
  learningRate: (step: number) => number;
  momentum: (epoch: number) => number;
  /** Names the stage's shuffle and dropout streams; stage 1 keeps the unprefixed names. */
  streams: (string | number)[];
  maxEpochs: number;
}

/**
 * The training loop (not model.fit), pylearn2's recipe for the maxout network (PAPER.md §2):
 * stage 1 trains on the first 50,000 with seeded reshuffling, minibatch SGD with momentum and the schedules,
 * max-norm after every update, early stopping on clean or adversarial validation error with patience, and
 * keeps the best parameters. Stage 2 (optional) either continues from them on all 60,000 with η and μ where
 * the best epoch left them until the dropout loss on the last 10,000 falls to the best epoch's training loss,
 * or retrains from scratch on all 60,000 for the chosen number of epochs. A checkpoint after every epoch holds
 * everything to continue (parameters, velocities, best parameters, stage, schedule position, early-stopping
 * state; random streams are named by seed, stage, epoch and step): an interrupted run resumes to the same result.
 */
export async function train(options: TrainOptions): Promise<TrainingSummary> {
  const { model, config, progress } = options;
  const started = Date.now();
  const optimizer = new MomentumSgd(model.parameters, config);
  const best = new Map<string, tf.Variable>(model.parameters.map((p) => [p.name, tf.variable(p.variable, false)]));
  const early = config.earlyStopping;
  const validating = early.metric !== 'none' && options.validation !== null;
  if (early.metric === 'adversarial-validation-error' && !options.adversarialError) {
    throw new Error('train: earlyStopping.metric adversarial-validation-error needs options.adversarialError');
  }
  const secondStage = validating ? config.stage2.mode : 'none';
  let all: Split | null = null;
  let state = freshState();
  let resumedFromEpoch: TrainingSummary['resumedFromEpoch'] = null;

  const restoreBest = (): void => {
    for (const p of model.parameters) p.variable.assign(best.get(p.name)!);
  };
  const planOf = (stage: 1 | 2): StagePlan => {
    if (stage === 1) {
      return {
        split: options.train,
        learningRate: (step) => learningRateAt(step, config.learningRate),
        momentum: (epoch) => momentumAt(epoch, config.momentum),
        streams: [],
        maxEpochs: config.epochs,
      };
    }
    all ??= joinSplits(options.train, options.validation!);
    const continuing = secondStage === 'continue';
    const [stepOffset, epochOffset] = continuing ? [state.bestStep!, state.bestEpoch!] : [0, 0];
    return {
      split: all,
      learningRate: (step) => learningRateAt(stepOffset + step, config.learningRate),
      momentum: (epoch) => momentumAt(epochOffset + epoch, config.momentum),
      streams: ['stage-2'],
      maxEpochs: continuing ? config.stage2.maxEpochs : state.bestEpoch!,
    };
  };

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
      resumedFromEpoch = { stage: state.stage, epoch: state.epoch };
      progress.line(`resuming from the checkpoint after stage ${state.stage} epoch ${state.epoch} (step ${state.step})`);
    }

    for (;;) {
      if (state.stoppedBy !== null) {
        if (state.stage === 2 || secondStage === 'none') break;
        // stage 1 is over: start stage 2 (deterministic from the state, so a resume may redo it)
        state.stage1 = { epochs: state.epoch, steps: state.step, stoppedBy: state.stoppedBy };
        if (secondStage === 'continue') restoreBest();
        else model.reinitialize();
        optimizer.reset();
        Object.assign(state, { stage: 2, epoch: 0, step: 0, stoppedBy: null });
        progress.line(
          secondStage === 'continue'
            ? `stage 2: continuing from epoch ${state.bestEpoch} on all ${options.train.n + options.validation!.n} examples until the held-out loss reaches ${state.bestTrainingLoss!.toFixed(5)}`
            : `stage 2: retraining from scratch on all ${options.train.n + options.validation!.n} examples for ${state.bestEpoch} epochs`,
        );
      }
      const plan = planOf(state.stage);
      const epoch = state.epoch + 1;
      const epochStarted = Date.now();
      const record = runEpoch(options, optimizer, state, plan, epoch);
      state.epoch = epoch;

      if (state.stage === 1 && validating) {
        const validation = options.validation!;
        record.validationError = errorRate(model, validation.x, validation.y);
        if (early.metric === 'adversarial-validation-error') record.adversarialValidationError = options.adversarialError!(model, validation);
        const criterion = early.metric === 'adversarial-validation-error' ? record.adversarialValidationError! : record.validationError;
        if (state.bestValidationError === null || criterion < state.bestValidationError) {
          Object.assign(state, { bestValidationError: criterion, bestEpoch: epoch, bestStep: state.step, epochsSinceBest: 0 });
          for (const p of model.parameters) best.get(p.name)!.assign(p.variable);
          if (secondStage === 'continue') {
            state.bestTrainingLoss = meanTrainingLoss(model, options.train.x, options.train.y, streamSeed(options.seed, 'training-loss', epoch));
          }
        } else {
          state.epochsSinceBest++;
        }
        if (state.epochsSinceBest >= early.patience) state.stoppedBy = 'early-stopping';
      }
      if (state.stage === 2 && secondStage === 'continue') {
        const heldOut = options.validation!;
        record.heldOutLoss = meanTrainingLoss(model, heldOut.x, heldOut.y, streamSeed(options.seed, 'held-out-loss', epoch));
        if (record.heldOutLoss <= state.bestTrainingLoss!) state.stoppedBy = 'target-loss';
      }
      if (state.stoppedBy === null && epoch >= plan.maxEpochs)
        state.stoppedBy = state.stage === 2 && secondStage === 'retrain' ? 'chosen-epochs' : 'max-epochs';
      record.seconds = (Date.now() - epochStarted) / 1000;
      state.history.push(record);

      if (options.checkpointDir) {
        options.beforeCheckpoint?.();
        const tensors: Record<string, tf.Tensor> = {};
        for (const p of model.parameters) tensors[`params/${p.name}`] = p.variable;
        for (const [name, v] of optimizer.velocities) tensors[`velocity/${name}`] = v;
        for (const [name, v] of best) tensors[`best/${name}`] = v;
        await saveCheckpoint(options.checkpointDir, state.history.length, { state, tensors });
      }
      progress.line(describeEpoch(record, state, plan.maxEpochs, early.patience));
      options.onEpoch?.(record, state);
      // the epoch ran synchronously (wasm resolves data() as microtasks): let signal handlers and timers run
      await new Promise((resolve) => setImmediate(resolve));
      if (options.signal?.aborted && !(state.stoppedBy !== null && (state.stage === 2 || secondStage === 'none')))
        throw new InterruptedError(`interrupted after stage ${state.stage} epoch ${epoch}; rerun the same command to resume`);
    }

    let chosenEpoch = state.stage1?.epochs ?? state.epoch;
    if (validating && secondStage === 'none' && early.keepBest && state.bestEpoch !== null) {
      restoreBest();
      chosenEpoch = state.bestEpoch;
    } else if (secondStage !== 'none') {
      chosenEpoch = state.bestEpoch!;
    }
    const last = state.history.at(-1)!;
    return summarise(state, state.stoppedBy!, {
      chosenEpoch,
      stage2:
        secondStage === 'none'
          ? null
          : {
              mode: secondStage,
              epochs: state.epoch,
              steps: state.step,
              stoppedBy: state.stoppedBy!,
              targetLoss: state.bestTrainingLoss,
              finalHeldOutLoss: last.heldOutLoss,
            },
      resumedFromEpoch,
      seconds: (Date.now() - started) / 1000,
    });
  } finally {
    optimizer.dispose();
    for (const v of best.values()) v.dispose();
  }
}

function runEpoch(options: TrainOptions, optimizer: MomentumSgd, state: TrainingState, plan: StagePlan, epoch: number): EpochRecord {
  const { model, config, progress } = options;
  const perturbation = options.perturbation ?? null;
  const split = plan.split;
  const order = stream(options.seed, 'shuffle', ...plan.streams, epoch).permutation(split.n);
  const batches = Math.ceil(split.n / config.batchSize);
  const momentum = plan.momentum(epoch);
  const variables = model.parameters.map((p) => p.variable);
  let lossSum = 0;
  let errors = 0;
  let learningRate = plan.learningRate(state.step);
  progress.start(batches, `stage ${state.stage} epoch ${epoch}`);
  for (let b = 0; b < batches; b++) {
    const batch = gatherBatch(split, order, b * config.batchSize, Math.min(split.n, (b + 1) * config.batchSize));
    learningRate = plan.learningRate(state.step);
    const dropoutSeed = streamSeed(options.seed, 'step', ...plan.streams, epoch, b);
    const [loss, wrong] = tf.tidy((): number[] => {
      const x = tf.tensor2d(batch.x, [batch.n, IMAGE_SIZE]);
      const y = tf.tensor1d(batch.y, 'int32');
      // x̃ is computed outside the objective's tape: a constant, no gradient flows through it
      const perturbed = perturbation ? perturbation.perturb(model, x, y, dropoutSeed) : null;
      let misclassified: tf.Scalar | null = null;
      const { value, grads } = tf.variableGrads(() => {
        const objective = minibatchObjective(model, x, y, perturbed, perturbation, dropoutSeed);
        misclassified = tf.keep(objective.misclassified);
        return objective.loss;
      }, variables);
      optimizer.apply(grads, learningRate, momentum);
      model.constrain();
      const counts = [value.dataSync()[0]!, misclassified!.dataSync()[0]!];
      misclassified!.dispose(); // kept out of variableGrads' own scope
      return counts;
    }) as [number, number];
    if (!Number.isFinite(loss)) {
      throw new FgsmError(
        `training diverged: the loss is ${loss} at stage ${state.stage} epoch ${epoch}, step ${state.step + 1} (minibatch ${b + 1} of ${batches})`,
        'lower training.learningRate.initial; the last good checkpoint is kept',
      );
    }
    state.step++;
    lossSum += loss * batch.n;
    errors += wrong;
    if (b % 20 === 0 || b === batches - 1) progress.update(b + 1, `loss ${(lossSum / Math.min(split.n, (b + 1) * config.batchSize)).toFixed(4)}`);
  }
  progress.stop();
  return {
    stage: state.stage,
    epoch,
    learningRate,
    momentum,
    trainLoss: lossSum / split.n,
    trainError: errors / split.n,
    validationError: null,
    adversarialValidationError: null,
    heldOutLoss: null,
    seconds: 0,
  };
}

const percent = (value: number): string => `${(100 * value).toFixed(2)}%`;

function describeDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function describeEpoch(record: EpochRecord, state: TrainingState, maxEpochs: number, patience: number): string {
  const parts = [
    `stage ${record.stage} epoch ${record.epoch}/${maxEpochs}`,
    `loss ${record.trainLoss.toFixed(4)}`,
    `train error ${percent(record.trainError)}`,
  ];
  if (record.validationError !== null) parts.push(`validation error ${percent(record.validationError)}`);
  if (record.adversarialValidationError !== null) parts.push(`adversarial validation error ${percent(record.adversarialValidationError)}`);
  if (record.stage === 1 && state.bestEpoch !== null) parts.push(`best ${percent(state.bestValidationError!)} @ ${state.bestEpoch}`);
  if (record.heldOutLoss !== null) parts.push(`held-out loss ${record.heldOutLoss.toFixed(5)} → ${state.bestTrainingLoss!.toFixed(5)}`);
  parts.push(`η ${record.learningRate.toPrecision(3)}`, `μ ${record.momentum.toFixed(3)}`, `${record.seconds.toFixed(1)} s`);
  if (state.stoppedBy) parts.push(`→ stop (${state.stoppedBy})`);
  else {
    // early stopping can end stage 1 sooner than maxEpochs: the ETA assumes no new best from here
    const remaining =
      record.stage === 1 && state.bestEpoch !== null ? Math.min(maxEpochs, state.bestEpoch + patience) - record.epoch : maxEpochs - record.epoch;
    if (record.stage === 1 || state.stage1 === null || record.heldOutLoss === null) parts.push(`ETA ${describeDuration(remaining * record.seconds)}`);
  }
  return parts.join(' | ');
}

/**
 * A look at an unfinished run: loads its last checkpoint into `model` (stage 1: the best parameters so far, when
 * early stopping keeps them; stage 2: the current ones) and summarises the training so far. Null without one.
 */
export function trainingSoFar(model: Classifier, checkpointDir: string, config: TrainingConfig): TrainingSummary | null {
  const checkpoint = loadCheckpoint<TrainingState>(checkpointDir);
  if (!checkpoint) return null;
  const { state, tensors } = checkpoint;
  const useBest = state.stage === 1 && state.bestEpoch !== null && config.earlyStopping.keepBest;
  assignParameters(
    model,
    Object.fromEntries(model.parameters.map((p) => [p.name, tensors[`${useBest ? 'best' : 'params'}/${p.name}`]!])),
    'checkpoint',
  );
  tf.dispose(Object.values(tensors));
  return summarise(state, state.stoppedBy ?? 'max-epochs', {
    chosenEpoch: useBest ? state.bestEpoch! : state.epoch,
    stage2: null,
    resumedFromEpoch: null,
    seconds: 0, // a look at a checkpoint trains nothing; totalSeconds has the run's training time
  });
}

/** The summary of a training state; stage 1's figures are the current ones while stage 1 is still running. */
function summarise(
  state: TrainingState,
  stage1StoppedBy: NonNullable<TrainingState['stoppedBy']>,
  rest: Pick<TrainingSummary, 'chosenEpoch' | 'stage2' | 'resumedFromEpoch' | 'seconds'>,
): TrainingSummary {
  const stage1 = state.stage1 ?? { epochs: state.epoch, steps: state.step, stoppedBy: stage1StoppedBy };
  return {
    ...stage1,
    bestEpoch: state.bestEpoch,
    bestValidationError: state.bestValidationError,
    finalTrainingError: state.history.at(-1)!.trainError,
    totalSeconds: state.history.reduce((sum, r) => sum + r.seconds, 0),
    history: state.history,
    ...rest,
  };
}

/**
 * Minibatches per epoch in the stage a checkpoint stopped in, or null before its first epoch: how the data of a
 * run begun before runs recorded their data identity can still be checked on resume.
 */
export function checkpointStepsPerEpoch(checkpointDir: string): { stage: 1 | 2; steps: number } | null {
  const state = readCheckpointState<TrainingState>(checkpointDir);
  return state && state.epoch > 0 ? { stage: state.stage, steps: state.step / state.epoch } : null;
}
