import * as tf from '@tensorflow/tfjs-core';
import { FgsmError } from '../core/errors.js';
import { stream } from '../core/rng.js';
import type { Split } from '../data/dataset.js';
import { EVALUATION, type Classifier, type ForwardState, type ModelSpec, type Parameter, type RbfSpec, type SoftmaxGradient } from './classifier.js';
import { expDistanceCrossEntropy } from './independent-outputs.js';
import { logSoftmax, softmaxCrossEntropy } from './linear.js';
import { denseMatMul } from '../backend/kernels.js';

type RbfModelSpec = Extract<ModelSpec, { kind: 'rbf' }>;

let variableCount = 0;

/** The raw parameter ρ that gives precision a under `precision` (the inverse of RbfNetwork's a = f(ρ)). */
function rawPrecision(precision: RbfSpec['precision'], a: number): number {
  if (precision === 'exp') return Math.log(a);
  if (precision === 'softplus') return Math.log(Math.expm1(a));
  return a;
}

/**
 * The centres μ ([inputSize × classes], column k = class k's centre) the spec's init asks for: the mean training
 * image of each class, or one training image of each class drawn by the stream (seed, "init", "centres").
 * Null data (a model about to be loaded from disk) gives zeros.
 */
export function initialCentres(spec: RbfModelSpec, train: Split | null, seed: number): Float32Array {
  const d = spec.inputSize;
  const k = spec.classes.length;
  const centres = new Float32Array(d * k);
  if (!train) return centres;
  const members = Array.from({ length: k }, (): number[] => []);
  for (let i = 0; i < train.n; i++) members[train.y[i]!]!.push(i);
  const rng = stream(seed, 'init', 'centres');
  members.forEach((rows, c) => {
    if (rows.length === 0) throw new FgsmError(`RBF centres: no training example of class ${spec.classes[c]}`);
    const chosen = spec.init.centres === 'examples' ? [rows[rng.int(rows.length)]!] : rows;
    for (const row of chosen) for (let f = 0; f < d; f++) centres[f * k + c]! += train.x[row * d + f]! / chosen.length;
  });
  return centres;
}

/**
 * The shallow RBF network of §7: for each class k, d_k(x) = Σ_f a_kf (x_f − μ_kf)² with a ≥ 0, and
 * p_k(x) = exp(−d_k(x)), the paper's exp((x − μ)ᵀβ(x − μ)) with β = −diag(a_k). The logits are −d = log p.
 *
 * output independent: p_k as it is, J = Σ_k binary cross-entropy (expDistanceCrossEntropy); the prediction is
 * argmax_k p_k and its confidence max_k p_k, which can be far below 1/K: an input far from every centre gets a low
 * probability from every class (§7's 1.2% confidence on mistakes, Appendix A's 0% rubbish error).
 * output softmax: p = softmax(−d), J = softmax cross-entropy with its SoftmaxGradient choice.
 *
 * a = f(ρ) for a free parameter ρ: exp(ρ), softplus(ρ), or ρ itself kept ≥ 0 by constrain() (projected SGD).
 *
 * d is expanded as (x∘x)·a − 2x·(a∘μ) + Σ_f a∘μ∘μ: two [n × inputSize]·[inputSize × K] products (denseMatMul) instead
 * of an [n × K × inputSize] difference tensor. Rounding can leave d a hair below 0, so it is floored at 0.
 */
export class RbfNetwork implements Classifier {
  readonly parameters: readonly Parameter[];
  private readonly centres: tf.Variable<tf.Rank.R2>;
  private readonly rho: tf.Variable<tf.Rank.R2>;

  constructor(
    readonly spec: RbfModelSpec,
    private readonly startCentres: Float32Array,
  ) {
    const shape: [number, number] = [spec.inputSize, spec.classes.length];
    const n = ++variableCount;
    this.centres = tf.tidy(() => tf.variable(tf.tensor2d(startCentres, shape), true, `mu_${n}`));
    this.rho = tf.tidy(() => tf.variable(this.startRho(), true, `rho_${n}`));
    // role: weight decay (and nothing else) follows it; the precisions are the weights, the centres are locations
    this.parameters = [
      { name: 'mu', variable: this.centres, role: 'bias', layer: 1 },
      { name: 'rho', variable: this.rho, role: 'weight', layer: 1 },
    ];
  }

  private startRho(): tf.Tensor2D {
    return tf.fill([this.spec.inputSize, this.spec.classes.length], rawPrecision(this.spec.precision, this.spec.init.precision)) as tf.Tensor2D;
  }

  /** a ≥ 0, [inputSize × K]. */
  private precisions(): tf.Tensor2D {
    if (this.spec.precision === 'exp') return tf.exp(this.rho);
    if (this.spec.precision === 'softplus') return tf.softplus(this.rho);
    return this.rho.clone();
  }

  /** d_k(x) for every class, [n × K]: −logits. */
  private distances(x: tf.Tensor2D, state: ForwardState = EVALUATION): tf.Tensor2D {
    return tf.tidy(() => {
      const a = this.precisions();
      const aMu = tf.mul(a, this.centres) as tf.Tensor2D;
      const constant = tf.sum(tf.mul(aMu, this.centres), 0, true);
      const quadratic = denseMatMul(tf.square(x), a, state.gradients);
      const cross = denseMatMul(x, aMu, state.gradients);
      return tf.relu(tf.add(tf.sub(quadratic, tf.mul(cross, 2)), constant)) as tf.Tensor2D;
    });
  }

  /** No dropout: the training state is the deterministic network. */
  logits(x: tf.Tensor2D, state: ForwardState = EVALUATION): tf.Tensor2D {
    return tf.tidy(() => tf.neg(this.distances(x, state)));
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient: SoftmaxGradient = 'standard'): tf.Tensor1D {
    if (this.spec.output === 'softmax') return softmaxCrossEntropy(logits, labels, gradient);
    // −d_k is log p_k exactly, so the BCE has no saturating softmax step and no gradient choice
    return tf.tidy(() => expDistanceCrossEntropy(tf.neg(logits), labels));
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return this.spec.output === 'softmax' ? tf.softmax(logits) : tf.exp(logits);
  }

  /** The independent outputs' logits −d_k are log p_k already (no gradient choice). */
  logProbabilities(logits: tf.Tensor2D, gradient: SoftmaxGradient = 'standard'): tf.Tensor2D {
    return this.spec.output === 'softmax' ? logSoftmax(logits, gradient) : tf.clone(logits);
  }

  constrain(): void {
    if (this.spec.precision !== 'clamp') return;
    const clamped = tf.relu(this.rho);
    this.rho.assign(clamped);
    clamped.dispose();
  }

  reinitialize(): void {
    tf.tidy(() => {
      this.centres.assign(tf.tensor2d(this.startCentres, this.centres.shape));
      this.rho.assign(this.startRho());
    });
  }

  dispose(): void {
    this.centres.dispose();
    this.rho.dispose();
  }
}
