import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { agreementCounts } from '../src/eval/agreement.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier } from '../src/models/classifier.js';
import { EnsembleClassifier } from '../src/models/ensemble.js';
import { assignParameters } from '../src/models/weights-io.js';
import { fgsmCli, model, randomImages, realDataDir, SMALL_MAXOUT, tempDir, useWasm, tinySoftmaxYaml } from './helpers.js';

const fgsm = fgsmCli;

/** Softmax regression over 3 classes that looks at pixels 0 and 1 only: z = x₀·w0 + x₁·w1 + b. */
function tinySoftmax(w0: number[], w1: number[], b: number[]): Classifier {
  const model = buildModel({ kind: 'softmax', inputSize: 784, classes: [0, 1, 2], maxColumnNorm: null }, 0, 1);
  const w = new Float32Array(784 * 3);
  w.set(w0, 0);
  w.set(w1, 3);
  const values = { W: tf.tensor2d(w, [784, 3]), b: tf.tensor1d(b) };
  assignParameters(model, values, 'test');
  tf.dispose(Object.values(values));
  return model;
}

const softmax64 = (z: number[]) => {
  const max = Math.max(...z);
  const e = z.map((v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('ensemble classifier', () => {
  before(useWasm);
  const members = [
    { w0: [1, -2, 0.5], w1: [0.3, 0.8, -1], b: [0, 0.1, -0.2] },
    { w0: [-0.5, 1.5, 0.2], w1: [1, -0.4, 0.6], b: [0.2, 0, 0.1] },
  ];
  const x0 = [0.3, 0.7];

  test('its probabilities are the mean of its members’, and FGSM through it follows the closed-form gradient', () => {
    const models = members.map((m) => tinySoftmax(m.w0, m.w1, m.b));
    const ensemble = new EnsembleClassifier(models);
    const before = tf.memory().numTensors;
    const x = new Float32Array(784);
    x.set(x0);
    const [p, gradient, direction] = tf.tidy(() => {
      const input = tf.tensor2d(x, [1, 784]);
      const y = tf.tensor1d([2], 'int32');
      const g = tf.grad((v: tf.Tensor) => tf.sum(ensemble.loss(ensemble.logits(v as tf.Tensor2D), y)))(input);
      const { adversarial, direction } = fastGradientSign(ensemble, input, y, { epsilons: [0.25], clip: null, labels: 'true', target: null });
      tf.dispose(adversarial);
      return [ensemble.probabilities(ensemble.logits(input)).dataSync(), g.dataSync(), direction.dataSync()];
    });
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');

    // float64 by hand: p_m = softmax(W_mᵀx + b_m), p̄ = mean; ∇ₓ(−log p̄_y) = −Σ_m p_m,y (W_m[·,y] − Σ_k p_m,k W_m[·,k]) / (M p̄_y)
    const pm = members.map((m) => softmax64([0, 1, 2].map((k) => x0[0]! * m.w0[k]! + x0[1]! * m.w1[k]! + m.b[k]!)));
    const mean = [0, 1, 2].map((k) => (pm[0]![k]! + pm[1]![k]!) / 2);
    mean.forEach((v, k) => assert.ok(Math.abs(p![k]! - v) < 1e-6, `p̄_${k}: ${p![k]} vs ${v}`));
    const y = 2;
    const byHand = [0, 1].map((pixel) => {
      let sum = 0;
      members.forEach((m, i) => {
        const w = pixel === 0 ? m.w0 : m.w1;
        const expected = [0, 1, 2].reduce((acc, k) => acc + pm[i]![k]! * w[k]!, 0);
        sum += pm[i]![y]! * (w[y]! - expected);
      });
      return -sum / (2 * mean[y]!);
    });
    byHand.forEach((v, pixel) => assert.ok(Math.abs(gradient![pixel]! - v) < 1e-5, `∂J/∂x${pixel}: ${gradient![pixel]} vs ${v}`));
    assert.deepEqual([direction![0], direction![1], direction![2]], [Math.sign(byHand[0]!), Math.sign(byHand[1]!), 0]);
    for (const m of models) m.dispose();
  });

  test('a class every member gives p = 0 in float32 keeps a finite logit and gradient', () => {
    // the members' logits differ by 200 between classes: exp(−200) underflows float32 to 0
    const models = [tinySoftmax([0, 1, 0], [0, 0, 1], [200, 0, 0]), tinySoftmax([0, 1, 0], [1, 0, 0], [200, 0, 1])];
    const ensemble = new EnsembleClassifier(models);
    const [logits, gradient] = tf.tidy(() => {
      const input = tf.zeros([1, 784]) as tf.Tensor2D;
      const y = tf.tensor1d([1], 'int32');
      const g = tf.grad((v: tf.Tensor) => tf.sum(ensemble.loss(ensemble.logits(v as tf.Tensor2D), y)))(input);
      return [ensemble.logits(input).dataSync(), g.dataSync()];
    });
    // both members: log p_1 = −logsumexp(200, 0, 0 or 1) ≈ −200, so log p̄_1 ≈ −200 (p̄_1 itself is 0 in float32)
    assert.ok(Math.abs(logits![1]! + 200) < 1e-3, `log p̄_1 ≈ −200: ${logits![1]}`);
    assert.ok(gradient!.every(Number.isFinite), 'no NaN or ∞ in ∇ₓJ');
    assert.ok(gradient![0]! < 0, 'pixel 0 raises class 1: the loss falls');
    for (const m of models) m.dispose();
  });

  test('every member kind’s logProbabilities is the log of its probabilities', () => {
    const kinds = [
      model('softmax'),
      model('logistic'),
      model('maxout'),
      buildModel(
        { kind: 'maxout', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: null, ...SMALL_MAXOUT, top: 'sigmoid' },
        0.05,
        3,
      ),
    ];
    const x = tf.tensor2d(randomImages(4, 5), [4, 784]);
    for (const m of kinds) {
      const [log, p] = tf.tidy(() => {
        const z = m.logits(x);
        return [m.logProbabilities(z).dataSync(), m.probabilities(z).dataSync()];
      });
      log!.forEach((v, i) => assert.ok(Math.abs(Math.exp(v) - p![i]!) < 1e-6, `${m.spec.kind}: exp(${v}) vs ${p![i]}`));
      m.dispose();
    }
    x.dispose();
  });

  test('with members saturated in float32, the stable gradient is the float64 one and the standard one turns', () => {
    // both members give class 0 a logit ~40 above the others: p_0 rounds to 1 in float32, 1 − p_0 ≈ 1e-17 does not
    const weights = [
      { w0: [2, -1, 0.5], w1: [-1, 0.3, 0.8], b: [40, 0, 0] },
      { w0: [1.5, -0.5, 0.7], w1: [-0.8, 0.2, 0.6], b: [41, 0.5, 0] },
    ];
    const models = weights.map((m) => tinySoftmax(m.w0, m.w1, m.b));
    const ensemble = new EnsembleClassifier(models);
    const x = new Float32Array(784);
    x.set(x0);
    const before = tf.memory().numTensors;
    const [standard, stable] = (['standard', 'stable'] as const).map((gradient) =>
      tf.tidy(() => {
        const input = tf.tensor2d(x, [1, 784]);
        const y = tf.tensor1d([0], 'int32');
        const state = { dropoutSeed: null, gradients: 'input' as const, softmaxGradient: gradient };
        const g = tf.grad((v: tf.Tensor) => tf.sum(ensemble.loss(ensemble.logits(v as tf.Tensor2D, state), y)))(input);
        const { adversarial, direction } = fastGradientSign(ensemble, input, y, {
          epsilons: [0.25],
          clip: null,
          labels: 'true',
          target: null,
          gradient,
        });
        tf.dispose(adversarial);
        return [...g.dataSync().slice(0, 2), ...direction.dataSync().slice(0, 2)];
      }),
    );
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');

    // float64: ∇ₓJ = Σ_m w_m Σ_j (p_m,j − [j = 0]) W_m[·, j], w_m = p_m,0 / Σ p_m',0, p_m,0 − 1 = −Σ_{k≠0} p_m,k
    const pm = weights.map((m) => softmax64([0, 1, 2].map((k) => x0[0]! * m.w0[k]! + x0[1]! * m.w1[k]! + m.b[k]!)));
    const total = pm.reduce((sum, p) => sum + p[0]!, 0);
    const byHand = [0, 1].map((pixel) =>
      weights.reduce((sum, m, i) => {
        const w = pixel === 0 ? m.w0 : m.w1;
        const p = pm[i]!;
        return sum + (p[0]! / total) * (-(p[1]! + p[2]!) * w[0]! + p[1]! * w[1]! + p[2]! * w[2]!);
      }, 0),
    );
    byHand.forEach((v, pixel) => assert.ok(Math.abs(stable![pixel]! - v) < 1e-4 * Math.abs(v), `stable ∂J/∂x${pixel}: ${stable![pixel]} vs ${v}`));
    assert.deepEqual(stable!.slice(2), byHand.map(Math.sign), 'stable: FGSM steps as float64 says');
    assert.notDeepEqual(standard!.slice(2), byHand.map(Math.sign), 'standard: the saturated gradient turns');
    for (const m of models) m.dispose();
  });

  test('refuses members of different tasks', () => {
    const a = tinySoftmax([1, 0, 0], [0, 1, 0], [0, 0, 0]);
    const ten = buildModel({ kind: 'softmax', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: null }, 0.01, 1);
    assert.throws(() => new EnsembleClassifier([a, ten]), /a member classifies \[0,1,2,3,4,5,6,7,8,9\]/);
    a.dispose();
    ten.dispose();
  });
});

describe('agreement (§8)', () => {
  test('the rates on hand-made predictions, with their denominators', () => {
    // 8 examples. source (maxout) errs on 1–7 (example 0 is right, so it counts nowhere).
    const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0]);
    const source = Int32Array.from([0, 1, 1, 2, 2, 3, 3, 4]);
    const rbf = Int32Array.from([1, 1, 0, 2, 0, 5, 6, 0]); // = source on 1, 3; errs on 0(n/a), 1, 3, 5, 6
    const softmax = Int32Array.from([0, 1, 1, 2, 7, 3, 0, 0]); // = source on 1, 2, 3, 5; errs on 1, 2, 3, 4, 5
    const counts = agreementCounts(labels, source, [
      { name: 'rbf', predicted: rbf },
      { name: 'softmax', predicted: softmax },
    ]);
    assert.deepEqual(counts, {
      rbfAll: { agree: 2, of: 7, rate: 2 / 7 },
      rbfBothErr: { agree: 2, of: 4, rate: 2 / 4 }, // rbf errs on 1, 3, 5, 6
      softmaxAll: { agree: 4, of: 7, rate: 4 / 7 },
      softmaxBothErr: { agree: 4, of: 5, rate: 4 / 5 }, // softmax errs on 1, 2, 3, 4, 5
      rbfSoftmax: { agree: 3, of: 7, rate: 3 / 7 }, // the same class on 1, 3 and 7 (both 0 there: right, so not both err)
      rbfSoftmaxBothErr: { agree: 2, of: 3, rate: 2 / 3 }, // both err on 1, 3, 5: the same class on 1 and 3
    });
    assert.deepEqual(agreementCounts(labels, labels, [{ name: 'rbf', predicted: rbf }]).rbfAll, { agree: 0, of: 0, rate: null });
  });
});

describe('experiments over runs from the command line', () => {
  test('agreement and ensemble: refuse missing runs and a members file without seeds; with --train-missing they train, measure and record', () => {
    const dir = tempDir();
    const small = tinySoftmaxYaml;
    writeFileSync(join(dir, 'a.yaml'), small('a', 'seed: 1'));
    writeFileSync(join(dir, 'b.yaml'), small('b', 'seed: 2'));
    writeFileSync(join(dir, 'members.yaml'), small('member', 'seeds: [1, 2]'));
    writeFileSync(join(dir, 'agree.yaml'), 'kind: agreement\nname: agree\nbackend: wasm\nuses: { a: a.yaml, b: b.yaml }\nsource: a\n');
    writeFileSync(join(dir, 'ens.yaml'), 'kind: ensemble\nname: ens\nbackend: wasm\nuses: { members: members.yaml }\n');
    writeFileSync(join(dir, 'one.yaml'), 'kind: ensemble\nname: one\nbackend: wasm\nuses: { members: a.yaml }\n');
    const results = join(dir, 'results');
    const env = { FGSM_DATA_DIR: realDataDir() };

    const missing = fgsm(['run', join(dir, 'ens.yaml'), '--results-dir', results], env);
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(missing.stderr, /seed1: no complete run of member \(config hash \w+\)/);
    assert.match(missing.stderr, /fgsm run \S+members\.yaml --set seed=1 --set seeds=null/);
    const noSeeds = fgsm(['run', join(dir, 'one.yaml'), '--results-dir', results], env);
    assert.equal(noSeeds.status, 2, noSeeds.stderr);
    assert.match(noSeeds.stderr, /a\.yaml has no seeds: list/);

    const ran = fgsm(['run', join(dir, 'agree.yaml'), join(dir, 'ens.yaml'), '--results-dir', results, '--train-missing', '-q'], env);
    assert.equal(ran.status, 0, ran.stderr);
    const record = (name: string) => JSON.parse(readFileSync(join(results, name, readdirSync(join(results, name))[0]!, 'result.json'), 'utf8'));
    const agree = record('agree');
    assert.equal(agree.format, 'fgsm-agreement/1');
    const c = agree.metrics.byEpsilon[0].counts.bAll;
    assert.equal(agree.metrics.agreement.bAll, c.rate);
    assert.equal(c.of, Math.round(agree.metrics.byEpsilon[0].errors.a * 300), 'bAll counts the examples the source misclassifies');
    const other = agree.metrics.otherGradient;
    assert.equal(other.gradient, 'stable');
    assert.equal(other.agreement.bAll, other.byEpsilon[0].counts.bAll.rate);
    const csv = readFileSync(join(results, 'agree', readdirSync(join(results, 'agree'))[0]!, 'agreement.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv[0], 'gradient,epsilon,source,rate,agree,of');
    assert.deepEqual([...new Set(csv.slice(1).map((line) => line.split(',')[0]))], ['standard', 'stable']);

    const ens = record('ens');
    assert.equal(ens.format, 'fgsm-ensemble/1');
    assert.deepEqual(
      ens.uses.map((u: { name: string; overrides: string[] }) => [u.name, u.overrides]),
      [
        ['seed1', ['seed=1', 'seeds=null']],
        ['seed2', ['seed=2', 'seeds=null']],
      ],
    );
    const { whole, member } = ens.metrics.ensemble;
    assert.ok(whole.error > 0.5, `FGSM against the ensemble fools it: ${whole.error}`);
    assert.equal(member.perMember.length, 2);
    assert.equal(member.error, (member.perMember[0].error + member.perMember[1].error) / 2);
    assert.equal(ens.metrics.otherGradient.gradient, 'stable');
    assert.equal(ens.metrics.otherGradient.ensemble.member.perMember.length, 2);
    const ensCsv = readFileSync(join(results, 'ens', readdirSync(join(results, 'ens'))[0]!, 'ensemble.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(ensCsv[0], 'gradient,epsilon,made_on,scored_by,error,mean_confidence_on_mistakes');
    assert.equal(ensCsv.length, 1 + 2 * 5, 'per gradient: the whole, and each member scored by the ensemble and by itself');
  });
});
