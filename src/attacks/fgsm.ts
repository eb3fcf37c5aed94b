import * as tf from '@tensorflow/tfjs-core';
import { FgsmError } from '../core/errors.js';
import { EVALUATION, type Classifier, type ForwardState, type SoftmaxGradient } from '../models/classifier.js';
import { exactSign } from '../backend/kernels.js';

export interface FgsmOptions {
  /** Every ε to produce an adversarial batch for; one gradient serves them all. */
  epsilons: readonly number[];
  /** Clip x̃ to [min, max], or null for no clipping (the paper's formula does not clip). */
  clip: readonly [number, number] | null;
  /** The labels in J: the true labels (the paper) or the model's own predictions (avoids label leaking). */
  labels: 'true' | 'predicted';
  /**
   * Untargeted (null): step up the loss of the label. Targeted: step down the loss of a target class,
   * x̃ = x − ε·sign(∇ₓJ(θ, x, t)); 'next' is (label + 1) mod K, 'least-likely' the model's least likely class,
   * a number is a fixed class index.
   */
  target: null | 'next' | 'least-likely' | number;
  /**
   * The network state while ∇ₓJ is taken: null or absent for the deterministic network (evaluation); a seed
   * for the training state with dropout masks drawn from it (adversarial training's gradient-state option); one
   * per network for stacked seeds (see MaxoutNetwork).
   */
  dropoutSeed?: ForwardState['dropoutSeed'];
  /**
   * How J's gradient with respect to the logits is computed (default standard, as the frameworks and the paper's
   * Theano did): see SoftmaxGradient. Where p_y rounds to 1 in float32 the two give different directions.
   */
  gradient?: SoftmaxGradient;
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
  const problems: string[] = [];
  if (x.rank !== 2 || x.shape[1] !== model.spec.inputSize) {
    problems.push(`x: expected shape [N, ${model.spec.inputSize}], found [${x.shape}]`);
  }
  if (x.dtype !== 'float32') problems.push(`x: expected dtype float32, found ${x.dtype}`);
  if (options.labels === 'true' || options.target === 'next') {
    if (!y) problems.push('y: expected the true labels (labels: true or target: next), found none');
    else if (y.rank !== 1 || y.shape[0] !== x.shape[0] || y.dtype !== 'int32') {
      problems.push(`y: expected int32 class indices of shape [${x.shape[0]}], found ${y.dtype} [${y.shape}]`);
    }
  }
  if (options.epsilons.length === 0) problems.push('epsilons: expected at least one ε');
  for (const eps of options.epsilons) if (!(Number.isFinite(eps) && eps >= 0)) problems.push(`epsilons: expected finite ε ≥ 0, found ${eps}`);
  if (options.clip && !(options.clip[0] < options.clip[1])) problems.push(`clip: expected [min, max] with min < max, found [${options.clip}]`);
  const k = model.spec.classes.length;
  if (typeof options.target === 'number' && !(Number.isInteger(options.target) && options.target >= 0 && options.target < k)) {
    problems.push(`target: expected a class index in 0..${k - 1}, found ${options.target}`);
  }
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
    const k = model.spec.classes.length;
    const n = x.shape[0];
    const needsPrediction = options.labels === 'predicted' || options.target === 'least-likely';
    const probabilities = needsPrediction ? model.probabilities(model.logits(x)) : null;
    const source = options.labels === 'predicted' ? (tf.argMax(probabilities!, 1) as tf.Tensor1D) : y!;
    let lossLabels: tf.Tensor1D = source;
    if (options.target === 'next') lossLabels = tf.mod(tf.add(source, tf.scalar(1, 'int32')), tf.scalar(k, 'int32')) as tf.Tensor1D;
    else if (options.target === 'least-likely') lossLabels = tf.argMin(probabilities!, 1) as tf.Tensor1D;
    else if (typeof options.target === 'number') lossLabels = tf.fill([n], options.target, 'int32') as tf.Tensor1D;

    // the softmax gradient goes to the loss and to the forward pass (an ensemble's softmaxes are in its logits)
    const state: ForwardState = {
      ...(options.dropoutSeed == null ? EVALUATION : { dropoutSeed: options.dropoutSeed, gradients: 'input' as const }),
      softmaxGradient: options.gradient ?? 'standard',
    };
    const gradient = tf.grad((input: tf.Tensor) => tf.sum(model.loss(model.logits(input as tf.Tensor2D, state), lossLabels, options.gradient)))(
      x,
    ) as tf.Tensor2D;
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
