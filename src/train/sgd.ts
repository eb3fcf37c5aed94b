import * as tf from '@tensorflow/tfjs';
import type { Parameter } from '../models/classifier.js';

/**
 * Minibatch SGD with classical momentum as pylearn2 does it: v ← μ·v − η·g; θ ← θ + v, with an optional
 * L2 weight decay λ·θ added to the gradient of weights (not biases).
 */
export class MomentumSgd {
  readonly velocities: Map<string, tf.Variable>;

  constructor(
    private readonly parameters: readonly Parameter[],
    private readonly weightDecay: number,
  ) {
    // tidy disposes the zero tensors; the variables (which copy them) survive it
    this.velocities = new Map(parameters.map((p) => [p.name, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false))]));
  }

  /** Applies one update from `gradients` (keyed by variable name, as tf.variableGrads returns them). */
  apply(gradients: Record<string, tf.Tensor>, learningRate: number, momentum: number): void {
    tf.tidy(() => {
      for (const p of this.parameters) {
        let g = gradients[p.variable.name];
        if (!g) throw new Error(`no gradient for parameter ${p.name}`);
        if (this.weightDecay > 0 && p.role === 'weight') g = tf.add(g, tf.mul(this.weightDecay, p.variable));
        const v = this.velocities.get(p.name)!;
        v.assign(tf.sub(tf.mul(momentum, v), tf.mul(learningRate, g)));
        p.variable.assign(tf.add(p.variable, v));
      }
    });
  }

  dispose(): void {
    for (const v of this.velocities.values()) v.dispose();
  }
}
