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
