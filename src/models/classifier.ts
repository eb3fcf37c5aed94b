import type * as tf from '@tensorflow/tfjs';

/** A trainable tensor of a model; `role` decides whether weight decay and max-norm apply. */
export interface Parameter {
  name: string;
  variable: tf.Variable;
  role: 'weight' | 'bias';
}

/** Everything needed to rebuild a model (saved beside its weights). */
export interface ModelSpec {
  kind: 'softmax' | 'logistic';
  inputSize: number;
  /** The digit each output class stands for. */
  classes: number[];
  maxColumnNorm: number | null;
}

/**
 * What the training loop, the attacks and the evaluation need from a model. Every method returns new
 * tensors the caller owns (call inside tf.tidy); none changes its inputs.
 */
export interface Classifier {
  readonly spec: ModelSpec;
  readonly parameters: readonly Parameter[];
  /** Logits in the deterministic (evaluation) state. */
  logits(x: tf.Tensor2D): tf.Tensor2D;
  /** Logits in the training state (dropout etc.); `stepSeed` makes its randomness reproducible. */
  trainingLogits(x: tf.Tensor2D, stepSeed: number): tf.Tensor2D;
  /** Per-example cross-entropy J(θ, x, y) from logits and class indices: the loss the paper attacks. */
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D;
  /** Class probabilities, [N, classes]. */
  probabilities(logits: tf.Tensor2D): tf.Tensor2D;
  /** Applies the model's constraints (max column norm) after a parameter update. */
  constrain(): void;
  dispose(): void;
}
