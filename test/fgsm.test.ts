import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { fastGradientSign, type FgsmOptions } from '../src/attacks/fgsm.js';
import { lossLabels, lossLabelsOf, type AttackLabels } from '../src/attacks/gradient.js';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { SOFTMAX_GRADIENTS } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import { evaluate } from '../src/eval/evaluate.js';
import type { Classifier } from '../src/models/classifier.js';
import { exactSign } from '../src/backend/kernels.js';
import { float64LossGradient, lossOf, model, randomImages, randomLabels, useWasm } from './helpers.js';

const untargeted: FgsmOptions = { epsilons: [0.25], clip: null, labels: 'true', target: null };
const N = 64;

/** Runs the attack and returns plain arrays, disposing every tensor it made. */
function attack(m: Classifier, x: Float32Array, y: Int32Array, options: FgsmOptions) {
  const xt = tf.tensor2d(x, [y.length, 784]);
  const yt = tf.tensor1d(y, 'int32');
  const result = fastGradientSign(m, xt, yt, options);
  const out = {
    adversarial: result.adversarial.map((a) => a.dataSync() as Float32Array),
    direction: result.direction.dataSync() as Float32Array,
    zeroGradient: result.zeroGradient === null ? null : result.zeroGradient.dataSync()[0]!,
    input: xt.dataSync() as Float32Array,
  };
  tf.dispose([xt, yt, result.direction, ...result.adversarial, ...(result.zeroGradient ? [result.zeroGradient] : [])]);
  return out;
}

describe('fastGradientSign', () => {
  before(useWasm);

  test('on softmax regression equals the closed form x + ε·sign(W(p − onehot(y))) and raises every loss', () => {
    const m = model('softmax');
    const x = randomImages(N, 1);
    const y = randomLabels(N, 10, 1);
    const eps = 0.25;
    const { adversarial } = attack(m, x, y, untargeted);
    const w = m.parameters[0]!.variable.dataSync();
    const p = tf.tidy(() => m.probabilities(m.logits(tf.tensor2d(x, [N, 784]))).dataSync());
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < 784; j++) {
        let g = 0;
        for (let k = 0; k < 10; k++) g += w[j * 10 + k]! * (p[i * 10 + k]! - (k === y[i] ? 1 : 0));
        const expected = x[i * 784 + j]! + eps * Math.sign(g);
        assert.ok(
          Math.abs(adversarial[0]![i * 784 + j]! - expected) < 1e-6,
          `example ${i} pixel ${j}: ${adversarial[0]![i * 784 + j]} vs ${expected}`,
        );
      }
    }
    const before = lossOf(m, x, y);
    const after = lossOf(m, adversarial[0]!, y);
    for (let i = 0; i < N; i++) assert.ok(after[i]! > before[i]!, `example ${i}: loss ${before[i]} → ${after[i]}`);
    m.dispose();
  });

  test('on logistic regression equals the closed form x − ε·y·sign(w)', () => {
    const m = model('logistic');
    const x = randomImages(N, 2);
    const c = randomLabels(N, 2, 2);
    const { adversarial } = attack(m, x, c, untargeted);
    const w = m.parameters[0]!.variable.dataSync();
    for (let i = 0; i < N; i++) {
      const y = 2 * c[i]! - 1;
      for (let j = 0; j < 784; j++) {
        assert.equal(adversarial[0]![i * 784 + j], Math.fround(x[i * 784 + j]! - 0.25 * y * Math.sign(w[j]!)));
      }
    }
    m.dispose();
  });

  test('‖x̃ − x‖∞ ≤ ε, with equality wherever the gradient is non-zero and nothing is clipped', () => {
    const m = model('softmax');
    const x = randomImages(N, 3);
    const y = randomLabels(N, 10, 3);
    const epsilons = [0.1, 0.25, 0.3];
    const { adversarial, direction } = attack(m, x, y, { ...untargeted, epsilons });
    epsilons.forEach((eps, e) => {
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(adversarial[e]![i]! - x[i]!);
        assert.ok(d <= eps + 1e-6);
        if (direction[i] !== 0) assert.ok(Math.abs(d - eps) < 1e-6, `pixel ${i}: |Δ| = ${d}, ε = ${eps}`);
      }
    });
    m.dispose();
  });

  test('clipped outputs lie in [0, 1]; ε = 0 returns x exactly', () => {
    const m = model('softmax');
    const x = randomImages(N, 4);
    const y = randomLabels(N, 10, 4);
    const { adversarial } = attack(m, x, y, { ...untargeted, epsilons: [0, 0.5], clip: [0, 1] });
    assert.deepEqual(adversarial[0], x);
    assert.ok(adversarial[1]!.every((v) => v >= 0 && v <= 1));
    assert.ok(
      adversarial[1]!.some((v, i) => v !== x[i]),
      'the clipped attack must still move pixels',
    );
    m.dispose();
  });

  test('does not depend on the batch size', () => {
    const m = model('softmax');
    const x = randomImages(N, 5);
    const y = randomLabels(N, 10, 5);
    const whole = attack(m, x, y, untargeted).adversarial[0]!;
    for (const size of [1, 7, 32]) {
      const pieces = new Float32Array(x.length);
      for (let s = 0; s < N; s += size) {
        const e = Math.min(N, s + size);
        pieces.set(attack(m, x.subarray(s * 784, e * 784), y.subarray(s, e), untargeted).adversarial[0]!, s * 784);
      }
      assert.deepEqual(pieces, whole, `batch size ${size}`);
    }
    m.dispose();
  });

  test('leaves the input tensor untouched and leaks no tensor, with either gradient', () => {
    for (const kind of ['softmax', 'maxout'] as const) {
      const m = model(kind);
      const x = randomImages(N, 6);
      const y = randomLabels(N, 10, 6);
      const tensorsBefore = tf.memory().numTensors;
      for (const gradient of ['standard', 'stable'] as const) {
        const { input } = attack(m, x, y, { ...untargeted, epsilons: [0.1, 0.25], labels: 'predicted', target: 'least-likely', gradient });
        assert.deepEqual(input, x);
        assert.equal(tf.memory().numTensors, tensorsBefore, `${kind}, ${gradient}`);
      }
      m.dispose();
    }
  });

  test('every softmax gradient formulation gives identical examples where nothing saturates', () => {
    for (const kind of ['softmax', 'maxout'] as const) {
      const m = model(kind);
      const x = randomImages(N, 9);
      const y = randomLabels(N, 10, 9);
      const p = tf.tidy(() => m.probabilities(m.logits(tf.tensor2d(x, [N, 784]))).dataSync());
      assert.ok(
        p.every((v) => v < 0.99),
        'the control must be far from saturation',
      );
      for (const gradient of SOFTMAX_GRADIENTS)
        assert.deepEqual(attack(m, x, y, { ...untargeted, gradient }), attack(m, x, y, untargeted), `${kind}, ${gradient}`);
      m.dispose();
    }
  });

  test('where p_y rounds to 1, stable follows the float64 input gradient sign for sign; standard turns', () => {
    const m = model('softmax');
    const w = m.parameters.find((p) => p.name === 'W')!.variable;
    w.assign(tf.tidy(() => tf.mul(w, 80))); // logit gaps of 1 to 67: p_y rounds to 1 in half the examples, no p_k underflows
    const x = randomImages(N, 10);
    const { logits, predicted } = tf.tidy(() => {
      const z = m.logits(tf.tensor2d(x, [N, 784]));
      return { logits: z.dataSync() as Float32Array, predicted: tf.argMax(z, 1).dataSync() as Int32Array };
    });
    const p = tf.tidy(() => m.probabilities(tf.tensor2d(logits, [N, 10])).dataSync());
    const saturated = Array.from(predicted).filter((c, i) => p[i * 10 + c] === 1).length;
    assert.ok(saturated > N / 3, `only ${saturated} of ${N} examples saturate`);
    const ws = w.dataSync();
    const stable = attack(m, x, predicted, { ...untargeted, gradient: 'stable' }).direction;
    const standard = attack(m, x, predicted, untargeted).direction;
    let compared = 0;
    let standardTurned = 0;
    for (let i = 0; i < N; i++) {
      const dz = float64LossGradient(logits.subarray(i * 10, (i + 1) * 10), predicted[i]!);
      for (let j = 0; j < 784; j++) {
        let g = 0;
        let scale = 0;
        for (let k = 0; k < 10; k++) {
          g += ws[j * 10 + k]! * dz[k]!;
          scale += Math.abs(ws[j * 10 + k]! * dz[k]!);
        }
        if (Math.abs(g) < 1e-4 * scale) continue; // cancels to below float32's reach: its sign is noise
        compared++;
        assert.equal(stable[i * 784 + j], Math.sign(g), `example ${i} pixel ${j}: float64 gradient ${g}`);
        if (standard[i * 784 + j] !== Math.sign(g)) standardTurned++;
      }
    }
    assert.ok(compared > 0.95 * N * 784, `compared ${compared} pixels`);
    assert.ok(standardTurned > 0.1 * compared, `the standard gradient turned only ${standardTurned} of ${compared} signs`);

    // adversarial training makes x̃ with the objective's gradient
    const xTilde = (gradient: 'standard' | 'stable') =>
      tf.tidy(() => {
        const objective = { kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'deterministic', gradient } as const;
        return trainingPerturbation(objective)!
          .perturb(m, tf.tensor2d(x, [N, 784]), tf.tensor1d(predicted, 'int32'), [1])
          .dataSync();
      });
    assert.deepEqual(xTilde('stable'), attack(m, x, predicted, { ...untargeted, gradient: 'stable' }).adversarial[0]);
    assert.deepEqual(xTilde('standard'), attack(m, x, predicted, untargeted).adversarial[0]);
    assert.notDeepEqual(xTilde('stable'), xTilde('standard'));
    m.dispose();
  });

  test('counts examples whose input gradient is all zero (sign(0) = 0 leaves them unmoved)', () => {
    const m = model('softmax', 0); // zero weights: uniform probabilities, zero input gradient
    const x = randomImages(8, 7);
    const y = randomLabels(8, 10, 7);
    const result = attack(m, x, y, untargeted);
    assert.equal(result.zeroGradient, 8);
    assert.deepEqual(result.adversarial[0], x);
    const uncounted = attack(m, x, y, { ...untargeted, countZeroGradients: false });
    assert.equal(uncounted.zeroGradient, null);
    assert.deepEqual(uncounted.adversarial[0], x);
    m.dispose();
  });

  test('targeted steps lower the loss of the target class', () => {
    const m = model('softmax');
    const x = randomImages(N, 8);
    const y = randomLabels(N, 10, 8);
    const { adversarial } = attack(m, x, y, { ...untargeted, target: 'next' });
    const target = y.map((v) => (v + 1) % 10);
    const before = lossOf(m, x, target);
    const after = lossOf(m, adversarial[0]!, target);
    for (let i = 0; i < N; i++) assert.ok(after[i]! < before[i]!);
    m.dispose();
  });

  test('rejects bad arguments with messages that say what was expected', () => {
    const m = model('softmax');
    const x = tf.zeros([2, 10]) as tf.Tensor2D;
    assert.throws(() => fastGradientSign(m, x, tf.tensor1d([0, 1], 'int32'), untargeted), /x: expected shape \[N, 784\], found \[2,10\]/);
    const good = tf.zeros([2, 784]) as tf.Tensor2D;
    assert.throws(() => fastGradientSign(m, good, null, untargeted), /y: expected the true labels/);
    assert.throws(
      () => fastGradientSign(m, good, tf.tensor1d([0, 1], 'int32'), { ...untargeted, epsilons: [-1] }),
      /expected finite ε ≥ 0, found -1/,
    );
    tf.dispose([x, good]);
    m.dispose();
  });
});

describe('exact sign', () => {
  before(useWasm);

  test('sign of tiny gradients is ±1 (tfjs-wasm Sign returns 0 below ~1e-7)', () => {
    const values = [1e-3, 5e-8, 1e-12, 1e-30, -1e-30, -5e-8, 0];
    const ours = tf.tidy(() => Array.from(exactSign(tf.tensor1d(values)).dataSync()));
    assert.deepEqual(ours, [1, 1, 1, 1, -1, -1, 0]);
  });
});

describe('evaluation with both softmax gradients', () => {
  before(useWasm);

  test('measures the configured gradient and the other one, and counts the saturated test examples', async () => {
    const m = model('softmax');
    const w = m.parameters.find((p) => p.name === 'W')!.variable;
    w.assign(tf.tidy(() => tf.mul(w, 80)));
    const n = 64;
    const x = randomImages(n, 10);
    const { y, saturated } = tf.tidy(() => {
      const p = m.probabilities(m.logits(tf.tensor2d(x, [n, 784])));
      const predicted = tf.argMax(p, 1).dataSync() as Int32Array;
      const values = p.dataSync();
      return { y: predicted, saturated: Array.from(predicted).filter((c, i) => values[i * 10 + c] === 1).length };
    });
    const test = { name: 'test' as const, x, y, n };
    const run = async (gradient: 'standard' | 'stable') =>
      evaluate(m, test, {
        attack: { method: 'fgsm', epsilons: [0.01, 0.25], clip: 'none', labels: 'true', target: 'none', batchSize: 20, gradient },
        rubbishSamples: null,
        figureExamples: 0,
        seed: 1,
        progress: createProgress('quiet'),
      });
    const standard = await run('standard');
    const stable = await run('stable');
    assert.ok(saturated > n / 3);
    for (const eps of ['0.01', '0.25']) {
      assert.equal(standard.fgsm[eps]!.gradient, 'standard');
      assert.equal(standard.fgsmOtherGradient[eps]!.gradient, 'stable');
      assert.equal(standard.fgsm[eps]!.saturated, saturated);
      // configuring the other gradient swaps the two, nothing else
      assert.deepEqual(stable.fgsm[eps], standard.fgsmOtherGradient[eps]);
      assert.deepEqual(stable.fgsmOtherGradient[eps], standard.fgsm[eps]);
    }
    // these logits are tens apart: a small step tells the two apart (at ε = .25 both reach 100%)
    const [turned, kept] = [standard.fgsm['0.01']!.error, standard.fgsmOtherGradient['0.01']!.error];
    assert.ok(kept > turned, `stable ${kept} vs standard ${turned}: the turned gradient should attack worse`);
    m.dispose();
  });
});

describe('the labels J takes, from the clean probabilities on the host', () => {
  before(useWasm);

  test('lossLabelsOf gives lossLabels for every choice on softmax, maxout and logistic regression; ties go to the first class', () => {
    const choices: AttackLabels[] = [
      { labels: 'true', target: null },
      { labels: 'predicted', target: null },
      { labels: 'true', target: 'next' },
      { labels: 'predicted', target: 'next' },
      { labels: 'predicted', target: 'least-likely' },
      { labels: 'true', target: 1 },
    ];
    for (const kind of ['softmax', 'maxout', 'logistic'] as const) {
      const m = model(kind, 0.5, 9);
      const k = m.spec.classes.length;
      const x = tf.tensor2d(randomImages(N, 12), [N, 784]);
      const y = randomLabels(N, k, 12);
      const probabilities = tf.tidy(() => m.probabilities(m.logits(x)).dataSync() as Float32Array);
      for (const choice of choices) {
        const expected = tf.tidy(() => lossLabels(m, x, tf.tensor1d(y, 'int32'), choice).dataSync() as Int32Array);
        assert.deepEqual(lossLabelsOf(probabilities, y, k, choice), expected, `${kind}, ${JSON.stringify(choice)}`);
      }
      tf.dispose(x);
      m.dispose();
    }
    const tied = Float32Array.from([0.4, 0.4, 0.1, 0.1]);
    assert.deepEqual(lossLabelsOf(tied, Int32Array.from([0]), 4, { labels: 'predicted', target: null }), Int32Array.from([0]));
    assert.deepEqual(lossLabelsOf(tied, Int32Array.from([0]), 4, { labels: 'true', target: 'least-likely' }), Int32Array.from([2]));
    assert.throws(() => lossLabelsOf(tied, Int32Array.from([0, 1]), 4, { labels: 'true', target: null }), /2 rows of 4 classes, not 4 values/);
  });
});
