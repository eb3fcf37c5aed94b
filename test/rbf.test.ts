import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { ExperimentSchema, TrainingSchema } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import type { Split } from '../src/data/dataset.js';
import { rubbishMetrics } from '../src/eval/metrics.js';
import { buildModel, modelFromConfig } from '../src/models/build.js';
import type { Classifier, ModelSpec, RbfSpec, SigmoidLoss } from '../src/models/classifier.js';
import { expDistanceCrossEntropy, sigmoidCrossEntropy } from '../src/models/independent-outputs.js';
import { initialCentres, RbfNetwork } from '../src/models/rbf.js';
import { loadModel, saveModel } from '../src/models/weights-io.js';
import { train } from '../src/train/loop.js';
import { lossOf, randomImages, randomLabels, SMALL_MAXOUT, tempDir, useWasm } from './helpers.js';

type RbfModelSpec = Extract<ModelSpec, { kind: 'rbf' }>;

const rbfSpec = (patch: Partial<RbfSpec> = {}, inputSize = 784, classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]): RbfModelSpec => ({
  kind: 'rbf',
  inputSize,
  classes,
  maxColumnNorm: null,
  output: 'independent',
  precision: 'clamp',
  init: { centres: 'class-means', precision: 0.05 },
  ...patch,
});

/** The small maxout network of the tests with Appendix A's independent-sigmoid top. */
const sigmoidMaxout = (initRange: number, sigmoidLoss: SigmoidLoss = 'sum'): Classifier =>
  buildModel(
    { kind: 'maxout', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: null, ...SMALL_MAXOUT, top: 'sigmoid', sigmoidLoss },
    initRange,
    3,
  );

/** A tiny RBF (inputs of 3 features, 2 classes) with μ and a set by hand, row-major [feature][class]. */
function handMadeRbf(precision: RbfSpec['precision'], output: RbfSpec['output'], mu: number[][], a: number[][]): RbfNetwork {
  const m = new RbfNetwork(rbfSpec({ precision, output }, 3, [0, 1]), Float32Array.from(mu.flat()));
  const rho = a.flat().map((v) => (precision === 'exp' ? Math.log(v) : precision === 'softplus' ? Math.log(Math.expm1(v)) : v));
  const variable = m.parameters.find((p) => p.name === 'rho')!.variable;
  tf.tidy(() => variable.assign(tf.tensor2d(rho, [3, 2])));
  return m;
}

const MU = [
  [0.2, 0.9],
  [0.5, 0.1],
  [0.0, 0.7],
];
const A = [
  [0.3, 1.5],
  [2.0, 0.25],
  [0.7, 0.05],
];
const X = [
  [0.1, 0.4, 0.9],
  [1.0, 0.0, 0.3],
  [0.6, 0.2, 0.4],
];

/** d_k(x) = Σ_f a_fk (x_f − μ_fk)² in float64. */
const closedFormDistance = (x: number[], k: number): number => x.reduce((sum, xf, f) => sum + A[f]![k]! * (xf - MU[f]![k]!) ** 2, 0);

/** −log p_y − Σ_{k≠y} log(1 − p_k), p_k = exp(−d_k), in float64. */
const closedFormBce = (d: number[], y: number): number => d.reduce((sum, dk, k) => sum + (k === y ? dk : -Math.log(1 - Math.exp(-dk))), 0);

const close = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

describe('RBF network (§7)', () => {
  before(useWasm);

  test('logits are −Σ a (x − μ)², probabilities exp of them (independent) or their softmax', () => {
    for (const precision of ['clamp', 'exp', 'softplus'] as const) {
      for (const output of ['independent', 'softmax'] as const) {
        const m = handMadeRbf(precision, output, MU, A);
        const [logits, probabilities] = tf.tidy(() => {
          const z = m.logits(tf.tensor2d(X));
          return [z.arraySync(), m.probabilities(z).arraySync()];
        });
        X.forEach((x, i) => {
          const d = [0, 1].map((k) => closedFormDistance(x, k));
          const expected =
            output === 'independent' ? d.map((dk) => Math.exp(-dk)) : d.map((dk) => Math.exp(-dk) / (Math.exp(-d[0]!) + Math.exp(-d[1]!)));
          d.forEach((dk, k) => {
            close(logits[i]![k]!, -dk, 1e-5, `${precision}/${output} logit [${i}, ${k}]`);
            close(probabilities[i]![k]!, expected[k]!, 1e-5, `${precision}/${output} p [${i}, ${k}]`);
          });
        });
        m.dispose();
      }
    }
  });

  test('the loss is the per-class binary cross-entropy of p_k = exp(−d_k), exact at tiny and large d', () => {
    const d = [
      [1e-6, 3, 50],
      [0.3, 1e-4, 0.69],
      [80, 0.7, 2],
    ];
    const labels = [1, 0, 2];
    const [values, gradient] = tf.tidy(() => {
      const dt = tf.tensor2d(d);
      const y = tf.tensor1d(labels, 'int32');
      return [
        expDistanceCrossEntropy(dt, y).arraySync(),
        tf
          .grad((t) => tf.sum(expDistanceCrossEntropy(t as tf.Tensor2D, y)))(dt)
          .arraySync() as number[][],
      ];
    });
    d.forEach((row, i) => {
      close(values[i]!, closedFormBce(row, labels[i]!), 1e-5, `row ${i}`);
      // ∂/∂d_k: 1 for the true class, −1/expm1(d_k) for the others
      row.forEach((dk, k) => close(gradient[i]![k]!, k === labels[i] ? 1 : -1 / Math.expm1(dk), 1e-4, `∂J/∂d [${i}, ${k}]`));
    });
    // the true class at d = 0 is a finite loss with a finite gradient (its masked negative term must not poison it)
    const atZero = tf.tidy(() => {
      const dt = tf.tensor2d([[0, 1]]);
      const y = tf.tensor1d([0], 'int32');
      return [
        expDistanceCrossEntropy(dt, y).dataSync()[0]!,
        ...tf
          .grad((t) => tf.sum(expDistanceCrossEntropy(t as tf.Tensor2D, y)))(dt)
          .dataSync(),
      ];
    });
    atZero.forEach((v) => assert.ok(Number.isFinite(v), `at d_y = 0: ${atZero}`));
  });

  test('gradients with respect to x, μ and ρ match finite differences', () => {
    const labels = tf.tensor1d([0, 1, 1], 'int32');
    for (const precision of ['clamp', 'exp', 'softplus'] as const) {
      for (const output of ['independent', 'softmax'] as const) {
        const m = handMadeRbf(precision, output, MU, A);
        const x = tf.tensor2d(X);
        const total = (): tf.Scalar => tf.sum(m.loss(m.logits(x, { dropoutSeed: null, gradients: 'both' }), labels));
        const { grads } = tf.variableGrads(total);
        const dx = tf.grad((input) => tf.sum(m.loss(m.logits(input as tf.Tensor2D), labels)))(x);
        const h = 1e-2;
        // x: perturb one input entry at a time
        const xs = x.dataSync();
        for (let i = 0; i < xs.length; i++) {
          const f = (delta: number): number =>
            tf.tidy(() => {
              const moved = xs.slice();
              moved[i]! += delta;
              return tf.sum(m.loss(m.logits(tf.tensor2d(moved, [3, 3])), labels)).dataSync()[0]!;
            });
          close(dx.dataSync()[i]!, (f(h) - f(-h)) / (2 * h), 2e-3, `${precision}/${output} ∂J/∂x[${i}]`);
        }
        // μ and ρ: perturb the variable, evaluate, put it back
        for (const p of m.parameters) {
          const saved = p.variable.dataSync().slice();
          for (let i = 0; i < saved.length; i++) {
            const f = (delta: number): number => {
              const moved = saved.slice();
              moved[i]! += delta;
              tf.tidy(() => p.variable.assign(tf.tensor(moved, p.variable.shape)));
              return tf.tidy(() => total().dataSync()[0]!);
            };
            const expected = (f(h) - f(-h)) / (2 * h);
            tf.tidy(() => p.variable.assign(tf.tensor(saved, p.variable.shape)));
            close(grads[p.variable.name]!.dataSync()[i]!, expected, 2e-3, `${precision}/${output} ∂J/∂${p.name}[${i}]`);
          }
        }
        tf.dispose([x, dx, ...Object.values(grads)]);
        m.dispose();
      }
    }
    labels.dispose();
  });
});

/** 200 images whose label is the brightest tenth of the image (learnable), as the training tests use. */
function learnableSplit(n: number, seed: number): Split {
  const x = randomImages(n, seed);
  const y = randomLabels(n, 10, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < 78; j++) x[i * 784 + y[i]! * 78 + j] = 1;
  return { name: 'train', x, y, n };
}

describe('RBF network: initialisation, training, attack', () => {
  before(useWasm);
  const data = learnableSplit(200, 21);

  test('centres start at the class means, or at one seeded training image of each class', () => {
    const means = initialCentres(rbfSpec(), data, 1);
    for (const [f, k] of [
      [0, 0],
      [100, 3],
      [783, 9],
    ] as const) {
      let sum = 0;
      let count = 0;
      for (let i = 0; i < data.n; i++) if (data.y[i] === k) ((sum += data.x[i * 784 + f]!), count++);
      close(means[f * 10 + k]!, sum / count, 1e-5, `mean of feature ${f}, class ${k}`);
    }
    const examples = initialCentres(rbfSpec({ init: { centres: 'examples', precision: 0.05 } }), data, 1);
    assert.deepEqual(examples, initialCentres(rbfSpec({ init: { centres: 'examples', precision: 0.05 } }), data, 1), 'seeded');
    for (let k = 0; k < 10; k++) {
      const centre = Array.from({ length: 784 }, (_, f) => examples[f * 10 + k]!);
      const row = Array.from({ length: data.n }, (_, i) => i).find((i) => centre.every((v, f) => v === data.x[i * 784 + f]));
      assert.ok(row !== undefined && data.y[row] === k, `centre ${k} is a training image of class ${k}`);
    }
  });

  test('constrain clamps a at 0; reinitialize restores the start; no tensor leaks', () => {
    const tensorsBefore = tf.memory().numTensors;
    const m = buildModel(rbfSpec(), 0, 1, data) as RbfNetwork;
    const rho = m.parameters.find((p) => p.name === 'rho')!.variable;
    const start = m.parameters.map((p) => p.variable.dataSync().slice());
    tf.tidy(() => rho.assign(tf.sub(rho, 0.1)));
    m.constrain();
    assert.equal(
      tf.tidy(() => tf.min(rho).dataSync()[0]),
      0,
    );
    m.reinitialize();
    m.parameters.forEach((p, i) => assert.deepEqual(p.variable.dataSync(), start[i]));
    const during = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.tensor2d(data.x.subarray(0, 5 * 784), [5, 784]);
      const y = tf.tensor1d(data.y.subarray(0, 5), 'int32');
      m.probabilities(m.logits(x));
      tf.variableGrads(() => tf.sum(m.loss(m.logits(x, { dropoutSeed: null, gradients: 'parameters' }), y)));
      tf.grad((input) => tf.sum(m.loss(m.logits(input as tf.Tensor2D), y)))(x);
    });
    assert.equal(tf.memory().numTensors, during);
    m.dispose();
    assert.equal(tf.memory().numTensors, tensorsBefore);
  });

  test('a short training run lowers the loss and leaves no tensor behind', async () => {
    for (const output of ['independent', 'softmax'] as const) {
      const m = buildModel(rbfSpec({ output, init: { centres: 'examples', precision: 0.05 } }), 0, 1, data);
      const tensorsBefore = tf.memory().numTensors;
      const config = TrainingSchema.parse({ epochs: 3, batchSize: 20, learningRate: { initial: 0.05 }, earlyStopping: { metric: 'none' } });
      const summary = await train({
        model: m,
        train: data,
        validation: null,
        config,
        seed: 1,
        checkpointDir: null,
        progress: createProgress('quiet'),
      });
      assert.equal(tf.memory().numTensors, tensorsBefore);
      assert.ok(summary.history[2]!.trainLoss < summary.history[0]!.trainLoss, `${output}: ${summary.history.map((r) => r.trainLoss)}`);
      m.dispose();
    }
  });

  test('FGSM through fastGradientSign stays within ε in L∞ and raises the loss', () => {
    // the maxout at init range 0.5: at 0.05 its loss is flat (every p_k ≈ 1/2) and an ε step need not raise it
    const models: Classifier[] = [buildModel(rbfSpec(), 0, 1, data), buildModel(rbfSpec({ output: 'softmax' }), 0, 1, data), sigmoidMaxout(0.5)];
    for (const m of models) {
      const tensorsBefore = tf.memory().numTensors;
      tf.tidy(() => {
        const x = tf.tensor2d(data.x.subarray(0, 50 * 784), [50, 784]);
        const y = tf.tensor1d(data.y.subarray(0, 50), 'int32');
        const { adversarial, direction } = fastGradientSign(m, x, y, { epsilons: [0.1, 0.25], clip: null, labels: 'true', target: null });
        [0.1, 0.25].forEach((eps, e) => {
          const linf = tf.max(tf.abs(tf.sub(adversarial[e]!, x))).dataSync()[0]!;
          assert.ok(linf <= eps + 1e-6 && linf > 0, `${m.spec.kind} ε = ${eps}: ‖x̃ − x‖∞ = ${linf}`);
        });
        const before = tf.sum(m.loss(m.logits(x), y)).dataSync()[0]!;
        const after = tf.sum(m.loss(m.logits(adversarial[1]!), y)).dataSync()[0]!;
        assert.ok(after > before, `${m.spec.kind}: loss ${before} → ${after}`);
        tf.dispose([direction, ...adversarial]);
      });
      assert.equal(tf.memory().numTensors, tensorsBefore);
      m.dispose();
    }
  });

  test('save / load round trip (and the maxout models saved before `top` existed load as softmax)', async () => {
    for (const m of [buildModel(rbfSpec(), 0, 1, data), sigmoidMaxout(0.05)]) {
      const dir = tempDir();
      await saveModel(dir, m);
      const loaded = loadModel(dir);
      assert.deepEqual(loaded.spec, m.spec);
      assert.deepEqual(
        lossOf(loaded, data.x.subarray(0, 5 * 784), data.y.subarray(0, 5)),
        lossOf(m, data.x.subarray(0, 5 * 784), data.y.subarray(0, 5)),
      );
      loaded.dispose();
      m.dispose();
    }
    const legacy = sigmoidMaxout(0.05);
    const dir = tempDir();
    await saveModel(dir, legacy);
    const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    delete manifest.spec.top;
    writeFileSync(join(dir, 'model.json'), JSON.stringify(manifest));
    const loaded = loadModel(dir);
    assert.equal(loaded.spec.kind === 'maxout' && loaded.spec.top, 'softmax');
    legacy.dispose();
    loaded.dispose();
  });

  test('the config builds the RBF it describes, with independent outputs, clamped precisions and class-mean centres by default', () => {
    const config = ExperimentSchema.parse({ name: 'r', model: { kind: 'rbf' }, training: { epochs: 1 } });
    assert.deepEqual(config.model, { kind: 'rbf', output: 'independent', precision: 'clamp', init: { centres: 'class-means', precision: 0.05 } });
    const m = modelFromConfig(config.model, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 1, data);
    assert.deepEqual(m.parameters.find((p) => p.name === 'mu')!.variable.dataSync(), initialCentres(rbfSpec(), data, 1));
    m.dispose();
    const maxout = ExperimentSchema.parse({ name: 'm', model: { kind: 'maxout' }, training: { epochs: 1 } });
    assert.equal(maxout.model.kind === 'maxout' && maxout.model.top, 'softmax');
  });
});

describe('independent outputs: sigmoid top (Appendix A) and the rubbish metric', () => {
  before(useWasm);

  test('the sigmoid-top maxout loss is the sum over classes of binary cross-entropies of σ(z_k)', () => {
    const m = sigmoidMaxout(0.5);
    const x = randomImages(4, 5);
    const y = randomLabels(4, 10, 5);
    const [z, p] = tf.tidy(() => {
      const logits = m.logits(tf.tensor2d(x, [4, 784]));
      return [logits.arraySync(), m.probabilities(logits).arraySync()];
    });
    const loss = lossOf(m, x, y);
    const sigma = (v: number): number => 1 / (1 + Math.exp(-v));
    z.forEach((row, i) => {
      const bce = row.reduce((sum, zk, k) => sum - (k === y[i] ? Math.log(sigma(zk)) : Math.log(1 - sigma(zk))), 0);
      close(loss[i]!, bce, 1e-5, `example ${i}`);
      row.forEach((zk, k) => close(p[i]![k]!, sigma(zk), 1e-6, `p [${i}, ${k}]`));
    });
    // the same function on hand-made logits, where σ saturates
    const handMade = tf.tidy(() => sigmoidCrossEntropy(tf.tensor2d([[30, -30, 0]]), tf.tensor1d([1], 'int32')).dataSync()[0]!);
    close(handMade, 2 * (30 + Math.log1p(Math.exp(-30))) + Math.log(2), 1e-6, 'softplus(30) + softplus(30) + softplus(0)');
    // pylearn2's Sigmoid cost: the mean over the 10 classes, the same network otherwise
    const mean = sigmoidMaxout(0.5, 'mean');
    lossOf(mean, x, y).forEach((value, i) => close(value, loss[i]! / 10, 1e-6, `mean over classes, example ${i}`));
    const [logits, labels] = [tf.tensor2d([[1, -2, 3, 0, 0, 0, 0, 0, 0, 0]]), tf.tensor1d([2], 'int32')];
    const before = tf.memory().numTensors;
    mean.loss(logits, labels).dispose();
    assert.equal(tf.memory().numTensors, before, 'the mean leaves only what it returns');
    tf.dispose([logits, labels]);
    mean.dispose();
    m.dispose();
  });

  test('the sigmoid cross-entropy: where σ(z_y) rounds to 1 the standard gradient drops the true class, the stable one keeps it', () => {
    // σ(20) rounds to 1 in float32, σ(−20) = 2.06e−9 does not
    const logits = [20, -25, -19, 3];
    const label = 0;
    const sigma = (v: number): number => 1 / (1 + Math.exp(-v));
    const float64 = logits.map((z, k) => (k === label ? -sigma(-z) : sigma(z)));
    const gradientOf = (gradient: 'standard' | 'stable'): Float32Array =>
      tf.tidy(() => {
        const labels = tf.tensor1d([label], 'int32');
        return tf
          .grad((z: tf.Tensor) => tf.sum(sigmoidCrossEntropy(z as tf.Tensor2D, labels, gradient)))(tf.tensor2d([logits]))
          .dataSync() as Float32Array;
      });
    const before = tf.memory().numTensors;
    const standard = gradientOf('standard');
    const stable = gradientOf('stable');
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    assert.equal(standard[label], 0, 'standard: σ(z_y) − 1 rounds to 0');
    float64.forEach((g, k) => {
      close(stable[k]!, g, 1e-5 * Math.abs(g), `stable ∂J/∂z_${k}`);
      if (k !== label) close(standard[k]!, g, 1e-5 * Math.abs(g), `standard ∂J/∂z_${k}`);
    });
    const loss = (gradient: 'standard' | 'stable'): number =>
      tf.tidy(() => sigmoidCrossEntropy(tf.tensor2d([logits]), tf.tensor1d([label], 'int32'), gradient).dataSync()[0]!);
    close(loss('stable'), loss('standard'), 1e-6, 'the same loss either way');
  });

  test('several classes above 0.5 count once, with the largest p as the confidence and its class as the share', () => {
    const classes = [3, 5, 8];
    const probabilities = Float32Array.from(
      [
        [0.9, 0.6, 0.7], // three above 0.5: counted once, as class 3, confidence 0.9
        [0.2, 0.55, 0.8], // two: as class 8, 0.8
        [0.4, 0.5, 0.1], // none (0.5 is not above 0.5)
        [0.01, 0.7, 0.0], // one: class 5, 0.7
      ].flat(),
    );
    const metrics = rubbishMetrics(probabilities, 3, classes);
    assert.equal(metrics.samples, 4);
    close(metrics.error, 3 / 4, 1e-9, 'error');
    close(metrics.meanConfidence!, (0.9 + 0.8 + 0.7) / 3, 1e-6, 'confidence');
    assert.equal(metrics.multiplePositives, 2);
    assert.deepEqual(metrics.classCounts, { '3': 1, '5': 1, '8': 1 });
    for (const share of Object.values(metrics.classShares)) close(share, 1 / 3, 1e-9, 'share');
    const none = rubbishMetrics(Float32Array.from([0.1, 0.2, 0.3]), 3, classes);
    assert.equal(none.error, 0);
    assert.equal(none.meanConfidence, null);
  });
});
