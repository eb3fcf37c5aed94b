import * as tf from '@tensorflow/tfjs-core';
import { EVALUATION, type Classifier, type ForwardState, type SoftmaxGradient } from '../models/classifier.js';

/** Whose labels J takes and which class, if any, the attack steps towards (see FgsmOptions). */
export interface AttackLabels {
  /** The true labels (the paper) or the model's own predictions on the clean input (avoids label leaking). */
  labels: 'true' | 'predicted';
  /**
   * Untargeted (null): step up the loss of the label. Targeted: step down the loss of a target class; 'next' is
   * (label + 1) mod K, 'least-likely' the model's least likely class on the clean input, a number a class index.
   */
  target: null | 'next' | 'least-likely' | number;
}

/** How ∇ₓJ is taken: the network state and the softmax gradient. */
export interface GradientChoice {
  /**
   * The network state while ∇ₓJ is taken: null or absent for the deterministic network (evaluation); a seed
   * for the training state with dropout masks drawn from it (adversarial training's gradient-state option); one
   * per network for stacked seeds (see MaxoutNetwork).
   */
  dropoutSeed?: ForwardState['dropoutSeed'];
  /**
   * How J's gradient with respect to the logits is computed (default standard, as the frameworks and the paper's
   * Theano did): see SoftmaxGradient. Where p_y rounds to 1 in float32 the formulations give different directions.
   */
  gradient?: SoftmaxGradient;
}

/**
 * What is wrong with an attack's inputs (x [N, D] float32; y [N] int32 where the labels or target need it; clip
 * bounds; a target class index), one phrase per problem; empty when nothing is.
 */
export function attackInputProblems(
  model: Classifier,
  x: tf.Tensor,
  y: tf.Tensor | null,
  options: AttackLabels & { clip: readonly [number, number] | null },
): string[] {
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
  if (options.clip && !(options.clip[0] < options.clip[1])) problems.push(`clip: expected [min, max] with min < max, found [${options.clip}]`);
  const k = model.spec.classes.length;
  if (typeof options.target === 'number' && !(Number.isInteger(options.target) && options.target >= 0 && options.target < k)) {
    problems.push(`target: expected a class index in 0..${k - 1}, found ${options.target}`);
  }
  return problems;
}

/**
 * The class indices J is taken with, [N] int32: the labels (true or predicted) for an untargeted attack, the
 * target class for a targeted one. Predictions are made once, on the clean `x`.
 */
export function lossLabels(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D | null, choice: AttackLabels): tf.Tensor1D {
  return tf.tidy(() => {
    const k = model.spec.classes.length;
    const n = x.shape[0];
    const needsPrediction = choice.labels === 'predicted' || choice.target === 'least-likely';
    const probabilities = needsPrediction ? model.probabilities(model.logits(x)) : null;
    const source = choice.labels === 'predicted' ? (tf.argMax(probabilities!, 1) as tf.Tensor1D) : y!;
    if (choice.target === 'next') return tf.mod(tf.add(source, tf.scalar(1, 'int32')), tf.scalar(k, 'int32')) as tf.Tensor1D;
    if (choice.target === 'least-likely') return tf.argMin(probabilities!, 1) as tf.Tensor1D;
    if (typeof choice.target === 'number') return tf.fill([n], choice.target, 'int32') as tf.Tensor1D;
    return tf.clone(source);
  });
}

/**
 * lossLabels from what an evaluation has already read: the clean probabilities ([N × k], row-major, as
 * model.probabilities gives them) and the true labels. For an attack that runs off tfjs's ops (the WebGPU engine);
 * ties go to the first class, as tf.argMax and tf.argMin break them.
 */
export function lossLabelsOf(probabilities: Float32Array, y: Int32Array, k: number, choice: AttackLabels): Int32Array {
  const n = y.length;
  if (probabilities.length !== n * k) throw new Error(`probabilities: ${n} rows of ${k} classes, not ${probabilities.length} values`);
  const extreme = (i: number, better: (a: number, b: number) => boolean): number => {
    let best = 0;
    for (let c = 1; c < k; c++) if (better(probabilities[i * k + c]!, probabilities[i * k + best]!)) best = c;
    return best;
  };
  return Int32Array.from({ length: n }, (_, i) => {
    const source = choice.labels === 'predicted' ? extreme(i, (a, b) => a > b) : y[i]!;
    if (choice.target === 'next') return (source + 1) % k;
    if (choice.target === 'least-likely') return extreme(i, (a, b) => a < b);
    if (typeof choice.target === 'number') return choice.target;
    return source;
  });
}

/**
 * ∇ₓ Σᵢ J(θ, xᵢ, labelsᵢ), [N, D]: one forward and one backward pass through the model, the loss from its logits,
 * in the deterministic network unless `choice.dropoutSeed` says otherwise. Every attack here steps along it.
 */
export function inputGradient(model: Classifier, x: tf.Tensor2D, labels: tf.Tensor1D, choice: GradientChoice = {}): tf.Tensor2D {
  return tf.tidy(() => {
    // the softmax gradient goes to the loss and to the forward pass (an ensemble's softmaxes are in its logits)
    const state: ForwardState = {
      ...(choice.dropoutSeed == null ? EVALUATION : { dropoutSeed: choice.dropoutSeed, gradients: 'input' as const }),
      softmaxGradient: choice.gradient ?? 'standard',
    };
    return tf.grad((input: tf.Tensor) => tf.sum(model.loss(model.logits(input as tf.Tensor2D, state), labels, choice.gradient)))(x) as tf.Tensor2D;
  });
}
