import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../models/classifier.js';

/**
 * What a minibatch is trained on besides (or instead of) the clean x: the adversarial x̃ of §6's objective J̃,
 * or a noisy x for the noise controls. The attacks module supplies it; training only mixes the losses.
 */
export interface TrainingPerturbation {
  /**
   * x̃ for this minibatch, from the current parameters. `dropoutSeeds` are the seeds of the clean term's dropout
   * masks, one per stacked network (see MaxoutNetwork), whose rows of x are grouped in that order (some
   * perturbations take ∇ₓJ through those masks). No gradient flows through x̃.
   */
  perturb(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D, dropoutSeeds: readonly number[]): tf.Tensor2D;
  /** replace: J(x̃); alpha-mix: α·J(x) + (1 − α)·J(x̃). */
  mixing: 'replace' | 'alpha-mix';
  alpha: number;
}

export interface MinibatchObjective {
  /** The scalar the parameters descend: the sum of the networks' objectives (one network: its objective). */
  loss: tf.Scalar;
  /** Each stacked network's objective on its own rows, [networks]. */
  networkLosses: tf.Tensor1D;
  /** Per network, the examples the training-state network misclassifies: of x (alpha-mix, or no perturbation), else of x̃. */
  misclassified: tf.Tensor1D;
}

/**
 * The training objective on one minibatch in the training state (dropout masks from `dropoutSeeds`, one per
 * stacked network; the rows of x grouped by network), for tf.variableGrads. With alpha-mix, x and x̃ go through
 * the network as one batch [x; x̃] per network: the clean rows get the masks a pass over x alone would (masks are
 * drawn row by row), and one pass costs less than two. Each network's gradient is that of its own objective
 * (the networks share no parameter), as if it were trained alone.
 */
export function minibatchObjective(
  model: Classifier,
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  perturbed: tf.Tensor2D | null,
  perturbation: Pick<TrainingPerturbation, 'mixing' | 'alpha'> | null,
  dropoutSeeds: readonly number[],
): MinibatchObjective {
  const networks = dropoutSeeds.length;
  const state = { dropoutSeed: dropoutSeeds, gradients: 'parameters' } as const;
  const perNetwork = <T extends tf.Tensor>(t: T): tf.Tensor => tf.reshape(t, [networks, -1, ...t.shape.slice(1)]);
  const wrong = (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D =>
    tf.sum(perNetwork(tf.cast(tf.notEqual(tf.argMax(model.probabilities(logits), 1), labels), 'float32')), 1);
  const objective = (networkLosses: tf.Tensor1D, misclassified: tf.Tensor1D): MinibatchObjective => ({
    loss: tf.sum(networkLosses),
    networkLosses,
    misclassified,
  });
  if (!perturbed || !perturbation || perturbation.mixing === 'replace') {
    const inputs = perturbed ?? x;
    const logits = model.logits(inputs, state);
    return objective(tf.mean(perNetwork(model.loss(logits, y)), 1), wrong(logits, y));
  }
  // [x; x̃] for each network: its rows of x, then its rows of x̃
  const joined = <T extends tf.Tensor>(a: T, b: T): T => tf.reshape(tf.concat([perNetwork(a), perNetwork(b)], 1), [-1, ...a.shape.slice(1)]) as T;
  const n = x.shape[0] / networks;
  const logits = model.logits(joined(x, perturbed), state);
  const [clean, adversarial] = tf.split(perNetwork(model.loss(logits, joined(y, y))), [n, n], 1);
  const networkLosses = tf.add(tf.mul(perturbation.alpha, tf.mean(clean!, 1)), tf.mul(1 - perturbation.alpha, tf.mean(adversarial!, 1)));
  const cleanLogits = tf.reshape(tf.slice(perNetwork(logits), [0, 0, 0], [-1, n, -1]), [-1, logits.shape[1]]) as tf.Tensor2D;
  return objective(networkLosses as tf.Tensor1D, wrong(cleanLogits, y));
}
