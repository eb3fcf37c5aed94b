import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../models/classifier.js';

/**
 * What a minibatch is trained on besides (or instead of) the clean x: the adversarial x̃ of §6's objective J̃,
 * or a noisy x for the noise controls. The attacks module supplies it; training only mixes the losses.
 */
export interface TrainingPerturbation {
  /**
   * x̃ for this minibatch, from the current parameters. `dropoutSeed` is the seed of the clean term's dropout
   * masks (some perturbations take ∇ₓJ through them). No gradient flows through x̃.
   */
  perturb(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D, dropoutSeed: number): tf.Tensor2D;
  /** replace: J(x̃); alpha-mix: α·J(x) + (1 − α)·J(x̃). */
  mixing: 'replace' | 'alpha-mix';
  alpha: number;
}

export interface MinibatchObjective {
  /** The scalar the parameters descend. */
  loss: tf.Scalar;
  /** Examples the training-state network misclassifies: of x (alpha-mix, or no perturbation), else of x̃. */
  misclassified: tf.Scalar;
}

/**
 * The training objective on one minibatch in the training state (dropout masks from `dropoutSeed`), for
 * tf.variableGrads. With alpha-mix, x and x̃ go through the network as one batch [x; x̃]: the clean rows get
 * the masks a pass over x alone would (masks are drawn row by row), and one pass costs less than two.
 */
export function minibatchObjective(
  model: Classifier,
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  perturbed: tf.Tensor2D | null,
  perturbation: Pick<TrainingPerturbation, 'mixing' | 'alpha'> | null,
  dropoutSeed: number,
): MinibatchObjective {
  const state = { dropoutSeed, gradients: 'parameters' } as const;
  const wrong = (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar =>
    tf.sum(tf.cast(tf.notEqual(tf.argMax(model.probabilities(logits), 1), labels), 'float32'));
  if (!perturbed || !perturbation || perturbation.mixing === 'replace') {
    const inputs = perturbed ?? x;
    const logits = model.logits(inputs, state);
    return { loss: tf.mean(model.loss(logits, y)), misclassified: wrong(logits, y) };
  }
  const n = x.shape[0];
  const logits = model.logits(tf.concat([x, perturbed], 0), state);
  const losses = model.loss(logits, tf.concat([y, y], 0));
  const [clean, adversarial] = tf.split(losses, [n, n]) as [tf.Tensor1D, tf.Tensor1D];
  const loss = tf.add(tf.mul(perturbation.alpha, tf.mean(clean)), tf.mul(1 - perturbation.alpha, tf.mean(adversarial)));
  return { loss: loss as tf.Scalar, misclassified: wrong(tf.slice(logits, [0, 0], [n, -1]), y) };
}
