import * as tf from '@tensorflow/tfjs-core';
import type { TrainingConfig } from '../config/schema.js';
import { InterruptedError } from '../core/errors.js';
import { yieldToEventLoop } from '../core/event-loop.js';
import { describeEta, epochPace, type Progress, type TrainingPosition } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import type { Classifier } from '../models/classifier.js';
import { assignParameters } from '../models/weights-io.js';
import { loadCheckpoint, readCheckpointState, saveCheckpoint } from './checkpoint.js';
import { SaveBest } from './early-stopping.js';
import { trainEpoch, type EpochContext, type EpochEngine } from './epoch.js';
import { StackedSeeds } from './stacked-seeds.js';
import type { TrainingPerturbation } from './objective.js';
import { MomentumSgd } from './sgd.js';
import { Recipe } from './stages.js';
import { freshState, type EpochRecord, type StopReason, type TrainingState } from './state.js';

export type { EpochRecord, StopReason, TrainingState };

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
  /**
   * Present when this invocation trained the seed stacked with others (trainStacked): every seed of the stack, this
   * one among them. Its epochs' seconds are then the stack's, shared by all of its seeds.
   */
  stackedWith?: number[];
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
  adversarialError?: (model: Classifier, split: Split) => Promise<number>;
  /** Where checkpoints go (and are resumed from); null: no checkpoints. */
  checkpointDir: string | null;
  progress: Progress;
  /** Called before each checkpoint is written; throws to stop without writing (e.g. the run folder's lock was lost). */
  beforeCheckpoint?: () => void;
  /**
   * Once aborted, training stops with InterruptedError: within a few minibatches (the unfinished epoch is
   * discarded), or after the checkpoints of an epoch whose training had ended.
   */
  signal?: AbortSignal;
  /** Called after each epoch, after its checkpoint is written. */
  onEpoch?: (record: EpochRecord, state: TrainingState) => void;
  /** What trains each epoch's minibatches: tfjs's ops (trainEpoch) unless given. */
  engine?: EpochEngine | null;
}

/**
 * The training loop (not model.fit): the stages of pylearn2's recipe (stages.ts) trained epoch by epoch, with
 * seeded reshuffling, minibatch SGD with momentum and the schedules, max-norm after every update. A checkpoint
 * after every epoch holds everything to continue (parameters, velocities, best parameters, stage, schedule
 * position, early-stopping state; random streams are named by seed, stage, epoch and step): an interrupted run
 * resumes to the same result.
 */
export async function train(options: TrainOptions): Promise<TrainingSummary> {
  return (await trainStacked([options], null))[0]!;
}

/** One seed's training: its options, optimiser, best parameters, recipe and loop state. */
interface Lane {
  options: TrainOptions;
  optimizer: MomentumSgd;
  best: SaveBest;
  recipe: Recipe;
  state: TrainingState;
  resumedFromEpoch: TrainingSummary['resumedFromEpoch'];
}

function openLane(options: TrainOptions): Lane {
  const optimizer = new MomentumSgd(options.model.parameters, options.config);
  const best = new SaveBest(options.model);
  const lane: Lane = { options, optimizer, best, recipe: new Recipe({ ...options, best, optimizer }), state: freshState(), resumedFromEpoch: null };
  const checkpoint = options.checkpointDir ? loadCheckpoint<TrainingState>(options.checkpointDir) : null;
  if (checkpoint) {
    const { params, velocity, best: bestSoFar } = checkpoint.tensors;
    assignParameters(options.model, params, 'checkpoint');
    for (const [name, v] of optimizer.velocities) v.assign(velocity[name]!);
    for (const [name, v] of best.copies) v.assign(bestSoFar[name]!);
    tf.dispose([params, velocity, bestSoFar].flatMap(Object.values));
    lane.state = checkpoint.state;
    lane.resumedFromEpoch = { stage: lane.state.stage, epoch: lane.state.epoch };
    for (const damaged of checkpoint.passedOver)
      options.progress.line(`${damaged.path} is damaged (${damaged.why}); resuming from the checkpoint before it, ${checkpoint.path}`);
    options.progress.line(`resuming from the checkpoint after stage ${lane.state.stage} epoch ${lane.state.epoch} (step ${lane.state.step})`);
  }
  return lane;
}

/**
 * Several seeds of one experiment trained together through one network with a lane per seed, made by `stackOf`
 * (see MaxoutNetwork), where the backend gains from fewer, larger dispatches. Each entry of `seeds` is that
 * seed's training as `train` would run it alone (its model a network of one lane, which holds the seed's
 * parameters between epochs: its stages, early stopping and checkpoint work on it), and gets the same numbers
 * within float rounding. The stack holds the seeds still training: when one ends, the others go on in a stack
 * without it (the last one alone, on its own network). One summary per seed. With `stackOf` null, one seed
 * trains on its own network (`train`).
 */
export async function trainStacked(
  seeds: readonly TrainOptions[],
  stackOf: ((seeds: readonly number[]) => Classifier) | null,
): Promise<TrainingSummary[]> {
  const started = Date.now();
  const lanes: Lane[] = [];
  let stack: StackedSeeds | null = null;
  try {
    for (const options of seeds) lanes.push(openLane(options));
    const { config, perturbation = null, progress } = lanes[0]!.options;
    for (;;) {
      const training = lanes.filter((lane) => !lane.recipe.finished(lane.state));
      if (training.length === 0) break;
      for (const lane of training) if (lane.state.stoppedBy !== null) lane.options.progress.line(lane.recipe.enterStage2(lane.state));
      if (stack && stack.lanes.length !== training.length) {
        stack.dispose();
        stack = null;
      }
      if (stackOf && training.length > 1) {
        stack ??= new StackedSeeds(stackOf(training.map((lane) => lane.options.seed)), training, config);
        stack.load();
      }
      const own = training[0]!;
      const signals = training.flatMap((lane) => (lane.options.signal ? [lane.options.signal] : []));
      const context: EpochContext = {
        model: stack?.model ?? own.options.model,
        config,
        perturbation,
        optimizer: stack?.optimizer ?? own.optimizer,
        progress,
        laneDone: stack ? (lane) => stack!.store(lane) : undefined,
        signal: signals.length ? AbortSignal.any(signals) : undefined,
      };
      await epoch(context, training, lanes.length > 1);
    }
    const stackedWith = stackOf && lanes.length > 1 ? lanes.map((lane) => lane.options.seed) : undefined;
    return lanes.map((lane) => summariseLane(lane, (Date.now() - started) / 1000, stackedWith));
  } finally {
    stack?.dispose();
    for (const lane of lanes) {
      lane.optimizer.dispose();
      lane.best.dispose();
    }
  }
}

/** The summary of a lane whose training has ended, its model left with the parameters the recipe keeps. */
function summariseLane(lane: Lane, seconds: number, stackedWith: number[] | undefined): TrainingSummary {
  const { recipe, state, best, options } = lane;
  let chosenEpoch = state.stage1?.epochs ?? state.epoch;
  if (recipe.validating && recipe.secondStage === 'none' && options.config.earlyStopping.keepBest && state.bestEpoch !== null) {
    best.restore();
    chosenEpoch = state.bestEpoch;
  } else if (recipe.secondStage !== 'none') {
    chosenEpoch = state.bestEpoch!;
  }
  const last = state.history.at(-1)!;
  return summarise(state, state.stoppedBy!, {
    chosenEpoch,
    stage2:
      recipe.secondStage === 'none'
        ? null
        : {
            mode: recipe.secondStage,
            epochs: state.epoch,
            steps: state.step,
            stoppedBy: state.stoppedBy!,
            targetLoss: state.bestTrainingLoss,
            finalHeldOutLoss: last.heldOutLoss,
          },
    resumedFromEpoch: lane.resumedFromEpoch,
    seconds,
    ...(stackedWith ? { stackedWith } : {}),
  });
}

/**
 * One epoch of each lane in `lanes` (the seeds still training): train it, let each lane's stage monitor it and
 * decide on stopping, checkpoint, report; stops here when interrupted. `seeds`: lines name the seed.
 */
async function epoch(context: EpochContext, lanes: readonly Lane[], seeds: boolean): Promise<void> {
  const stages = lanes.map((lane) => lane.recipe.stage(lane.state));
  const started = Date.now();
  const engine = lanes[0]!.options.engine;
  const records = await (engine ? engine.trainEpoch.bind(engine) : trainEpoch)(
    context,
    lanes.map((lane, i) => ({ seed: lane.options.seed, stage: stages[i]!, state: lane.state })),
  );
  if (records === null) throw interruption(lanes, seeds, 'during');
  const trained = Date.now() - started;
  for (const [i, lane] of lanes.entries()) {
    const { options, state, optimizer, best } = lane;
    const record = records[i]!;
    const monitored = Date.now();
    state.epoch = record.epoch;
    state.stoppedBy = await stages[i]!.stopAfter(record, state);
    record.seconds = (trained + Date.now() - monitored) / 1000;
    state.history.push(record);
    if (options.checkpointDir) {
      options.beforeCheckpoint?.();
      const params = Object.fromEntries(options.model.parameters.map((p) => [p.name, p.variable]));
      const tensors = { params, velocity: Object.fromEntries(optimizer.velocities), best: Object.fromEntries(best.copies) };
      await saveCheckpoint(options.checkpointDir, state.history.length, { state, tensors });
    }
    options.progress.line(describeEpoch(record, state, stages[i]!.maxEpochs, options));
    options.onEpoch?.(record, state);
  }
  await yieldToEventLoop(); // a signal that came while the epoch was monitored and checkpointed
  const unfinished = lanes.filter((lane) => !lane.recipe.finished(lane.state));
  if (lanes.some((lane) => lane.options.signal?.aborted) && unfinished.length > 0) throw interruption(unfinished, seeds, 'after');
}

/**
 * What an interruption keeps: `after` an epoch, every epoch so far; `during` one, every finished epoch (the
 * unfinished one is discarded, its minibatches trained again on resume).
 */
function interruption(lanes: readonly Lane[], seeds: boolean, when: 'during' | 'after'): InterruptedError {
  const name = (lane: Lane) => (seeds ? `seed ${lane.options.seed} ` : '');
  if (when === 'after') {
    const where = lanes.map((lane) => `${name(lane)}stage ${lane.state.stage} epoch ${lane.state.epoch}`);
    return new InterruptedError(`interrupted after ${where.join(', ')}; rerun the same command to resume`);
  }
  const where = lanes.map((lane) => {
    const last = lane.state.history.at(-1);
    const kept = last ? ` (kept: up to stage ${last.stage} epoch ${last.epoch})` : '';
    return `${name(lane)}stage ${lane.state.stage} epoch ${lane.state.epoch + 1}${kept}`;
  });
  const kept = lanes.some((lane) => lane.state.history.length > 0)
    ? 'the unfinished epoch is discarded, every finished one is in the checkpoint'
    : 'no epoch had finished, so nothing is kept';
  return new InterruptedError(`interrupted during ${where.join(', ')}; ${kept}; rerun the same command to resume`);
}

const percent = (value: number): string => `${(100 * value).toFixed(2)}%`;

/**
 * Stage 2's length as a share of stage 1's best epoch, where it stops on a target loss (continue): 0.30–0.43 in
 * the committed maxout and maxout-adv runs (85 after 286, 90 after 264, 72 after 168).
 */
const CONTINUE_SHARE_OF_STAGE1 = 0.4;

/** What the ETA of the epoch just finished is made of (describeEta says it). */
function positionAfter(record: EpochRecord, state: TrainingState, maxEpochs: number, options: TrainOptions): TrainingPosition {
  const { stage2, earlyStopping } = options.config;
  const stopsEarly = record.stage === 1 && state.bestEpoch !== null;
  const chosen = state.bestEpoch ?? record.epoch;
  const pace = epochPace(state.history.filter((r) => r.stage === record.stage).map((r) => r.seconds));
  const stage2Epoch = (pace * (options.train.n + (options.validation?.n ?? 0))) / options.train.n;
  return {
    stage: record.stage,
    epoch: record.epoch,
    epochSeconds: pace,
    earliestEnd: stopsEarly ? Math.min(maxEpochs, state.bestEpoch! + earlyStopping.patience) : maxEpochs,
    latestEnd: maxEpochs,
    stopsOnTarget: record.stage === 2 && stage2.mode === 'continue',
    stage2:
      record.stage === 2 || stage2.mode === 'none'
        ? null
        : stage2.mode === 'retrain'
          ? { epochs: chosen, maxEpochs, estimated: false, secondsPerEpoch: stage2Epoch }
          : { epochs: Math.round(CONTINUE_SHARE_OF_STAGE1 * chosen), maxEpochs: stage2.maxEpochs, estimated: true, secondsPerEpoch: stage2Epoch },
  };
}

function describeEpoch(record: EpochRecord, state: TrainingState, maxEpochs: number, options: TrainOptions): string {
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
  parts.push(state.stoppedBy ? `→ stop (${state.stoppedBy})` : describeEta(positionAfter(record, state, maxEpochs, options)));
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
  assignParameters(model, useBest ? tensors.best : tensors.params, 'checkpoint');
  tf.dispose([tensors.params, tensors.velocity, tensors.best].flatMap(Object.values));
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
  rest: Pick<TrainingSummary, 'chosenEpoch' | 'stage2' | 'resumedFromEpoch' | 'seconds' | 'stackedWith'>,
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
