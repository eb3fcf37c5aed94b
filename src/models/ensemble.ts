import * as tf from '@tensorflow/tfjs-core';
import { FgsmError } from '../core/errors.js';
import { EVALUATION, type Classifier, type ForwardState, type ModelSpec } from './classifier.js';

/**
 * §9's ensemble: trained classifiers whose class probabilities are averaged, p̄ = (1/M) Σ_m p_m. Its logits are
 * log p̄, computed as logsumexp_m(log p_m) − log M from the members' log-probabilities, so a class that every
 * member gives p = 0 in float32 has a finite logit and gradient, not log 0. Its loss is −log p̄_y, so FGSM against
 * the ensemble differentiates through the average (∇ₓJ = −Σ_m p_m,y ∇ₓ log p_m,y / Σ_m p_m,y). The members'
 * softmaxes are inside its logits, so the softmax gradient is chosen there, by the ForwardState.
 *
 * The members are the caller's: the ensemble has no parameters of its own, is never trained, and disposes
 * nothing.
 */
export class EnsembleClassifier implements Classifier {
  readonly spec: ModelSpec;
  readonly parameters = [];

  constructor(readonly members: readonly Classifier[]) {
    const first = members[0];
    if (!first) throw new FgsmError('an ensemble needs at least one member');
    for (const member of members) {
      if (member.spec.inputSize !== first.spec.inputSize || member.spec.classes.join() !== first.spec.classes.join()) {
        throw new FgsmError(
          `ensemble: a member classifies [${member.spec.classes}] from ${member.spec.inputSize} inputs, the first [${first.spec.classes}] from ${first.spec.inputSize}`,
          'an ensemble averages models of the same task',
        );
      }
    }
    this.spec = {
      kind: 'ensemble',
      inputSize: first.spec.inputSize,
      classes: first.spec.classes,
      maxColumnNorm: null,
      members: members.map((m) => m.spec),
    };
  }

  logits(x: tf.Tensor2D, state: ForwardState = EVALUATION): tf.Tensor2D {
    return tf.tidy((): tf.Tensor2D => {
      const logProbabilities = tf.stack(this.members.map((member) => member.logProbabilities(member.logits(x, state), state.softmaxGradient)));
      return tf.sub(tf.logSumExp(logProbabilities, 0), Math.log(this.members.length)) as tf.Tensor2D;
    });
  }

  /**
   * −log p̄_y, selected with `where` (a product with the one-hot labels would turn a −∞ logit into NaN, and
   * gatherND has no gradient in tfjs). No softmax of its own: the gradient choice was made in `logits`
   * (ForwardState.softmaxGradient), where the members' softmaxes saturate or not; `gradient` is unused here.
   */
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
    return tf.tidy((): tf.Tensor1D => {
      // equal, not a cast: tfjs-wasm's OneHot writes int32 bits whatever the dtype
      const isLabel = tf.equal(tf.oneHot(labels, logits.shape[1]), 1);
      return tf.neg(tf.sum(tf.where(isLabel, logits, tf.zerosLike(logits)), 1)) as tf.Tensor1D;
    });
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return tf.exp(logits);
  }

  logProbabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return tf.clone(logits);
  }

  /** Nothing of its own to constrain or reset: the members' parameters are theirs. */
  constrain(): void {}

  reinitialize(): void {}

  /** The members belong to the caller. */
  dispose(): void {}
}
