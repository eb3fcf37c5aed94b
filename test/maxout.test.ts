import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier, ModelSpec } from '../src/models/classifier.js';
import { stream } from '../src/core/rng.js';
import { counterDropoutMask } from '../src/core/counter-random.js';
import { dropoutMask, MaxoutNetwork } from '../src/models/maxout.js';
import { loadModel, saveModel } from '../src/models/weights-io.js';
import { denseMatMul, maxoutUnits } from '../src/backend/kernels.js';
import { minibatchObjective } from '../src/train/objective.js';
import { MomentumSgd } from '../src/train/sgd.js';
import {
  MAXOUT_TIE_GRADIENT,
  MAXOUT_TIE_UNITS,
  maxoutTieCase,
  model,
  randomImages,
  randomLabels,
  SMALL_MAXOUT,
  tempDir,
  useWasm,
} from './helpers.js';

const values = (t: tf.Tensor): number[] => Array.from(t.dataSync());
const maxDifference = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

function setParameters(m: Classifier, seed: number): void {
  m.parameters.forEach((p, i) => p.variable.assign(tf.randomUniform(p.variable.shape, -0.3, 0.3, 'float32', seed + i)));
}

describe('plain matMul gradient variants', () => {
  before(useWasm);

  test('input-only and parameters-only give the gradients of tf.matMul, and none for the constant operand', () => {
    tf.tidy(() => {
      const x = tf.randomUniform([13, 50], 0, 1, 'float32', 1) as tf.Tensor2D;
      const w = tf.randomUniform([50, 7], -1, 1, 'float32', 2) as tf.Tensor2D;
      const dy = tf.randomUniform([13, 7], -1, 1, 'float32', 3);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b), dy)))([x, w]);
      const inputOnly = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(denseMatMul(a as tf.Tensor2D, w, 'input'), dy)))(x);
      const weightsOnly = tf.grad((b: tf.Tensor) => tf.sum(tf.mul(denseMatMul(x, b as tf.Tensor2D, 'parameters'), dy)))(w);
      assert.ok(maxDifference(inputOnly, dx!) < 1e-5);
      assert.ok(maxDifference(weightsOnly, dw!) < 1e-5);
      // the other operand is a constant to the tape: its gradient is zero, not computed
      const none = tf.grad((b: tf.Tensor) => tf.add(tf.sum(tf.mul(denseMatMul(x, w, 'input'), dy)), tf.sum(b)))(w);
      assert.equal(tf.max(tf.abs(tf.sub(none, 1))).dataSync()[0], 0);
    });
  });
});

describe('maxout network', () => {
  before(useWasm);

  test('a unit is the max of its pieces; the softmax layer reads the units (hand-computed)', () => {
    const m = model('maxout');
    tf.tidy(() => {
      setParameters(m, 10);
      const x = tf.tensor2d(randomImages(3, 4), [3, 784]);
      const [w1, b1, w2, b2, w3, b3] = m.parameters.map((p) => p.variable as tf.Tensor);
      // piece p of unit u is column p·units + u
      const maxout = (h: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D => {
        const z = tf.add(tf.matMul(h, w as tf.Tensor2D), b).arraySync() as number[][];
        return tf.tensor2d(z.map((row) => Array.from({ length: 12 }, (_, u) => Math.max(...[0, 1, 2].map((p) => row[p * 12 + u]!)))));
      };
      const expected = tf.add(tf.matMul(maxout(maxout(x, w1!, b1!), w2!, b2!), w3 as tf.Tensor2D), b3!);
      assert.ok(maxDifference(m.logits(x), expected) < 1e-5);
    });
    m.dispose();
  });

  test("maxout units: the gradient goes to the piece at the max, on a tie to the last one (pylearn2's)", () => {
    tf.tidy(() => {
      const ties = maxoutTieCase(maxoutUnits);
      assert.deepEqual(values(ties.units), MAXOUT_TIE_UNITS);
      assert.deepEqual(values(ties.gradient), MAXOUT_TIE_GRADIENT);
      // pylearn2's p = T.maximum(cur, p): tfjs's maximum, like Theano's, gives a tie's gradient to its first argument
      const pylearn2 = (v: tf.Tensor2D): tf.Tensor2D => (tf.split(v, 4, 1) as tf.Tensor2D[]).reduce((p, cur) => tf.maximum(cur, p));
      const dr = tf.randomUniform([50, 5], -1, 1, 'float32', 6);
      for (const r of [
        tf.randomUniform([50, 20], -1, 1, 'float32', 5),
        tf.round(tf.randomUniform([50, 20], -2, 2, 'float32', 7)), // many ties, some of 3 or 4 pieces
      ]) {
        const expected = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(pylearn2(v as tf.Tensor2D), dr)))(r);
        const actual = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(maxoutUnits(v as tf.Tensor2D, 4), dr)))(r);
        assert.deepEqual(values(actual), values(expected));
      }
    });
  });

  test('dropout masks: keep rates and scales as configured, a fresh mask per seed, tall masks extend short ones', () => {
    const mask = dropoutMask(200, 784, 0.8, 1, 7);
    const kept = mask.filter((v) => v === 1).length;
    assert.equal(kept + mask.filter((v) => v === 0).length, mask.length);
    assert.ok(Math.abs(kept / mask.length - 0.8) < 0.005, `kept ${kept / mask.length}`);
    const hidden = dropoutMask(100, 240, 0.5, 2, 7);
    assert.ok(hidden.every((v) => v === 0 || v === 2));
    assert.ok(Math.abs(hidden.filter((v) => v === 2).length / hidden.length - 0.5) < 0.01);
    assert.deepEqual(dropoutMask(100, 784, 0.8, 1, 7), mask.subarray(0, 100 * 784));
    assert.notDeepEqual(dropoutMask(100, 784, 0.8, 1, 8), mask.subarray(0, 100 * 784));
    // the bulk draw is the per-element draw u < keep·2³², and leaves the stream where those draws would
    const rng = stream(7);
    assert.deepEqual(
      mask,
      Float32Array.from(mask, () => (rng.nextUint32() < 0.8 * 2 ** 32 ? 1 : 0)),
    );
    const bulk = stream(7);
    bulk.fillBernoulli(new Float32Array(mask.length), 0.8, 1, 0);
    assert.equal(bulk.nextUint32(), rng.nextUint32());
  });

  test('the training state applies the masks; evaluation has no dropout; the same seed gives the same masks', () => {
    const m = model('maxout');
    tf.tidy(() => {
      setParameters(m, 20);
      const x = tf.tensor2d(randomImages(5, 5), [5, 784]);
      const training = (seed: number) => m.logits(x, { dropoutSeed: seed, gradients: 'parameters' });
      assert.deepEqual(values(training(3)), values(training(3)));
      assert.ok(maxDifference(training(3), training(4)) > 1e-3);
      assert.deepEqual(values(m.logits(x)), values(m.logits(x, { dropoutSeed: null, gradients: 'both' })));
      assert.ok(maxDifference(training(3), m.logits(x)) > 1e-3);
    });
    m.dispose();
  });

  test('dropout stream threefry-v1: the masks of counterDropoutMask under the step seed, layer 0 the input', () => {
    const spec = (stream?: 'sfc32-rows' | 'threefry-v1'): Extract<ModelSpec, { kind: 'maxout' }> => ({
      inputSize: 784,
      classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      maxColumnNorm: null,
      kind: 'maxout',
      ...SMALL_MAXOUT,
      dropout: stream ? { ...SMALL_MAXOUT.dropout, stream } : SMALL_MAXOUT.dropout,
    });
    const m = buildModel(spec('threefry-v1'), 0.05, 3);
    const sfc32 = buildModel(spec('sfc32-rows'), 0.05, 3);
    const unnamed = buildModel(spec(), 0.05, 3);
    tf.tidy(() => {
      for (const other of [m, sfc32, unnamed]) setParameters(other, 30);
      const x = tf.tensor2d(randomImages(4, 6), [4, 784]);
      const training = (net: Classifier, seed: number, input = x) => net.logits(input, { dropoutSeed: seed, gradients: 'parameters' });
      // by hand: x ⊙ mask 0 → maxout → ⊙ mask 1 → maxout → ⊙ mask 2 → softmax layer
      const [w1, b1, w2, b2, w3, b3] = m.parameters.map((p) => p.variable as tf.Tensor);
      const masked = (h: tf.Tensor2D, layer: number, keep: number, scale: number): tf.Tensor2D =>
        tf.mul(h, tf.tensor2d(counterDropoutMask(4, h.shape[1], keep, scale, 11, layer), h.shape));
      const maxout = (h: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D =>
        maxoutUnits(tf.add(tf.matMul(h, w as tf.Tensor2D), b) as tf.Tensor2D, 3);
      let h = masked(x, 0, 0.8, 1);
      h = masked(maxout(h, w1!, b1!), 1, 0.5, 2);
      h = masked(maxout(h, w2!, b2!), 2, 0.5, 2);
      assert.ok(maxDifference(training(m, 11), tf.add(tf.matMul(h, w3 as tf.Tensor2D), b3!)) < 1e-5);
      // the same seed, the same masks; another step's seed, others; evaluation has none
      assert.deepEqual(values(training(m, 11)), values(training(m, 11)));
      assert.ok(maxDifference(training(m, 11), training(m, 12)) > 1e-3);
      assert.deepEqual(values(m.logits(x)), values(sfc32.logits(x)));
      // the rows of [x; x] that hold x get the masks of a pass over x alone
      const twice = training(m, 11, tf.concat([x, x]) as tf.Tensor2D);
      assert.deepEqual(values(tf.slice(twice, [0, 0], [4, 10])), values(training(m, 11)));
      // sfc32-rows, named or not, is today's stream, and not threefry-v1's
      assert.deepEqual(values(training(sfc32, 11)), values(training(unnamed, 11)));
      assert.ok(maxDifference(training(sfc32, 11), training(m, 11)) > 1e-3);
    });
    for (const other of [m, sfc32, unnamed]) other.dispose();
  });

  test('threefry-v1 in stacked networks counts rows within each network; saved specs keep (or default) the stream', async () => {
    const spec = (stream: 'sfc32-rows' | 'threefry-v1') => ({
      inputSize: 784,
      classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      maxColumnNorm: null,
      kind: 'maxout' as const,
      ...SMALL_MAXOUT,
      dropout: { ...SMALL_MAXOUT.dropout, stream },
    });
    const stacked = new MaxoutNetwork(spec('threefry-v1'), 0.05, [3, 4]);
    const lanes = [new MaxoutNetwork(spec('threefry-v1'), 0.05, 3), new MaxoutNetwork(spec('threefry-v1'), 0.05, 4)];
    tf.tidy(() => {
      const x = [tf.tensor2d(randomImages(3, 7), [3, 784]), tf.tensor2d(randomImages(3, 8), [3, 784])];
      const together = stacked.logits(tf.concat(x) as tf.Tensor2D, { dropoutSeed: [21, 22], gradients: 'parameters' });
      lanes.forEach((lane, i) => {
        const alone = lane.logits(x[i]!, { dropoutSeed: 21 + i, gradients: 'parameters' });
        assert.ok(maxDifference(tf.slice(together, [3 * i, 0], [3, 10]), alone) < 1e-5, `network ${i}`);
      });
    });
    const dir = tempDir();
    await saveModel(dir, lanes[0]!);
    const loaded = loadModel(dir);
    assert.deepEqual(loaded.spec, lanes[0]!.spec);
    loaded.dispose();
    // a model saved before the key existed: its masks were sfc32-rows'
    const old = buildModel({ ...spec('sfc32-rows'), dropout: SMALL_MAXOUT.dropout }, 0.05, 3);
    await saveModel(dir, old);
    const reloaded = loadModel(dir);
    assert.equal(reloaded.spec.kind === 'maxout' && reloaded.spec.dropout?.stream, 'sfc32-rows');
    for (const net of [stacked, ...lanes, old, reloaded]) net.dispose();
  });

  test('max column norm applies to the weight columns of all three layers', () => {
    const net = buildModel({ ...model('maxout').spec, maxColumnNorm: 0.5 } as ModelSpec, 0.3, 1);
    net.constrain();
    for (const p of net.parameters.filter((q) => q.role === 'weight')) {
      const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(p.variable), 0)).dataSync());
      assert.ok(Math.max(...norms) <= 0.5 + 1e-5, `${p.name}: max column norm ${Math.max(...norms)}`);
      assert.ok(Math.max(...norms) > 0.49, `${p.name}: the norm binds`);
    }
    assert.equal(net.parameters.filter((q) => q.role === 'weight').length, 3);
    net.dispose();
  });

  test('L1 on the first layer adds λ·sign(W) to the gradient of layer-1 weights only', () => {
    const m = model('maxout');
    const before = m.parameters.map((p) => values(p.variable));
    const sgd = new MomentumSgd(m.parameters, { weightDecay: 0, l1FirstLayer: 0.01 });
    const zero = Object.fromEntries(m.parameters.map((p) => [p.variable.name, tf.zerosLike(p.variable)]));
    sgd.apply(zero, 1, 0);
    m.parameters.forEach((p, i) => {
      const after = values(p.variable);
      const expected = p.layer === 1 && p.role === 'weight' ? before[i]!.map((v) => v - 0.01 * Math.sign(v)) : before[i]!;
      const worst = Math.max(...after.map((v, j) => Math.abs(v - expected[j]!)));
      assert.ok(worst < 1e-7, `${p.name}: off by ${worst}`);
    });
    tf.dispose(Object.values(zero));
    sgd.dispose();
    m.dispose();
  });
});

describe('training objectives (§6)', () => {
  before(useWasm);
  const n = 8;
  const xs = randomImages(n, 31);
  const ys = randomLabels(n, 10, 31);

  test('J̃ = α·J(x) + (1 − α)·J(x̃) in the training state, x̃ from the deterministic network, no gradient through x̃', () => {
    const m = model('maxout');
    setParameters(m, 40);
    const seed = 77;
    const adversarial = trainingPerturbation({
      kind: 'adversarial',
      alpha: 0.3,
      epsilon: 0.25,
      gradientState: 'deterministic',
      gradient: 'standard',
    })!;
    tf.tidy(() => {
      const x = tf.tensor2d(xs, [n, 784]);
      const y = tf.tensor1d(ys, 'int32');
      const perturbed = adversarial.perturb(m, x, y, [seed]);
      const expectedX = fastGradientSign(m, x, y, { epsilons: [0.25], clip: null, labels: 'true', target: null }).adversarial[0]!;
      assert.deepEqual(values(perturbed), values(expectedX));

      const objective = minibatchObjective(m, x, y, perturbed, adversarial, [seed]);
      const state = { dropoutSeed: seed, gradients: 'both' } as const;
      // the clean rows of [x; x̃] get the masks of a pass over x alone; x̃'s rows are rows n..2n of the same masks
      const both = m.loss(m.logits(tf.concat([x, perturbed]), state), tf.concat([y, y]));
      const clean = tf.mean(m.loss(m.logits(x, state), y)).dataSync()[0]!;
      const [j, jTilde] = [tf.mean(tf.slice(both, 0, n)).dataSync()[0]!, tf.mean(tf.slice(both, n, n)).dataSync()[0]!];
      assert.ok(Math.abs(j - clean) < 1e-5);
      assert.ok(Math.abs(objective.loss.dataSync()[0]! - (0.3 * j + 0.7 * jTilde)) < 1e-5);

      // ∇θ of J̃ equals ∇θ of the same expression with x̃ fed in as plain data
      const variables = m.parameters.map((p) => p.variable);
      const ours = tf.variableGrads(
        () => minibatchObjective(m, x, y, adversarial.perturb(m, x, y, [seed]), adversarial, [seed]).loss,
        variables,
      ).grads;
      const constant = tf.tensor2d(perturbed.dataSync() as Float32Array, [n, 784]);
      const reference = tf.variableGrads(() => minibatchObjective(m, x, y, constant, adversarial, [seed]).loss, variables).grads;
      for (const name of Object.keys(reference)) assert.ok(maxDifference(ours[name]!, reference[name]!) < 1e-6, name);
    });
    m.dispose();
  });

  test("the gradient state: the clean term's masks, or masks of its own, change x̃", () => {
    const m = model('maxout');
    setParameters(m, 50);
    tf.tidy(() => {
      const x = tf.tensor2d(xs, [n, 784]);
      const y = tf.tensor1d(ys, 'int32');
      const xTilde = (gradientState: 'deterministic' | 'clean-mask' | 'independent-mask') =>
        values(trainingPerturbation({ kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState, gradient: 'standard' })!.perturb(m, x, y, [9]));
      const withCleanMask = fastGradientSign(m, x, y, { epsilons: [0.25], clip: null, labels: 'true', target: null, dropoutSeed: 9 }).adversarial[0]!;
      assert.deepEqual(xTilde('clean-mask'), values(withCleanMask));
      assert.notDeepEqual(xTilde('independent-mask'), xTilde('clean-mask'));
      assert.notDeepEqual(xTilde('deterministic'), xTilde('clean-mask'));
    });
    m.dispose();
  });

  test('noise controls: ±ε per pixel or U(−ε, ε), fresh per step, replace or α-mix', () => {
    const m = model('maxout');
    tf.tidy(() => {
      const x = tf.tensor2d(xs, [n, 784]);
      const y = tf.tensor1d(ys, 'int32');
      const sign = trainingPerturbation({ kind: 'noise', distribution: 'sign', epsilon: 0.25, mixing: 'replace', alpha: 0.5 })!;
      const noise = values(tf.sub(sign.perturb(m, x, y, [1]), x));
      assert.ok(noise.every((v) => Math.abs(Math.abs(v) - 0.25) < 1e-6));
      assert.ok(Math.abs(noise.filter((v) => v > 0).length / noise.length - 0.5) < 0.03);
      assert.notDeepEqual(values(sign.perturb(m, x, y, [2])), values(sign.perturb(m, x, y, [1])));
      const uniform = trainingPerturbation({ kind: 'noise', distribution: 'uniform', epsilon: 0.25, mixing: 'alpha-mix', alpha: 0.5 })!;
      const u = values(tf.sub(uniform.perturb(m, x, y, [1]), x));
      assert.ok(u.every((v) => Math.abs(v) <= 0.25 + 1e-6) && Math.max(...u.map(Math.abs)) > 0.2);
      assert.equal(uniform.mixing, 'alpha-mix');

      // replace trains on x + noise only
      const noisy = sign.perturb(m, x, y, [1]);
      const replaced = minibatchObjective(m, x, y, noisy, sign, [3]).loss.dataSync()[0]!;
      const direct = tf.mean(m.loss(m.logits(noisy, { dropoutSeed: 3, gradients: 'both' }), y)).dataSync()[0]!;
      assert.ok(Math.abs(replaced - direct) < 1e-6);
    });
    m.dispose();
  });
});
