import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { fastGradientSign, type FgsmOptions } from '../src/attacks/fgsm.js';
import { iterativeGradientSign, type IterativeOptions } from '../src/attacks/iterative.js';
import { stream } from '../src/core/rng.js';
import { SOFTMAX_GRADIENTS } from '../src/config/schema.js';
import type { Classifier, SoftmaxGradient } from '../src/models/classifier.js';
import { softmaxCrossEntropy } from '../src/models/linear.js';
import { float64LossGradient, lossOf, model, randomImages, randomLabels, useWasm } from './helpers.js';

const N = 48;
const PGD: IterativeOptions = {
  epsilon: 0.1,
  steps: 5,
  stepSize: 0.03,
  randomStart: true,
  restarts: 1,
  seed: 7,
  clip: [0, 1],
  labels: 'true',
  target: null,
};
const BIM: IterativeOptions = { ...PGD, randomStart: false };

/** Runs the iterative attack and returns x̃ as a plain array, disposing every tensor it made. */
function iterative(m: Classifier, x: Float32Array, y: Int32Array, options: IterativeOptions): Float32Array {
  const xt = tf.tensor2d(x, [y.length, 784]);
  const yt = tf.tensor1d(y, 'int32');
  const { adversarial } = iterativeGradientSign(m, xt, yt, options);
  const out = adversarial.dataSync() as Float32Array;
  tf.dispose([xt, yt, adversarial]);
  return out;
}

function fgsm(m: Classifier, x: Float32Array, y: Int32Array, options: FgsmOptions): Float32Array {
  const xt = tf.tensor2d(x, [y.length, 784]);
  const yt = tf.tensor1d(y, 'int32');
  const result = fastGradientSign(m, xt, yt, { ...options, countZeroGradients: false });
  const out = result.adversarial[0]!.dataSync() as Float32Array;
  tf.dispose([xt, yt, result.direction, ...result.adversarial]);
  return out;
}

/** The model's errors on `x` against `y`. */
function errors(m: Classifier, x: Float32Array, y: Int32Array): number {
  const predicted = tf.tidy(() => tf.argMax(m.probabilities(m.logits(tf.tensor2d(x, [y.length, 784]))), 1).dataSync() as Int32Array);
  return predicted.reduce((wrong, c, i) => wrong + (c === y[i] ? 0 : 1), 0);
}

/** Fails unless every pixel of x̃ lies in the ε-ball around x (its bounds x ± ε rounded to float32) and in `clip`. */
function assertWithinBounds(x: Float32Array, adversarial: Float32Array, epsilon: number, clip: readonly [number, number] | null, what: string): void {
  const e = Math.fround(epsilon);
  for (let i = 0; i < x.length; i++) {
    const v = adversarial[i]!;
    assert.ok(v >= Math.fround(x[i]! - e) && v <= Math.fround(x[i]! + e), `${what}, pixel ${i}: ${v} is more than ε = ${epsilon} from ${x[i]}`);
    if (clip) assert.ok(v >= clip[0] && v <= clip[1], `${what}, pixel ${i}: ${v} outside [${clip}]`);
  }
}

describe('iterative attacks (BIM, PGD)', () => {
  before(useWasm);

  test('on a linear model FGSM is the optimal L∞ attack: unclipped PGD has exactly its error (random models and ε)', () => {
    const rng = stream(11, 'linear-cases');
    for (let trial = 0; trial < 6; trial++) {
      const m = model('logistic', 0.02 + 0.1 * rng.next(), 20 + trial);
      const x = randomImages(N, 30 + trial);
      const y = randomLabels(N, 2, 30 + trial);
      const epsilon = 0.02 + 0.3 * rng.next();
      const single = fgsm(m, x, y, { epsilons: [epsilon], clip: null, labels: 'true', target: null });
      const options: IterativeOptions = { ...PGD, epsilon, clip: null, steps: 10, stepSize: epsilon / 4, restarts: 2, seed: trial };
      const multi = iterative(m, x, y, options);
      assert.ok(errors(m, single, y) > errors(m, x, y), `trial ${trial}: the attack must change something to compare`);
      assert.equal(errors(m, multi, y), errors(m, single, y), `trial ${trial}, ε = ${epsilon}`);
      m.dispose();
    }
  });

  test('one step from x with α = ε is FGSM exactly (clipped or not, untargeted or targeted, either gradient)', () => {
    for (const kind of ['softmax', 'maxout'] as const) {
      const m = model(kind, 0.3);
      const x = randomImages(N, 2);
      const y = randomLabels(N, 10, 2);
      for (const clip of [null, [0, 1] as const]) {
        for (const target of [null, 'least-likely'] as const) {
          for (const gradient of ['standard', 'stable'] as const) {
            const one: IterativeOptions = { ...BIM, epsilon: 0.25, steps: 1, stepSize: 0.25, clip, target, gradient };
            const expected = fgsm(m, x, y, { epsilons: [0.25], clip, labels: 'true', target, gradient });
            assert.deepEqual(iterative(m, x, y, one), expected, `${kind}, clip ${clip}, target ${target}, ${gradient}`);
          }
        }
      }
      m.dispose();
    }
  });

  test('every iterate stays within ε of x and within the clip bounds', () => {
    const m = model('maxout', 0.3);
    const x = randomImages(N, 3);
    const y = randomLabels(N, 10, 3);
    // x̃ after s steps is the s-th iterate of any longer run with the same start
    for (const base of [BIM, PGD]) {
      for (const clip of [null, [0, 1] as const]) {
        for (let steps = 1; steps <= 6; steps++) {
          const adversarial = iterative(m, x, y, { ...base, steps, stepSize: 0.04, clip });
          assertWithinBounds(x, adversarial, base.epsilon, clip, `random start ${base.randomStart}, clip ${clip}, step ${steps}`);
        }
      }
    }
    m.dispose();
  });

  test('iterating raises the loss beyond FGSM on a maxout network', () => {
    const m = model('maxout', 0.3);
    const x = randomImages(N, 4);
    const y = randomLabels(N, 10, 4);
    const single = lossOf(m, fgsm(m, x, y, { epsilons: [0.1], clip: [0, 1], labels: 'true', target: null }), y);
    const multi = lossOf(m, iterative(m, x, y, { ...BIM, steps: 10, stepSize: 0.02 }), y);
    const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
    assert.ok(sum(multi) > sum(single), `mean loss ${sum(multi) / N} after BIM-10, ${sum(single) / N} after FGSM`);
    m.dispose();
  });

  test('random starts are seeded: the same seed gives the same examples, another seed others', () => {
    const m = model('maxout', 0.3);
    const x = randomImages(N, 5);
    const y = randomLabels(N, 10, 5);
    const first = iterative(m, x, y, PGD);
    assert.deepEqual(iterative(m, x, y, PGD), first);
    assert.notDeepEqual(iterative(m, x, y, { ...PGD, seed: 8 }), first);
    m.dispose();
  });

  test('does not depend on the batch size (random starts and restarts included)', () => {
    const m = model('maxout', 0.3);
    const x = randomImages(N, 6);
    const y = randomLabels(N, 10, 6);
    const options: IterativeOptions = { ...PGD, restarts: 3 };
    const whole = iterative(m, x, y, options);
    for (const size of [1, 7, 32]) {
      const pieces = new Float32Array(x.length);
      for (let s = 0; s < N; s += size) {
        const e = Math.min(N, s + size);
        pieces.set(iterative(m, x.subarray(s * 784, e * 784), y.subarray(s, e), { ...options, firstRow: s }), s * 784);
      }
      assert.deepEqual(pieces, whole, `batch size ${size}`);
    }
    m.dispose();
  });

  test('restarts keep, per example, the worst run: never fewer errors or a lower loss on an unbroken example than one run', () => {
    const m = model('maxout', 0.3);
    const x = randomImages(N, 7);
    const y = randomLabels(N, 10, 7);
    const one = iterative(m, x, y, { ...PGD, steps: 2 }); // run 0 of every restart count
    const four = iterative(m, x, y, { ...PGD, steps: 2, restarts: 4 });
    const wrong = (a: Float32Array) =>
      tf.tidy(() => tf.notEqual(tf.argMax(m.logits(tf.tensor2d(a, [N, 784])), 1), tf.tensor1d(y, 'int32')).dataSync());
    const [oneWrong, fourWrong] = [wrong(one), wrong(four)];
    const [oneLoss, fourLoss] = [lossOf(m, one, y), lossOf(m, four, y)];
    let improved = 0;
    for (let i = 0; i < N; i++) {
      assert.ok(fourWrong[i]! >= oneWrong[i]!, `example ${i}: misclassified after one run, not after four`);
      if (fourWrong[i] === oneWrong[i]) assert.ok(fourLoss[i]! >= oneLoss[i]!, `example ${i}: loss ${fourLoss[i]} < ${oneLoss[i]}`);
      if (fourLoss[i]! > oneLoss[i]!) improved++;
    }
    assert.ok(improved > 0, 'the other runs must win somewhere');
    m.dispose();
  });

  test('targeted at the least likely class, steps lower that class’s loss', () => {
    const m = model('softmax', 0.3);
    const x = randomImages(N, 8);
    const y = randomLabels(N, 10, 8);
    const leastLikely = tf.tidy(() => tf.argMin(m.logits(tf.tensor2d(x, [N, 784])), 1).dataSync() as Int32Array);
    const adversarial = iterative(m, x, y, { ...PGD, target: 'least-likely', restarts: 2 });
    const [before, after] = [lossOf(m, x, leastLikely), lossOf(m, adversarial, leastLikely)];
    for (let i = 0; i < N; i++) assert.ok(after[i]! < before[i]!, `example ${i}: target loss ${before[i]} → ${after[i]}`);
    m.dispose();
  });

  test('leaves the input untouched and leaks no tensor', () => {
    for (const kind of ['softmax', 'maxout'] as const) {
      const m = model(kind);
      const xt = tf.tensor2d(randomImages(N, 9), [N, 784]);
      const yt = tf.tensor1d(randomLabels(N, 10, 9), 'int32');
      const x = xt.dataSync().slice();
      const tensorsBefore = tf.memory().numTensors;
      for (const options of [BIM, { ...PGD, restarts: 3, labels: 'predicted', target: 'least-likely', gradient: 'stable' } as const]) {
        iterativeGradientSign(m, xt, yt, options).adversarial.dispose();
        assert.equal(tf.memory().numTensors, tensorsBefore, kind);
      }
      assert.deepEqual(xt.dataSync(), x);
      tf.dispose([xt, yt]);
      m.dispose();
    }
  });

  test('rejects bad arguments with messages that say what was expected', () => {
    const m = model('softmax');
    const x = tf.zeros([2, 784]) as tf.Tensor2D;
    const y = tf.tensor1d([0, 1], 'int32');
    const bad: [Partial<IterativeOptions>, RegExp][] = [
      [{ steps: 0 }, /steps: expected an integer ≥ 1, found 0/],
      [{ stepSize: -1 }, /stepSize: expected a finite α > 0, found -1/],
      [{ epsilon: Number.NaN }, /epsilon: expected finite ε ≥ 0, found NaN/],
      [{ restarts: 2, randomStart: false }, /restarts: 2 runs from x itself would all be the same run/],
      [{ firstRow: -1 }, /firstRow: expected an integer ≥ 0, found -1/],
    ];
    for (const [change, message] of bad) assert.throws(() => iterativeGradientSign(m, x, y, { ...PGD, ...change }), message);
    assert.throws(() => iterativeGradientSign(m, x, null, PGD), /iterativeGradientSign: y: expected the true labels/);
    tf.dispose([x, y]);
    m.dispose();
  });
});

describe('the float32 formulations of the softmax cross-entropy gradient', () => {
  before(useWasm);

  /** ∂Σ J/∂z of logits [n, 10] with each formulation, as plain arrays. */
  const logitGradients = (logits: number[][], labels: number[]) =>
    Object.fromEntries(
      SOFTMAX_GRADIENTS.map((gradient) => [
        gradient,
        tf.tidy(() => {
          const y = tf.tensor1d(labels, 'int32');
          return tf
            .grad((z: tf.Tensor) => tf.sum(softmaxCrossEntropy(z as tf.Tensor2D, y, gradient)))(tf.tensor2d(logits))
            .dataSync() as Float32Array;
        }),
      ]),
    ) as Record<SoftmaxGradient, Float32Array>;

  test('agree to float32 rounding where nothing saturates', () => {
    const rng = stream(1, 'unsaturated-logits');
    const logits = Array.from({ length: 32 }, () => Array.from({ length: 10 }, () => -3 + 6 * rng.next()));
    const labels = logits.map((_, i) => i % 10);
    const gradients = logitGradients(logits, labels);
    for (const gradient of SOFTMAX_GRADIENTS) {
      gradients[gradient].forEach((g, i) => {
        const [row, k] = [Math.floor(i / 10), i % 10];
        const exact = float64LossGradient(logits[row]!, labels[row]!)[k]!;
        assert.ok(Math.abs(g - exact) < 1e-6, `${gradient}, example ${row}, class ${k}: ${g} vs float64 ${exact}`);
      });
    }
  });

  test('where p_y rounds to 1 the three float32 forms of p_y − 1 give 0 and stable the float64 value; near it they part', () => {
    // z_y 30 above nine others: p_y = 1 in float32 (and in float64: float64LossGradient writes p_y − 1 exactly)
    const saturated = logitGradients([[30, 0, 0, 0, 0, 0, 0, 0, 0, 0]], [0]);
    const exact = float64LossGradient([30, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0);
    for (const gradient of ['standard', 'softmax-minus-onehot', 'exp-log-softmax-minus-onehot'] as const) {
      assert.equal(saturated[gradient][0], 0, gradient);
      for (let k = 1; k < 10; k++) assert.ok(Math.abs(saturated[gradient][k]! / exact[k]! - 1) < 1e-5, `${gradient}, class ${k}`);
    }
    assert.ok(Math.abs(saturated.stable[0]! / exact[0]! - 1) < 1e-5, `stable: ${saturated.stable[0]} vs ${exact[0]}`);
    // z_y 17 above: Σ_{k≠y} p_k ≈ 3.7e-7, a few float32 ulps of 1. logsumexp's and log softmax's forms have rounded
    // p_y − 1 to 0 already; 1 / Σ exp(z − m) still falls one ulp below 1
    const edge = logitGradients([[17, 0, 0, 0, 0, 0, 0, 0, 0, 0]], [0]);
    assert.equal(edge.standard[0], 0);
    assert.equal(edge['exp-log-softmax-minus-onehot'][0], 0);
    assert.ok(edge['softmax-minus-onehot'][0]! < 0, `softmax-minus-onehot: ${edge['softmax-minus-onehot'][0]}`);
    assert.ok(edge.stable[0]! < 0);
  });
});
