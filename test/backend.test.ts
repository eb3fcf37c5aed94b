import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { initBackend } from '../src/backend/select.js';
import { createProgress } from '../src/core/progress.js';
import { evaluate } from '../src/eval/evaluate.js';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { buildModel } from '../src/models/build.js';
import { minibatchObjective } from '../src/train/objective.js';
import { MomentumSgd } from '../src/train/sgd.js';
import { model, randomImages, randomLabels } from './helpers.js';

/** Parameters after a few adversarial-training steps of a 784 → maxout(240, 5) → 10 network (large enough for XNNPACK to split its matMuls across threads). */
function parametersAfterAdversarialSteps(): Float32Array[] {
  const network = buildModel(
    {
      kind: 'maxout',
      inputSize: 784,
      classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      maxColumnNorm: 1.9365,
      layers: [{ units: 240, pieces: 5 }],
      dropout: { inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2 },
      top: 'softmax',
      sigmoidLoss: 'sum',
    },
    0.005,
    1,
  );
  const optimizer = new MomentumSgd(network.parameters, { weightDecay: 0, l1FirstLayer: 0 });
  const adversarial = trainingPerturbation({ kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'deterministic', gradient: 'standard' })!;
  const variables = network.parameters.map((p) => p.variable);
  const [images, labels] = [randomImages(100, 4), randomLabels(100, 10, 4)];
  for (let step = 0; step < 5; step++) {
    tf.tidy(() => {
      const [x, y] = [tf.tensor2d(images, [100, 784]), tf.tensor1d(labels, 'int32')];
      const perturbed = adversarial.perturb(network, x, y, [step]);
      const { grads } = tf.variableGrads(() => minibatchObjective(network, x, y, perturbed, adversarial, [step]).loss, variables);
      optimizer.apply(grads, 0.1, 0.5);
      network.constrain();
    });
  }
  const values = variables.map((v) => v.dataSync() as Float32Array);
  optimizer.dispose();
  network.dispose();
  return values;
}

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
      assert.match(choice.reason, /^auto chose (webgpu|wasm) \(tensorflow: .*not installed/);
    }
    assert.equal((await initBackend('cpu')).name, 'cpu');
    assert.equal((await initBackend('wasm')).reason, 'wasm was requested');
  });

  test("tfjs-core's gradients and chained ops are registered (its Node build leaves them out; the umbrella bundled them)", async () => {
    await initBackend('wasm');
    const file = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    const kernels = [...readFileSync(file, 'utf8').matchAll(/from '\.\/gradients\/(\w+)_grad'/g)].map((m) => m[1]!);
    assert.ok(kernels.length > 90, `${kernels.length} gradients listed in ${file}`);
    assert.deepEqual(
      kernels.filter((kernel) => !tf.getGradient(kernel)),
      [],
    );
    // a chained op computes on the one engine: its tensor is a tf.Tensor, counted and disposed like any other
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.tensor1d([1, 2, 3]);
      const part = (x as unknown as { slice(begin: number, size: number): tf.Tensor }).slice(1, 2);
      assert.ok(part instanceof tf.Tensor);
      assert.deepEqual(part.arraySync(), [2, 3]);
    });
    assert.equal(tf.memory().numTensors, before);
  });

  test('wasm on 2 threads starts the threaded build and trains to exactly the bits of one thread', async () => {
    const single = await initBackend('wasm');
    assert.deepEqual([single.threads, tf.getBackend()], [1, 'wasm']);
    const expected = parametersAfterAdversarialSteps();
    const threaded = await initBackend('wasm', { wasmThreads: 2 });
    assert.equal(threaded.name, 'wasm');
    assert.equal(threaded.threads, 2);
    assert.equal(tf.getBackend(), 'wasm-threads');
    assert.match(threaded.detail, /threaded SIMD build \(2 threads\)/);
    assert.deepEqual(parametersAfterAdversarialSteps(), expected);
    // the pool is fixed once started: another count falls back to one thread and says why
    const fallback = await initBackend('wasm', { wasmThreads: 3 });
    assert.equal(fallback.threads, 1);
    assert.equal(tf.getBackend(), 'wasm');
    assert.match(
      fallback.detail,
      /single thread; 3 threads were asked for, but the threaded build did not start: .*already runs the threaded build with 2 threads/,
    );
  });

  test('evaluation (clean, FGSM at several ε, rubbish, figures) leaks no tensor', async () => {
    await initBackend('wasm');
    const m = model('softmax');
    const n = 50;
    const test = { name: 'test' as const, x: randomImages(n, 1), y: randomLabels(n, 10, 1), n };
    const before = tf.memory().numTensors;
    const result = await evaluate(m, test, {
      attack: { method: 'fgsm', epsilons: [0.1, 0.25], clip: 'none', labels: 'true', target: 'none', batchSize: 16, gradient: 'standard' },
      rubbishSamples: 100,
      figureExamples: 3,
      seed: 1,
      progress: createProgress('quiet'),
    });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(result.examples.triples.length, 3);
    assert.equal(result.fgsm['0.25']!.n, n);
    assert.equal(result.fgsmOtherGradient['0.25']!.gradient, 'stable');
    assert.equal(result.rubbish!.samples, 100);
    m.dispose();
  });
});
