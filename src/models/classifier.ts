import type * as tf from '@tensorflow/tfjs';
import type { Gradients } from './plain-matmul.js';

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
 */
export interface DropoutSpec {
  inputKeep: number;
  inputScale: number;
  hiddenKeep: number;
  hiddenScale: number;
}

interface SpecBase {
  inputSize: number;
  /** The digit each output class stands for. */
  classes: number[];
  maxColumnNorm: number | null;
}

/** Everything needed to rebuild a model (saved beside its weights). */
export type ModelSpec =
  (SpecBase & { kind: 'softmax' | 'logistic' }) | (SpecBase & { kind: 'maxout'; layers: MaxoutLayerSpec[]; dropout: DropoutSpec | null });

/**
 * The network state of one forward pass. `dropoutSeed`: null for the deterministic (evaluation) network, or
 * the seed the dropout masks are drawn from (the same seed gives the same masks, row by row). `gradients`:
 * which gradients the pass must support (see plainMatMul).
 */
export interface ForwardState {
  dropoutSeed: number | null;
  gradients: Gradients;
}

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
  /** Per-example cross-entropy J(θ, x, y) from logits and class indices: the loss the paper attacks. */
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D;
  /** Class probabilities, [N, classes]. */
  probabilities(logits: tf.Tensor2D): tf.Tensor2D;
  /** Applies the model's constraints (max column norm) after a parameter update. */
  constrain(): void;
  /** Sets every parameter back to its seeded initial value (a retrain from scratch). */
  reinitialize(): void;
  dispose(): void;
}
