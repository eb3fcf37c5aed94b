import type { TrainingConfig } from '../config/schema.js';

/** η_t = initial / decay^t after t minibatch updates, never below the floor (pylearn2's ExponentialDecay). */
export function learningRateAt(step: number, schedule: TrainingConfig['learningRate']): number {
  return Math.max(schedule.floor, schedule.initial / Math.pow(schedule.decay, step));
}

/** μ during (1-based) `epoch`: linear from initial at startEpoch to final at endEpoch (pylearn2's MomentumAdjustor). */
export function momentumAt(epoch: number, schedule: TrainingConfig['momentum']): number {
  if (epoch <= schedule.startEpoch) return schedule.initial;
  if (epoch >= schedule.endEpoch) return schedule.final;
  const progress = (epoch - schedule.startEpoch) / (schedule.endEpoch - schedule.startEpoch);
  return schedule.initial + (schedule.final - schedule.initial) * progress;
}

/** pylearn2's ExponentialDecay as a stage uses it: `offset` updates already behind it (stage 2 continue picks up where the best epoch left η). */
export class ExponentialDecay {
  constructor(
    private readonly schedule: TrainingConfig['learningRate'],
    private readonly offset = 0,
  ) {}

  /** η after the stage's `step`-th update. */
  at(step: number): number {
    return learningRateAt(this.offset + step, this.schedule);
  }
}

/** pylearn2's MomentumAdjustor as a stage uses it: `offset` epochs already behind it (stage 2 continue picks up where the best epoch left μ). */
export class MomentumAdjustor {
  constructor(
    private readonly schedule: TrainingConfig['momentum'],
    private readonly offset = 0,
  ) {}

  /** μ during the stage's (1-based) `epoch`. */
  at(epoch: number): number {
    return momentumAt(this.offset + epoch, this.schedule);
  }
}
