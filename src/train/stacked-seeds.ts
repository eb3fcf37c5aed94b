import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../models/classifier.js';
import { MomentumSgd, type Penalties } from './sgd.js';

/** A seed's network (one lane) and the velocities of its optimiser: where its training state lives between epochs. */
interface SeedNetwork {
  options: { model: Classifier };
  optimizer: MomentumSgd;
}

/**
 * The stacked network several seeds train through (DESIGN.md, "Stacked seeds"), with one optimiser over its
 * stacked parameters. Between epochs each seed's parameters and velocities live in its own network, where its
 * stages, early stopping and checkpoints see them as if it trained alone: `load` stacks them before an epoch,
 * `store` takes one seed's back out once its epoch's minibatches are done.
 */
export class StackedSeeds {
  readonly optimizer: MomentumSgd;

  /** `model`: one lane per entry of `lanes`, in order; disposed with the stack. */
  constructor(
    readonly model: Classifier,
    readonly lanes: readonly SeedNetwork[],
    penalties: Penalties,
  ) {
    this.optimizer = new MomentumSgd(model.parameters, penalties);
  }

  /** Every lane's parameters and velocities into the stack. */
  load(): void {
    tf.tidy(() => {
      for (const p of this.model.parameters) {
        const byName = (seed: SeedNetwork) => seed.options.model.parameters.find((q) => q.name === p.name)!.variable;
        p.variable.assign(tf.reshape(tf.stack(this.lanes.map(byName)), p.variable.shape));
        this.optimizer.velocities
          .get(p.name)!
          .assign(tf.reshape(tf.stack(this.lanes.map((seed) => seed.optimizer.velocities.get(p.name)!)), p.variable.shape));
      }
    });
  }

  /** Seed `lane`'s parameters and velocities out of the stack. */
  store(lane: number): void {
    const seed = this.lanes[lane]!;
    tf.tidy(() => {
      for (const p of this.model.parameters) {
        const own = seed.options.model.parameters.find((q) => q.name === p.name)!.variable;
        const slice = (t: tf.Tensor) => tf.reshape(tf.slice(t, [lane], [1]), own.shape);
        own.assign(slice(p.variable));
        seed.optimizer.velocities.get(p.name)!.assign(slice(this.optimizer.velocities.get(p.name)!));
      }
    });
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}
