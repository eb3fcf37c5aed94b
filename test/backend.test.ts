import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initBackend } from '../src/backend/select.js';
import { createProgress } from '../src/core/progress.js';
import { evaluate } from '../src/eval/evaluate.js';
import { model, randomImages, randomLabels } from './helpers.js';

describe('backends', () => {
  test('an explicitly requested backend that cannot load is an error with the reason and the fix', async (t) => {
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node-gpu' as string);
    } catch {
      installed = false;
    }
    if (installed) {
      t.diagnostic('tfjs-node-gpu is installed here: the failure path cannot be exercised');
      assert.equal((await initBackend('tensorflow')).name, 'tensorflow');
      return;
    }
    await assert.rejects(initBackend('tensorflow'), (error: Error & { hint?: string }) => {
      assert.match(error.message, /backend tensorflow cannot load: @tensorflow\/tfjs-node-gpu: not installed/);
      assert.match(error.hint!, /npm install @tensorflow\/tfjs-node-gpu@\d+\.\d+\.\d+ \(CUDA 11\.2 \+ cuDNN 8\.1/);
      return true;
    });
    assert.notEqual(tf.getBackend(), 'tensorflow');
  });

  test('auto takes the first backend that loads and says why it skipped the others', async () => {
    const choice = await initBackend('auto');
    assert.equal(tf.getBackend(), choice.name);
    if (choice.name !== 'tensorflow') {
      assert.equal(choice.attempts[0]!.backend, 'tensorflow');
      assert.equal(choice.attempts[0]!.ok, false);
      assert.match(choice.reason, /^auto chose wasm \(tensorflow: .*not installed/);
    }
    assert.equal((await initBackend('cpu')).name, 'cpu');
    assert.equal((await initBackend('wasm')).reason, 'wasm was requested');
  });

  test('evaluation (clean, FGSM at several ε, rubbish, figures) leaks no tensor', async () => {
    await initBackend('wasm');
    const m = model('softmax');
    const n = 50;
    const test = { name: 'test' as const, x: randomImages(n, 1), y: randomLabels(n, 10, 1), n };
    const before = tf.memory().numTensors;
    const result = evaluate(m, test, {
      attack: { method: 'fgsm', epsilons: [0.1, 0.25], clip: 'none', labels: 'true', target: 'none', batchSize: 16 },
      rubbishSamples: 100,
      figureExamples: 3,
      seed: 1,
      progress: createProgress('quiet'),
    });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(result.examples.triples.length, 3);
    assert.equal(result.fgsm['0.25']!.n, n);
    assert.equal(result.rubbish!.samples, 100);
    m.dispose();
  });
});
