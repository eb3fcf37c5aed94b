import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { initBackend } from '../src/backend/select.js';
import type { SoftmaxGradient } from '../src/models/classifier.js';
import { softmaxCrossEntropy } from '../src/models/linear.js';
import { denseMatMul } from '../src/backend/kernels.js';
import { loadModel, saveModel } from '../src/models/weights-io.js';
import { float64LossGradient, lossOf, model, randomImages, randomLabels, tempDir, useWasm } from './helpers.js';

describe('models', () => {
  before(useWasm);

  test('denseMatMul has the values and gradients of tf.matMul', () => {
    const x = tf.randomUniform([37, 784], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomUniform([784, 10], -1, 1, 'float32', 2) as tf.Tensor2D;
    const dy = tf.randomUniform([37, 10], -1, 1, 'float32', 3) as tf.Tensor2D;
    const f = (op: typeof denseMatMul) => (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op(a as tf.Tensor2D, b as tf.Tensor2D), dy));
    const ours = tf.grads(f(denseMatMul))([x, w]);
    const theirs = tf.grads(f((a, b) => tf.matMul(a, b)))([x, w]);
    for (let i = 0; i < 2; i++) {
      const diff = tf.max(tf.abs(tf.sub(ours[i]!, theirs[i]!))).dataSync()[0]!;
      assert.ok(diff < 1e-4, `gradient ${i}: max difference ${diff}`);
    }
    assert.ok(tf.max(tf.abs(tf.sub(denseMatMul(x, w), tf.matMul(x, w)))).dataSync()[0]! < 1e-4);
    tf.dispose([x, w, dy, ...ours, ...theirs]);
  });

  test('building and disposing a model leaves no tensor behind', () => {
    const tensorsBefore = tf.memory().numTensors;
    model('softmax').dispose();
    model('logistic').dispose();
    assert.equal(tf.memory().numTensors, tensorsBefore);
  });

  test('save / load round trip in the tfjs weights format', async () => {
    for (const kind of ['softmax', 'logistic'] as const) {
      const m = model(kind);
      const dir = tempDir();
      await saveModel(dir, m);
      const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      // a plain tfjs reader decodes the weights
      const decoded = tf.io.decodeWeights(new Uint8Array(readFileSync(join(dir, 'weights.bin'))).buffer, manifest.weightsManifest[0].weights);
      assert.deepEqual(Object.keys(decoded).sort(), ['W', 'b']);
      const loaded = loadModel(dir);
      const x = randomImages(5, 1);
      const y = randomLabels(5, m.spec.classes.length, 1);
      assert.deepEqual(lossOf(loaded, x, y), lossOf(m, x, y));
      assert.deepEqual(loaded.spec, m.spec);
      tf.dispose(Object.values(decoded));
      m.dispose();
      loaded.dispose();
    }
  });
});

/**
 * Rows of logits whose true class (index 1) has p_y = 1 in float32: the other classes sum below 2^-24 of it.
 * The last row is not saturated, as a control.
 */
const SATURATED_LOGITS = [
  [0, 40, 0, 0, 0, 0, 0, 0, 0, 0],
  [3, 25, -2, 7, 0, 1, -5, 2, 4, 0],
  [-30, 20, 0.5, -4, 1, 0, -2, 0.25, 0, -1],
];
const CONTROL_LOGITS = [0.3, 1.2, -0.4, 0, 0.8, -1, 0.1, 0.2, 0.5, -0.2];
const LABEL = 1;

/** ∂J/∂z of softmaxCrossEntropy on the current backend, row by row. */
function lossGradient(rows: number[][], gradient: SoftmaxGradient): number[][] {
  return tf.tidy(() => {
    const labels = tf.tensor1d(
      rows.map(() => LABEL),
      'int32',
    );
    const dz = tf.grad((z: tf.Tensor) => tf.sum(softmaxCrossEntropy(z as tf.Tensor2D, labels, gradient)))(tf.tensor2d(rows));
    return dz.arraySync() as number[][];
  });
}

describe('softmax cross-entropy in float32 (docs/paper.md §3)', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    test(`${backend}: where p_y rounds to 1, standard zeroes ∂J/∂z_y; stable matches float64 sign for sign`, async () => {
      await initBackend(backend);
      const rows = [...SATURATED_LOGITS, CONTROL_LOGITS];
      const tensorsBefore = tf.memory().numTensors;
      const p = tf.tidy(() => tf.softmax(tf.tensor2d(SATURATED_LOGITS)).arraySync() as number[][]);
      for (const row of p) assert.equal(row[LABEL], 1, 'the test logits must saturate p_y in float32');
      const standard = lossGradient(rows, 'standard');
      const stable = lossGradient(rows, 'stable');
      // the framework's own softmax cross-entropy saturates the same way
      const framework = tf.tidy(() => {
        const z = tf.tensor2d(SATURATED_LOGITS);
        const onehot = tf.oneHot(
          tf.tensor1d(
            SATURATED_LOGITS.map(() => LABEL),
            'int32',
          ),
          10,
        );
        return tf
          .grad((l: tf.Tensor) => tf.losses.softmaxCrossEntropy(onehot, l, undefined, 0, tf.Reduction.SUM))(z)
          .arraySync() as number[][];
      });
      rows.forEach((z, i) => {
        const reference = float64LossGradient(z, LABEL);
        if (i < SATURATED_LOGITS.length) {
          assert.equal(standard[i]![LABEL], 0, `row ${i}: the standard true-class component`);
          assert.equal(framework[i]![LABEL], 0, `row ${i}: tf.losses.softmaxCrossEntropy's true-class component`);
          assert.ok(
            standard[i]!.every((v, k) => k === LABEL || v > 0),
            `row ${i}: the other components stay non-zero`,
          );
        }
        reference.forEach((r, k) => {
          assert.equal(Math.sign(stable[i]![k]!), Math.sign(r), `row ${i} class ${k}: stable ${stable[i]![k]} vs float64 ${r}`);
          assert.ok(Math.abs(stable[i]![k]! - r) <= 1e-5 * Math.abs(r), `row ${i} class ${k}: stable ${stable[i]![k]} vs float64 ${r}`);
          if (i === SATURATED_LOGITS.length) assert.ok(Math.abs(standard[i]![k]! - r) < 1e-6, `control row, class ${k}`);
        });
      });
      const losses = (gradient: SoftmaxGradient) =>
        tf.tidy(() =>
          Array.from(
            softmaxCrossEntropy(
              tf.tensor2d(rows),
              tf.tensor1d(
                rows.map(() => LABEL),
                'int32',
              ),
              gradient,
            ).dataSync(),
          ),
        );
      assert.deepEqual(losses('stable'), losses('standard'), 'the loss values do not depend on the gradient choice');
      losses('stable').forEach((loss, i) => {
        const z = rows[i]!;
        const lse = Math.log(z.reduce((sum, v) => sum + Math.exp(v), 0));
        assert.ok(Math.abs(loss - (lse - z[LABEL]!)) < 1e-5, `row ${i}: J = ${loss}, float64 ${lse - z[LABEL]!}`);
      });
      assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaks');
      await useWasm();
    });
  }

  test('logistic regression does not saturate that way: its gradient at a margin of 40 is −y·σ(−40)·w, not 0', () => {
    const m = model('logistic');
    tf.tidy(() => {
      const z = tf.tensor2d([[40], [-40]]);
      const labels = tf.tensor1d([1, 0], 'int32'); // y = +1 with z = 40, y = −1 with z = −40: both margins 40
      const dz = tf
        .grad((l: tf.Tensor) => tf.sum(m.loss(l as tf.Tensor2D, labels)))(z)
        .dataSync();
      const expected = 1 / (1 + Math.exp(40));
      assert.ok(Math.abs(dz[0]! + expected) < 1e-3 * expected, `${dz[0]}`);
      assert.ok(Math.abs(dz[1]! - expected) < 1e-3 * expected, `${dz[1]}`);
    });
    m.dispose();
  });
});
