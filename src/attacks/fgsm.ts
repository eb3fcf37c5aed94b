import * as tf from '@tensorflow/tfjs-core';
import { FgsmError } from '../core/errors.js';
import type { Classifier } from '../models/classifier.js';
import { exactSign } from '../backend/kernels.js';
import { attackInputProblems, inputGradient, lossLabels, type AttackLabels, type GradientChoice } from './gradient.js';

export interface FgsmOptions extends AttackLabels, GradientChoice {
  /** Every ε to produce an adversarial batch for; one gradient serves them all. */
  epsilons: readonly number[];
  /** Clip x̃ to [min, max], or null for no clipping (the paper's formula does not clip). */
  clip: readonly [number, number] | null;
  /** Count the examples with an all-zero input gradient (default true); training skips it: nobody reads it there. */
  countZeroGradients?: boolean;
}

export interface FgsmResult {
  /** One [N, D] tensor per ε, in the order of options.epsilons. The caller disposes them. */
  adversarial: tf.Tensor2D[];
  /** ±sign(∇ₓJ), [N, D]: the perturbation per unit ε (before clipping). The caller disposes it. */
  direction: tf.Tensor2D;
  /**
   * Examples whose input gradient is exactly zero everywhere (saturation / gradient masking signal), an int32
   * scalar left on the device for the caller to read when it reads (and dispose); null when not counted.
   */
  zeroGradient: tf.Scalar | null;
}

function validate(model: Classifier, x: tf.Tensor, y: tf.Tensor | null, options: FgsmOptions): void {
  const problems = attackInputProblems(model, x, y, options);
  if (options.epsilons.length === 0) problems.push('epsilons: expected at least one ε');
  for (const eps of options.epsilons) if (!(Number.isFinite(eps) && eps >= 0)) problems.push(`epsilons: expected finite ε ≥ 0, found ${eps}`);
  if (problems.length > 0) throw new FgsmError(`fastGradientSign: ${problems.join('; ')}`);
}

/**
 * The fast gradient sign method of Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial
 * Examples" (ICLR 2015), eq. (3): x̃ = x + ε·sign(∇ₓJ(θ, x, y)), an L∞ step of size ε, with J the model's
 * cross-entropy computed from its logits (never from clipped probabilities, which would zero the gradient of
 * confident examples). The model is attacked in its deterministic state unless `dropoutSeed` says otherwise;
 * sign(0) = 0; `x` is not modified.
 */
export function fastGradientSign(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D | null, options: FgsmOptions): FgsmResult {
  validate(model, x, y, options);
  return tf.tidy(() => {
    const gradient = inputGradient(model, x, lossLabels(model, x, y, options), options);
    const sign = exactSign(gradient);
    const direction = options.target === null ? sign : tf.neg(sign);
    const zeroGradient = options.countZeroGradients === false ? null : tf.sum(tf.cast(tf.equal(tf.max(tf.abs(gradient), 1), 0), 'int32'));
    const adversarial = options.epsilons.map((eps) => {
      const stepped = tf.add(x, tf.mul(direction, eps));
      return (options.clip ? tf.clipByValue(stepped, options.clip[0], options.clip[1]) : stepped) as tf.Tensor2D;
    });
    return { adversarial, direction, zeroGradient } as unknown as tf.TensorContainerObject;
  }) as unknown as FgsmResult;
}
