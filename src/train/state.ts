/** What the training loop records per epoch and checkpoints: the state an interrupted run resumes from. */

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

/** The loop state a checkpoint holds (fgsm-checkpoint/1): renaming a field breaks resuming the checkpoints of runs in progress. */
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

/** The state of a run before its first epoch. */
export const freshState = (): TrainingState => ({
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
