import * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '../models/classifier.js';
import { exactSign, momentumVelocities } from '../backend/kernels.js';

export interface Penalties {
  /** L2: λ·θ added to the gradient of every weight (not biases). */
  weightDecay: number;
  /** L1 on the first layer's weights (§5): λ·sign(θ) added to their gradient, pylearn2's L1WeightDecay. */
  l1FirstLayer: number;
}

/**
 * Minibatch SGD with classical momentum as pylearn2 does it: v ← μ·v − η·g; θ ← θ + v, with the penalties'
 * gradients added to g.
 */
export class MomentumSgd {
  readonly velocities: Map<string, tf.Variable>;

  constructor(
    private readonly parameters: readonly Parameter[],
    private readonly penalties: Penalties,
  ) {
    // tidy disposes the zero tensors; the variables (which copy them) survive it
    this.velocities = new Map(parameters.map((p) => [p.name, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false))]));
  }

  /**
   * Applies one update from `gradients` (keyed by variable name, as tf.variableGrads returns them). For stacked
   * seeds the learning rate and momentum are one per seed, shaped [seeds, 1, 1] to broadcast over each parameter.
   */
  apply(gradients: Record<string, tf.Tensor>, learningRate: number | tf.Tensor, momentum: number | tf.Tensor): void {
    const { weightDecay, l1FirstLayer } = this.penalties;
    tf.tidy(() => {
      const pairs = this.parameters.map((p) => {
        let g = gradients[p.variable.name];
        if (!g) throw new Error(`no gradient for parameter ${p.name}`);
        if (weightDecay > 0 && p.role === 'weight') g = tf.add(g, tf.mul(weightDecay, p.variable));
        if (l1FirstLayer > 0 && p.role === 'weight' && p.layer === 1) g = tf.add(g, tf.mul(l1FirstLayer, exactSign(p.variable)));
        return { v: this.velocities.get(p.name)!, g };
      });
      momentumVelocities(pairs, momentum, learningRate).forEach((velocity, i) => {
        const p = this.parameters[i]!;
        pairs[i]!.v.assign(velocity);
        p.variable.assign(tf.add(p.variable, velocity));
      });
    });
  }

  /** Zero velocities: a new optimiser on the same parameters (a training stage starts afresh). */
  reset(): void {
    tf.tidy(() => {
      for (const v of this.velocities.values()) v.assign(tf.zerosLike(v));
    });
  }

  dispose(): void {
    for (const v of this.velocities.values()) v.dispose();
  }
}
