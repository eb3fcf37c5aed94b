import type { TrainingConfig } from '../config/schema.js';
import { streamSeed } from '../core/rng.js';
import { joinSplits, type Split } from '../data/dataset.js';
import type { Classifier } from '../models/classifier.js';
import { errorRate, meanTrainingLoss } from '../models/inference.js';
import { MonitorBased, type SaveBest } from './early-stopping.js';
import { ExponentialDecay, MomentumAdjustor } from './schedule.js';
import type { MomentumSgd } from './sgd.js';
import type { EpochRecord, StopReason, TrainingState } from './state.js';

/** One stage of the recipe: what it trains on, its schedules and random streams, and when it stops. */
export interface Stage {
  readonly split: Split;
  readonly learningRate: ExponentialDecay;
  readonly momentum: MomentumAdjustor;
  /** Names the stage's shuffle and dropout streams; stage 1 keeps the unprefixed names. */
  readonly streams: readonly string[];
  readonly maxEpochs: number;
  /** Monitors the epoch `state` has just completed (into `record` and `state`); why the stage stops there, or null. */
  stopAfter(record: EpochRecord, state: TrainingState): Promise<StopReason | null>;
}

export interface RecipeContext {
  model: Classifier;
  train: Split;
  validation: Split | null;
  config: TrainingConfig;
  seed: number;
  adversarialError?: (model: Classifier, split: Split) => Promise<number>;
  best: SaveBest;
  optimizer: MomentumSgd;
}

/**
 * pylearn2's recipe for the maxout network (docs/paper.md §2) as stages. Stage 1 trains on the first 50,000 with early
 * stopping on clean or adversarial validation error and keeps the best parameters. Stage 2 (optional) either
 * continues from them on all 60,000 with η and μ where the best epoch left them until the dropout loss on the
 * last 10,000 falls to the best epoch's training loss, or retrains from scratch on all 60,000 for the chosen
 * number of epochs. Stages are built from the training state, so a resumed run rebuilds the one it was in.
 */
export class Recipe {
  readonly validating: boolean;
  readonly secondStage: TrainingConfig['stage2']['mode'];
  private all: Split | null = null;

  constructor(private readonly context: RecipeContext) {
    const early = context.config.earlyStopping;
    this.validating = early.metric !== 'none' && context.validation !== null;
    if (early.metric === 'adversarial-validation-error' && !context.adversarialError) {
      throw new Error('train: earlyStopping.metric adversarial-validation-error needs options.adversarialError');
    }
    this.secondStage = this.validating ? context.config.stage2.mode : 'none';
  }

  /** Whether `state` is the end of training: its stage stopped and no stage follows. */
  finished(state: TrainingState): boolean {
    return state.stoppedBy !== null && (state.stage === 2 || this.secondStage === 'none');
  }

  /** The stage `state` is in. */
  stage(state: TrainingState): Stage {
    return state.stage === 1 ? this.selection() : this.secondStage === 'continue' ? this.continuation(state) : this.retraining(state);
  }

  /**
   * Ends stage 1 in `state` and sets up stage 2: the parameters it starts from, fresh velocities, its counters.
   * Deterministic from the state, so a run resumed as stage 1 ended may redo it. Returns a line describing it.
   */
  enterStage2(state: TrainingState): string {
    const { model, optimizer, best, train, validation } = this.context;
    state.stage1 = { epochs: state.epoch, steps: state.step, stoppedBy: state.stoppedBy! };
    if (this.secondStage === 'continue') best.restore();
    else model.reinitialize();
    optimizer.reset();
    Object.assign(state, { stage: 2, epoch: 0, step: 0, stoppedBy: null });
    const n = train.n + validation!.n;
    return this.secondStage === 'continue'
      ? `stage 2: continuing from epoch ${state.bestEpoch} on all ${n} examples until the held-out loss reaches ${state.bestTrainingLoss!.toFixed(5)}`
      : `stage 2: retraining from scratch on all ${n} examples for ${state.bestEpoch} epochs`;
  }

  private selection(): Stage {
    const { model, train, validation, config, seed, adversarialError, best } = this.context;
    const metric = config.earlyStopping.metric;
    const monitor = this.validating ? new MonitorBased(config.earlyStopping.patience) : null;
    const continuing = this.secondStage === 'continue';
    return {
      split: train,
      learningRate: new ExponentialDecay(config.learningRate),
      momentum: new MomentumAdjustor(config.momentum),
      streams: [],
      maxEpochs: config.epochs,
      stopAfter: async (record, state) => {
        if (monitor) {
          record.validationError = await errorRate(model, validation!.x, validation!.y);
          if (metric === 'adversarial-validation-error') record.adversarialValidationError = await adversarialError!(model, validation!);
          if (monitor.observe(state, record.adversarialValidationError ?? record.validationError)) {
            best.save();
            // stage 2 (continue) stops when the held-out loss reaches the training loss of the best epoch
            if (continuing) state.bestTrainingLoss = await meanTrainingLoss(model, train.x, train.y, streamSeed(seed, 'training-loss', state.epoch));
          }
          if (monitor.exhausted(state)) return 'early-stopping';
        }
        return state.epoch >= config.epochs ? 'max-epochs' : null;
      },
    };
  }

  private continuation(state: TrainingState): Stage {
    const { model, validation, config, seed } = this.context;
    return {
      split: this.allExamples(),
      learningRate: new ExponentialDecay(config.learningRate, state.bestStep!),
      momentum: new MomentumAdjustor(config.momentum, state.bestEpoch!),
      streams: ['stage-2'],
      maxEpochs: config.stage2.maxEpochs,
      stopAfter: async (record, state) => {
        record.heldOutLoss = await meanTrainingLoss(model, validation!.x, validation!.y, streamSeed(seed, 'held-out-loss', state.epoch));
        if (record.heldOutLoss <= state.bestTrainingLoss!) return 'target-loss';
        return state.epoch >= config.stage2.maxEpochs ? 'max-epochs' : null;
      },
    };
  }

  private retraining(state: TrainingState): Stage {
    const { config } = this.context;
    const chosen = state.bestEpoch!;
    return {
      split: this.allExamples(),
      learningRate: new ExponentialDecay(config.learningRate),
      momentum: new MomentumAdjustor(config.momentum),
      streams: ['stage-2'],
      maxEpochs: chosen,
      stopAfter: async (_record, state) => (state.epoch >= chosen ? 'chosen-epochs' : null),
    };
  }

  /** Train and validation joined, made once: stage 2 trains on it every epoch. */
  private allExamples(): Split {
    this.all ??= joinSplits(this.context.train, this.context.validation!);
    return this.all;
  }
}
