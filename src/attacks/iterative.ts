/**
 * The iterative L∞ attacks, stepping along the same input gradient as FGSM (inputGradient):
 *
 *   iterativeGradientSign(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D | null, options: IterativeOptions)
 *     → IterativeResult { adversarial: tf.Tensor2D }           (the caller disposes it; x is not modified)
 *
 *   IterativeOptions = AttackLabels & { gradient?: SoftmaxGradient } & {
 *     epsilon: number;                          // the radius of the L∞ ball around x
 *     steps: number;                            // gradient steps per run (one forward and one backward each)
 *     stepSize: number;                         // α, the L∞ size of one step
 *     randomStart: boolean;                     // start at x + U(−ε, ε) (PGD) or at x (BIM)
 *     restarts: number;                         // runs per example (≥ 1; > 1 needs randomStart), the worst kept
 *     seed: number;                             // the random starts' stream
 *     firstRow?: number;                        // x's first row's index in the whole set (default 0)
 *     clip: readonly [number, number] | null;   // clip every iterate to [min, max], or not at all
 *   }
 *
 * BIM (Kurakin, Goodfellow & Bengio 2017) is { randomStart: false, restarts: 1 }; PGD (Madry et al. 2018) is
 * { randomStart: true, restarts: R }. One step, no random start and stepSize = ε is FGSM exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { exactSign } from '../backend/kernels.js';
import { FgsmError } from '../core/errors.js';
import { stream } from '../core/rng.js';
import type { Classifier, SoftmaxGradient } from '../models/classifier.js';
import { attackInputProblems, inputGradient, lossLabels, type AttackLabels } from './gradient.js';

export interface IterativeOptions extends AttackLabels {
  /** ε: every iterate stays within ‖x̃ − x‖∞ ≤ ε. */
  epsilon: number;
  /** Gradient steps per run; each is one forward and one backward pass over the batch. */
  steps: number;
  /** α: each step moves every pixel by α·sign(∇ₓJ) before the projection back onto the ε-ball. */
  stepSize: number;
  /** Start from a point drawn uniformly from the ε-ball around x (PGD) or from x itself (BIM). */
  randomStart: boolean;
  /**
   * Runs from independent random starts; per example the worst for the model is kept: an example the attack
   * succeeds on (misclassified as other than its label; classified as the target when targeted) before one it
   * does not, then the higher loss (the lower target loss when targeted). 1 with randomStart false.
   */
  restarts: number;
  /**
   * The random starts' seed: row i of the whole set (firstRow + i of this batch) in restart r starts at the draw of
   * stream(seed, 'random-start', r, row), so the result does not depend on how the set is cut into batches.
   */
  seed: number;
  /** The index of x's first row in the whole set (default 0). */
  firstRow?: number;
  /** Clip every iterate to [min, max] (the image domain), or null for no clipping. */
  clip: readonly [number, number] | null;
  /** How J's gradient with respect to the logits is computed (default standard): see SoftmaxGradient. */
  gradient?: SoftmaxGradient;
}

export interface IterativeResult {
  /** The adversarial examples, [N, D]. The caller disposes them. */
  adversarial: tf.Tensor2D;
}

function validate(model: Classifier, x: tf.Tensor, y: tf.Tensor | null, options: IterativeOptions): void {
  const problems = attackInputProblems(model, x, y, options);
  const { epsilon, steps, stepSize, restarts, seed, firstRow = 0 } = options;
  if (!(Number.isFinite(epsilon) && epsilon >= 0)) problems.push(`epsilon: expected finite ε ≥ 0, found ${epsilon}`);
  if (!(Number.isInteger(steps) && steps >= 1)) problems.push(`steps: expected an integer ≥ 1, found ${steps}`);
  if (!(Number.isFinite(stepSize) && stepSize > 0)) problems.push(`stepSize: expected a finite α > 0, found ${stepSize}`);
  if (!(Number.isInteger(restarts) && restarts >= 1)) problems.push(`restarts: expected an integer ≥ 1, found ${restarts}`);
  else if (restarts > 1 && !options.randomStart)
    problems.push(`restarts: ${restarts} runs from x itself would all be the same run; expected 1 without randomStart`);
  if (!Number.isInteger(seed)) problems.push(`seed: expected an integer, found ${seed}`);
  if (!(Number.isInteger(firstRow) && firstRow >= 0)) problems.push(`firstRow: expected an integer ≥ 0, found ${firstRow}`);
  if (problems.length > 0) throw new FgsmError(`iterativeGradientSign: ${problems.join('; ')}`);
}

/** x + U(−ε, ε) per pixel, each row drawn from its own stream (see IterativeOptions.seed). */
function randomStart(x: tf.Tensor2D, options: IterativeOptions, restart: number): tf.Tensor2D {
  const [n, d] = x.shape;
  const noise = new Float32Array(n * d);
  const firstRow = options.firstRow ?? 0;
  for (let i = 0; i < n; i++) {
    stream(options.seed, 'random-start', restart, firstRow + i).fillUniform(noise.subarray(i * d, (i + 1) * d), -options.epsilon, options.epsilon);
  }
  return tf.tidy(() => tf.add(x, tf.tensor2d(noise, [n, d])));
}

/** One run: the start, then `steps` signed-gradient steps, each projected onto the ε-ball and the clip bounds. */
function run(model: Classifier, x: tf.Tensor2D, labels: tf.Tensor1D, options: IterativeOptions, restart: number): tf.Tensor2D {
  const lower = tf.sub(x, options.epsilon);
  const upper = tf.add(x, options.epsilon);
  const project = (point: tf.Tensor2D): tf.Tensor2D => {
    const inBall = tf.minimum(tf.maximum(point, lower), upper);
    return (options.clip ? tf.clipByValue(inBall, options.clip[0], options.clip[1]) : inBall) as tf.Tensor2D;
  };
  try {
    let current = options.randomStart ? tf.tidy(() => project(randomStart(x, options, restart))) : tf.clone(x);
    for (let step = 0; step < options.steps; step++) {
      const next = tf.tidy(() => {
        const sign = exactSign(inputGradient(model, current, labels, { gradient: options.gradient }));
        // targeted: down the target's loss
        const direction = options.target === null ? sign : tf.neg(sign);
        return project(tf.add(current, tf.mul(direction, options.stepSize)) as tf.Tensor2D);
      });
      current.dispose();
      current = next;
    }
    return current;
  } finally {
    tf.dispose([lower, upper]);
  }
}

/** Per example, how well the attack did at `point`: whether it succeeded (1 or 0) and the loss it climbs. */
function outcome(model: Classifier, point: tf.Tensor2D, labels: tf.Tensor1D, targeted: boolean): { success: tf.Tensor1D; objective: tf.Tensor1D } {
  return tf.tidy(() => {
    const logits = model.logits(point);
    // from the probabilities: logistic regression has one logit for its two classes
    const predicted = tf.argMax(model.probabilities(logits), 1);
    const loss = model.loss(logits, labels);
    const success = tf.cast(targeted ? tf.equal(predicted, labels) : tf.notEqual(predicted, labels), 'float32') as tf.Tensor1D;
    return { success, objective: (targeted ? tf.neg(loss) : loss) as tf.Tensor1D };
  });
}

/**
 * The basic iterative method (Kurakin, Goodfellow & Bengio, "Adversarial Examples in the Physical World", 2017)
 * and projected gradient descent (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
 * 2018): x̃₀ = x (BIM) or x + U(−ε, ε) (PGD), x̃ₜ₊₁ = Π(x̃ₜ ± α·sign(∇ₓJ(θ, x̃ₜ, y))) with Π the projection onto
 * {‖x̃ − x‖∞ ≤ ε} and then the clip bounds; + for an untargeted attack, − down a target's loss. J is the model's
 * cross-entropy from its logits in the deterministic network, the labels fixed on the clean x (see lossLabels);
 * sign(0) = 0. With restarts, per example the worst run is kept (see IterativeOptions.restarts).
 */
export function iterativeGradientSign(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D | null, options: IterativeOptions): IterativeResult {
  validate(model, x, y, options);
  const labels = lossLabels(model, x, y, options);
  const targeted = options.target !== null;
  try {
    let best = run(model, x, labels, options, 0);
    if (options.restarts === 1) return { adversarial: best };
    let bestOutcome = outcome(model, best, labels, targeted);
    for (let restart = 1; restart < options.restarts; restart++) {
      const candidate = run(model, x, labels, options, restart);
      const candidateOutcome = outcome(model, candidate, labels, targeted);
      const [kept, keptOutcome] = tf.tidy(() => {
        const better = tf.reshape(
          tf.logicalOr(
            tf.greater(candidateOutcome.success, bestOutcome.success),
            tf.logicalAnd(tf.equal(candidateOutcome.success, bestOutcome.success), tf.greater(candidateOutcome.objective, bestOutcome.objective)),
          ),
          [-1, 1],
        );
        return [
          tf.where(better, candidate, best) as tf.Tensor2D,
          {
            success: tf.reshape(
              tf.where(better, tf.reshape(candidateOutcome.success, [-1, 1]), tf.reshape(bestOutcome.success, [-1, 1])),
              [-1],
            ) as tf.Tensor1D,
            objective: tf.reshape(
              tf.where(better, tf.reshape(candidateOutcome.objective, [-1, 1]), tf.reshape(bestOutcome.objective, [-1, 1])),
              [-1],
            ) as tf.Tensor1D,
          },
        ] as const;
      });
      tf.dispose([best, candidate, bestOutcome.success, bestOutcome.objective, candidateOutcome.success, candidateOutcome.objective]);
      best = kept;
      bestOutcome = keptOutcome;
    }
    tf.dispose([bestOutcome.success, bestOutcome.objective]);
    return { adversarial: best };
  } finally {
    labels.dispose();
  }
}
