import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { TrainingSchema, type TrainingConfig } from '../src/config/schema.js';
import { InterruptedError } from '../src/core/errors.js';
import { createProgress } from '../src/core/progress.js';
import type { Split } from '../src/data/dataset.js';
import { applyMaxColumnNorm } from '../src/models/dense.js';
import { train } from '../src/train/loop.js';
import { learningRateAt, momentumAt } from '../src/train/schedule.js';
import { MomentumSgd } from '../src/train/sgd.js';
import { model, randomImages, randomLabels, tempDir, useWasm } from './helpers.js';

const quiet = createProgress('quiet');

const config = (patch: Record<string, unknown> = {}): TrainingConfig =>
  TrainingSchema.parse({ epochs: 4, batchSize: 16, momentum: { endEpoch: 3 }, earlyStopping: { patience: 10 }, ...patch });

function split(name: Split['name'], n: number, seed: number): Split {
  // learnable: the label is decided by which tenth of the image is brightest
  const x = randomImages(n, seed);
  const y = randomLabels(n, 10, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < 78; j++) x[i * 784 + y[i]! * 78 + j] = 1;
  return { name, x, y, n };
}

const weightsOf = (m: ReturnType<typeof model>) => m.parameters.map((p) => Array.from(p.variable.dataSync()));

describe('schedules and the optimiser', () => {
  before(useWasm);

  test('learning rate decays per update with a floor; momentum rises linearly over epochs', () => {
    const lr = { initial: 0.1, decay: 1.000004, floor: 1e-6 };
    assert.equal(learningRateAt(0, lr), 0.1);
    assert.ok(Math.abs(learningRateAt(100000, lr) - 0.1 / Math.pow(1.000004, 100000)) < 1e-12);
    assert.equal(learningRateAt(1e9, lr), 1e-6);
    const mu = { initial: 0.5, final: 0.7, startEpoch: 1, endEpoch: 250 };
    assert.equal(momentumAt(1, mu), 0.5);
    assert.ok(Math.abs(momentumAt(125.5, mu) - 0.6) < 1e-12);
    assert.equal(momentumAt(300, mu), 0.7);
  });

  test('classical momentum: v ← μv − ηg; θ ← θ + v, weight decay on weights only', () => {
    const w = tf.variable(tf.tensor1d([1, 2]));
    const b = tf.variable(tf.tensor1d([1]));
    const sgd = new MomentumSgd(
      [
        { name: 'W', variable: w, role: 'weight', layer: 1 },
        { name: 'b', variable: b, role: 'bias', layer: 1 },
      ],
      { weightDecay: 0.5, l1FirstLayer: 0 },
    );
    const grads = { [w.name]: tf.tensor1d([1, -1]), [b.name]: tf.tensor1d([2]) };
    sgd.apply(grads, 0.1, 0.9); // g_w = [1, -1] + 0.5·[1, 2] = [1.5, 0]; v = −0.1·g
    assert.deepEqual(
      Array.from(w.dataSync()).map((v) => +v.toFixed(6)),
      [0.85, 2],
    );
    assert.deepEqual(
      Array.from(b.dataSync()).map((v) => +v.toFixed(6)),
      [0.8],
    );
    sgd.apply(grads, 0.1, 0.9); // g_w = [1, -1] + 0.5·[0.85, 2] = [1.425, 0]; v = 0.9·[−0.15, 0] − 0.1·g
    assert.deepEqual(
      Array.from(w.dataSync()).map((v) => +v.toFixed(6)),
      [+(0.85 - 0.135 - 0.1425).toFixed(6), 2],
    );
    tf.dispose([w, b, ...Object.values(grads)]);
    sgd.dispose();
  });

  test('max column norm rescales only the columns above the limit', () => {
    const w = tf.variable(
      tf.tensor2d([
        [3, 0.3],
        [4, 0.4],
      ]),
    ); // column norms 5 and 0.5
    applyMaxColumnNorm(w, 2);
    const [a, b, c, d] = Array.from(w.dataSync());
    assert.ok(Math.abs(a! - 1.2) < 1e-6 && Math.abs(c! - 1.6) < 1e-6);
    assert.ok(Math.abs(b! - 0.3) < 1e-7 && Math.abs(d! - 0.4) < 1e-7);
    w.dispose();
  });
});

describe('training loop', () => {
  before(useWasm);
  const trainSplit = split('train', 400, 11);
  const validation = split('validation', 100, 12);

  test('learns, keeps the best epoch, and leaks no tensor', async () => {
    const m = model('softmax', 0.005);
    const tensorsBefore = tf.memory().numTensors;
    const summary = await train({ model: m, train: trainSplit, validation, config: config(), seed: 1, checkpointDir: null, progress: quiet });
    assert.equal(tf.memory().numTensors, tensorsBefore);
    assert.equal(summary.epochs, 4);
    assert.equal(summary.steps, 4 * 25);
    assert.ok(summary.history[3]!.trainLoss < summary.history[0]!.trainLoss);
    assert.ok(summary.bestValidationError! < 0.5, `validation error ${summary.bestValidationError}`);
    assert.equal(summary.chosenEpoch, summary.bestEpoch);
    m.dispose();
  });

  test('early stopping stops after `patience` epochs without a new best', async () => {
    const m = model('softmax', 0.005);
    const summary = await train({
      model: m,
      train: trainSplit,
      validation,
      config: config({
        epochs: 50,
        learningRate: { initial: 0, decay: 1, floor: 0 },
        earlyStopping: { metric: 'validation-error', patience: 2, keepBest: true, epsilon: 0.25 },
      }),
      seed: 1,
      checkpointDir: null,
      progress: quiet,
    });
    // with η = 0 nothing changes: epoch 1 is the best, epochs 2 and 3 are not better
    assert.equal(summary.stoppedBy, 'early-stopping');
    assert.equal(summary.epochs, 3);
    assert.equal(summary.bestEpoch, 1);
    m.dispose();
  });

  test('an interrupted run resumed from its checkpoint ends with the same parameters as an uninterrupted one', async () => {
    const uninterrupted = model('softmax', 0.005, 9);
    const reference = await train({
      model: uninterrupted,
      train: trainSplit,
      validation,
      config: config(),
      seed: 5,
      checkpointDir: tempDir(),
      progress: quiet,
    });

    const dir = tempDir();
    const first = model('softmax', 0.005, 9);
    const controller = new AbortController();
    await assert.rejects(
      train({
        model: first,
        train: trainSplit,
        validation,
        config: config(),
        seed: 5,
        checkpointDir: dir,
        progress: quiet,
        signal: controller.signal,
        onEpoch: (record) => record.epoch === 2 && controller.abort(),
      }),
      InterruptedError,
    );
    first.dispose();
    const second = model('softmax', 0.5, 1234); // different starting weights: all must come from the checkpoint
    const resumed = await train({ model: second, train: trainSplit, validation, config: config(), seed: 5, checkpointDir: dir, progress: quiet });
    assert.equal(resumed.resumedFromEpoch, 2);
    assert.deepEqual(weightsOf(second), weightsOf(uninterrupted));
    assert.deepEqual(
      resumed.history.map((r) => [r.trainLoss, r.validationError]),
      reference.history.map((r) => [r.trainLoss, r.validationError]),
    );
    uninterrupted.dispose();
    second.dispose();
  });

  test('a diverging loss stops with a message naming the epoch and step', async () => {
    const m = model('softmax', 0.005);
    const bad = { ...trainSplit, x: trainSplit.x.map((v, i) => (i === 5 ? Number.NaN : v)) };
    await assert.rejects(
      train({ model: m, train: bad, validation, config: config(), seed: 1, checkpointDir: null, progress: quiet }),
      /training diverged: the loss is NaN at epoch 1, step \d+/,
    );
    m.dispose();
  });
});
