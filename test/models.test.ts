import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { plainMatMul } from '../src/models/plain-matmul.js';
import { loadModel, saveModel } from '../src/models/weights-io.js';
import { lossOf, model, randomImages, randomLabels, tempDir, useWasm } from './helpers.js';

describe('models', () => {
  before(useWasm);

  test('plainMatMul has the values and gradients of tf.matMul', () => {
    const x = tf.randomUniform([37, 784], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomUniform([784, 10], -1, 1, 'float32', 2) as tf.Tensor2D;
    const dy = tf.randomUniform([37, 10], -1, 1, 'float32', 3) as tf.Tensor2D;
    const f = (op: typeof plainMatMul) => (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op(a as tf.Tensor2D, b as tf.Tensor2D), dy));
    const ours = tf.grads(f(plainMatMul))([x, w]);
    const theirs = tf.grads(f((a, b) => tf.matMul(a, b)))([x, w]);
    for (let i = 0; i < 2; i++) {
      const diff = tf.max(tf.abs(tf.sub(ours[i]!, theirs[i]!))).dataSync()[0]!;
      assert.ok(diff < 1e-4, `gradient ${i}: max difference ${diff}`);
    }
    assert.ok(tf.max(tf.abs(tf.sub(plainMatMul(x, w), tf.matMul(x, w)))).dataSync()[0]! < 1e-4);
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
