import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../models/classifier.js';
import type { TrainingState } from './state.js';

/**
 * pylearn2's MonitorBased termination criterion: stop after `patience` epochs without a new lowest value of the
 * monitored criterion. Its memory lives in the training state (best epoch, step and value, epochs since), so a
 * checkpoint carries it.
 */
export class MonitorBased {
  constructor(private readonly patience: number) {}

  /** Records the criterion of `state`'s current epoch; true when it is a new best. */
  observe(state: TrainingState, criterion: number): boolean {
    if (state.bestValidationError === null || criterion < state.bestValidationError) {
      Object.assign(state, { bestValidationError: criterion, bestEpoch: state.epoch, bestStep: state.step, epochsSinceBest: 0 });
      return true;
    }
    state.epochsSinceBest++;
    return false;
  }

  exhausted(state: TrainingState): boolean {
    return state.epochsSinceBest >= this.patience;
  }
}

/** pylearn2's MonitorBasedSaveBest: a copy of the parameters as they were at the best epoch. */
export class SaveBest {
  /** Keyed by parameter name. */
  readonly copies: Map<string, tf.Variable>;

  constructor(private readonly model: Classifier) {
    this.copies = new Map(model.parameters.map((p) => [p.name, tf.variable(p.variable, false)]));
  }

  save(): void {
    for (const p of this.model.parameters) this.copies.get(p.name)!.assign(p.variable);
  }

  restore(): void {
    for (const p of this.model.parameters) p.variable.assign(this.copies.get(p.name)!);
  }

  dispose(): void {
    for (const v of this.copies.values()) v.dispose();
  }
}
