import type * as tf from '@tensorflow/tfjs-core';
import type { Gradients } from '../backend/kernels.js';
import type { SOFTMAX_GRADIENTS } from '../config/schema.js';

/** A trainable tensor of a model; `role` decides whether weight decay and max-norm apply. */
export interface Parameter {
  name: string;
  variable: tf.Variable;
  role: 'weight' | 'bias';
  /** 1 for the layer that sees the input, counting up (the L1 penalty of §5 targets layer 1). */
  layer: number;
}

/** One maxout layer: `units` outputs, each the max of `pieces` linear pieces. */
export interface MaxoutLayerSpec {
  units: number;
  pieces: number;
}

/**
 * Dropout as pylearn2 does it: each input pixel kept with probability `inputKeep` and multiplied by
 * `inputScale` (1: not rescaled), each hidden unit's output kept with `hiddenKeep` and multiplied by `hiddenScale`.
 * `stream`: which generator draws the masks (see DropoutStream); absent (specs saved before it existed) is sfc32-rows.
 */
export interface DropoutSpec {
  inputKeep: number;
  inputScale: number;
  hiddenKeep: number;
  hiddenScale: number;
  stream?: DropoutStream;
}

/**
 * The generator of dropout masks. sfc32-rows: each layer's mask drawn row by row from a sequential sfc32 stream
 * (streamSeed(seed, 'dropout', layer)); every run made before threefry-v1 existed. threefry-v1: each element a pure
 * function of (seed, layer, row, column) (counterDropoutMask), which a GPU kernel draws on the device.
 */
export type DropoutStream = 'sfc32-rows' | 'threefry-v1';

interface SpecBase {
  inputSize: number;
  /** The digit each output class stands for. */
  classes: number[];
  maxColumnNorm: number | null;
}

/**
 * The output layer of a maxout network. softmax: p = softmax(z), J = softmax cross-entropy. sigmoid (Appendix A's
 * "independent-sigmoid top"): p_k = σ(z_k), each class its own sigmoid, J = the sum (or, with SigmoidLoss mean,
 * pylearn2's choice, the mean) over classes of the binary cross-entropies of p_k.
 */
export type MaxoutTop = 'softmax' | 'sigmoid';
export type SigmoidLoss = 'sum' | 'mean';

/**
 * The RBF network of §7, p_k(x) = exp(−d_k(x)) with d_k(x) = Σ_f a_kf (x_f − μ_kf)², a ≥ 0.
 * output: independent (each p_k on its own, J = Σ_k binary cross-entropy of p_k; docs/paper.md §2's reading) or
 * softmax (p = softmax(−d), J = softmax cross-entropy). precision: how a ≥ 0 is parameterised (see RbfNetwork).
 * init: where the centres μ start (the class means of the training split, or one seeded random training example
 * per class) and the value every a_kf starts at.
 */
export interface RbfSpec {
  output: 'independent' | 'softmax';
  precision: 'exp' | 'softplus' | 'clamp';
  init: { centres: 'class-means' | 'examples'; precision: number };
}

/** Everything needed to rebuild a model (saved beside its weights). */
export type ModelSpec =
  | (SpecBase & { kind: 'softmax' | 'logistic' })
  | (SpecBase & { kind: 'maxout'; layers: MaxoutLayerSpec[]; dropout: DropoutSpec | null; top: MaxoutTop; sigmoidLoss: SigmoidLoss })
  | (SpecBase & { kind: 'rbf' } & RbfSpec)
  /** Trained models combined (§9): built from their runs, never from a spec alone, so never saved. */
  | (SpecBase & { kind: 'ensemble'; members: ModelSpec[] });

/**
 * The network state of one forward pass. `dropoutSeed`: null for the deterministic (evaluation) network, or
 * the seed the dropout masks are drawn from (the same seed gives the same masks, row by row); for a network of
 * stacked seeds, one such seed per stacked network, each for its own group of rows. `gradients`: which gradients
 * the pass must support (see denseMatMul).
 */
export interface ForwardState {
  dropoutSeed: number | readonly number[] | null;
  gradients: Gradients;
  /**
   * How the backward pass of a softmax inside the forward pass is computed (default standard): only an ensemble's
   * logits hold softmaxes (its members'); a single model's softmax is in its loss, which takes the choice itself.
   */
  softmaxGradient?: SoftmaxGradient;
}

/**
 * How the gradient of the softmax cross-entropy with respect to the logits is computed in float32 (docs/paper.md §3).
 * Four formulations of the same ∂J/∂z = p − onehot(y); the loss values are the same with each.
 * standard: autodiff through J = logsumexp(z) − z_y with tfjs's logsumexp, m + log Σ exp(z − m) with m = max z
 * (m takes a gradient too); once p_y rounds to 1, ∂J/∂z_y is 0 while ∂J/∂z_k = p_k stays tiny but non-zero, so
 * ∇ₓJ loses its "push the true class down" part and turns.
 * softmax-minus-onehot: p − onehot(y) with p from the float32 softmax, exp(z − m) / Σ exp(z − m) (Theano's and
 * TensorFlow's fused softmax cross-entropy gradient).
 * exp-log-softmax-minus-onehot: exp(log softmax(z)) − onehot(y), log softmax(z) = z − m − log Σ exp(z − m) (what
 * autodiff of −log softmax(z)_y gives in PyTorch and tfjs's logSoftmax).
 * These three round p_y to 1 at slightly different logits, so their saturated figures spread.
 * stable: the same loss, with ∂J/∂z_k = p_k for k ≠ y and ∂J/∂z_y = −Σ_{k≠y} p_k, each p_k from z − logsumexp(z),
 * which never saturates.
 * The independent-sigmoid top has the same forms (sigmoidCrossEntropy); losses with no saturating step (logistic
 * regression's softplus, RBF) ignore the choice.
 */
export type SoftmaxGradient = (typeof SOFTMAX_GRADIENTS)[number];

/**
 * Which implementation of the standard and stable gradient forms a figure was measured with, recorded in every
 * result's provenance (gradientForms). 1: the independent-sigmoid top's "stable" form was the standard one again, so
 * its stable figures repeat the standard ones, until commit ba735b5 (GRADIENT_FORMS_2_SINCE). 2: each output's two
 * forms as described above. Bump it whenever a form changes what a recorded figure measures. Records written before
 * the field existed are dated by when they finished.
 */
export const GRADIENT_FORMS = 2;
export const GRADIENT_FORMS_2_SINCE = { commit: 'ba735b5', at: '2026-11-26T15:52:02Z' };

/** The gradient a run measures beside the one it is configured with: every FGSM figure is reported both ways. */
export const otherGradient = (gradient: SoftmaxGradient): SoftmaxGradient => (gradient === 'stable' ? 'standard' : 'stable');

/** The deterministic network, differentiable with respect to its input: what evaluation and attacks use. */
export const EVALUATION: ForwardState = { dropoutSeed: null, gradients: 'input' };

/**
 * What the training loop, the attacks and the evaluation need from a model. Every method returns new
 * tensors the caller owns (call inside tf.tidy); none changes its inputs.
 */
export interface Classifier {
  readonly spec: ModelSpec;
  readonly parameters: readonly Parameter[];
  /** Logits, [N, classes], in `state` (default: EVALUATION). */
  logits(x: tf.Tensor2D, state?: ForwardState): tf.Tensor2D;
  /**
   * Per-example cross-entropy J(θ, x, y) from logits and class indices: the loss the paper attacks. `gradient`
   * (default standard) chooses how its gradient is computed; the values are the same either way.
   */
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient?: SoftmaxGradient): tf.Tensor1D;
  /** Class probabilities, [N, classes]. */
  probabilities(logits: tf.Tensor2D): tf.Tensor2D;
  /**
   * log(probabilities), computed from the logits without forming the probabilities: finite (and with a finite
   * gradient) where a probability underflows to 0 in float32, which an ensemble's log of a mean needs. `gradient`
   * (default standard) chooses how a softmax's log is differentiated; outputs with no softmax have no choice.
   */
  logProbabilities(logits: tf.Tensor2D, gradient?: SoftmaxGradient): tf.Tensor2D;
  /** Applies the model's constraints (max column norm) after a parameter update. */
  constrain(): void;
  /** Sets every parameter back to its seeded initial value (a retrain from scratch). */
  reinitialize(): void;
  dispose(): void;
}
