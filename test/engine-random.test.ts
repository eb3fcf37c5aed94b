import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { initBackend } from '../src/backend/select.js';
import { counterDropoutMask, counterNoise, dropoutThreshold, NOISE_KEY, threefry2x32, type NoiseDistribution } from '../src/core/counter-random.js';
import { stream } from '../src/core/rng.js';
import { THREEFRY_WGSL } from '../src/engine/kernels/threefry.js';
import { buildModel } from '../src/models/build.js';
import type { ModelSpec } from '../src/models/classifier.js';
import { engineRuntime } from './engine-helpers.js';
import { randomImages, randomLabels } from './helpers.js';

const hex = (words: number[]) => words.map((w) => w.toString(16).padStart(8, '0'));

test('Threefry-2x32-20 gives the known-answer vectors of Random123', () => {
  assert.deepEqual(hex(threefry2x32(0, 0, 0, 0)), ['6b200159', '99ba4efe']);
  assert.deepEqual(hex(threefry2x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)), ['1cb996fc', 'bb002be7']);
  assert.deepEqual(hex(threefry2x32(0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3)), ['c4923a9c', '483df7a0']);
});

test('threefry-v1 dropout: keep 1 keeps all, keep 0.5 keeps about half, rows do not depend on how many there are', () => {
  assert.ok(counterDropoutMask(3, 50, 1, 2, 7, 1).every((v) => v === 2));
  const half = counterDropoutMask(100, 100, 0.5, 2, 7, 1);
  const kept = half.filter((v) => v === 2).length;
  assert.ok(Math.abs(kept - 5000) < 250, `${kept} of 10,000 kept`);
  assert.deepEqual(counterDropoutMask(200, 30, 0.8, 1, 9, 0).subarray(0, 100 * 30), counterDropoutMask(100, 30, 0.8, 1, 9, 0));
  assert.notDeepEqual(counterDropoutMask(10, 30, 0.5, 1, 9, 1), counterDropoutMask(10, 30, 0.5, 1, 9, 2));
});

test('the WGSL Threefry and dropout draw equal the TypeScript ones bit for bit on the device', async () => {
  const runtime = await engineRuntime();
  const kernel = await runtime.kernel(
    'threefry-check',
    `${THREEFRY_WGSL}
    @group(0) @binding(0) var<storage, read> inputs: array<vec4<u32>>;
    @group(0) @binding(1) var<storage, read_write> outputs: array<vec4<u32>>;
    @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
      if (id.x >= arrayLength(&inputs)) { return; }
      let v = inputs[id.x];
      let words = threefry2x32(v.xy, v.zw);
      outputs[id.x] = vec4<u32>(words, select(0u, 1u, dropoutKept(v.x, v.y, v.z, v.w, ${dropoutThreshold(0.8)}u)), 0u);
    }`,
    ['read', 'write'],
  );
  const n = 1000;
  const inputs = new Uint32Array(4 * n);
  for (let i = 0; i < inputs.length; i++) inputs[i] = (Math.imul(i + 1, 0x9e3779b9) ^ (i << 7)) >>> 0;
  const input = runtime.bufferWith('inputs', inputs);
  const output = runtime.buffer('outputs', inputs.byteLength);
  runtime.dispatch(kernel, runtime.bind(kernel, [input, output]), [Math.ceil(n / 64)]);
  const got = new Uint32Array(await runtime.read(output, 0, inputs.byteLength));
  for (let i = 0; i < n; i++) {
    const [k0, k1, c0, c1] = inputs.subarray(4 * i, 4 * i + 4);
    const [x0, x1] = threefry2x32(k0!, k1!, c0!, c1!);
    const kept = x0 >>> 8 < dropoutThreshold(0.8) ? 1 : 0;
    assert.deepEqual([got[4 * i], got[4 * i + 1], got[4 * i + 2]], [x0, x1, kept], `element ${i}`);
  }
  runtime.release(input);
  runtime.release(output);
});

test('threefry-v1 noise: ±ε about half each, or ε·(2u − 1) in [−ε, ε); rows do not depend on how many there are', () => {
  const epsilon = Math.fround(0.1);
  const sign = counterNoise(40, 50, 'sign', 0.1, 7);
  assert.ok(sign.every((v) => v === epsilon || v === -epsilon));
  const positive = sign.filter((v) => v > 0).length;
  assert.ok(Math.abs(positive - 1000) < 100, `${positive} of 2,000 positive`);
  const uniform = counterNoise(40, 50, 'uniform', 0.1, 7);
  assert.ok(uniform.every((v) => v >= -epsilon && v < epsilon));
  assert.ok(Math.min(...uniform) < -0.09 && Math.max(...uniform) > 0.09);
  // both read the same bits: the uniform draw is positive exactly where the sign draw is not
  assert.ok(uniform.every((v, i) => v === 0 || v > 0 === sign[i]! < 0));
  assert.deepEqual(counterNoise(30, 20, 'uniform', 0.25, 9).subarray(0, 10 * 20), counterNoise(10, 20, 'uniform', 0.25, 9));
  // the key word is not a layer's: the noise's bits are not the input mask's
  const kept = counterDropoutMask(40, 50, 0.5, 1, 7, 0);
  assert.ok(kept.some((v, i) => (v === 1) !== sign[i]! > 0));
  assert.equal(NOISE_KEY, 0xffffffff);
});

test('the WGSL noise and x + noise equal the TypeScript ones bit for bit on the device', async () => {
  const runtime = await engineRuntime();
  const kernel = await runtime.kernel(
    'threefry-noise-check',
    `${THREEFRY_WGSL}
    // per element: (seed, row, column, x) and (epsilon, opaqueZero, 0, 0)
    @group(0) @binding(0) var<storage, read> inputs: array<vec4<u32>>;
    @group(0) @binding(1) var<storage, read_write> outputs: array<vec4<u32>>;
    @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
      if (2u * id.x >= arrayLength(&inputs)) { return; }
      let v = inputs[2u * id.x];
      let x = bitcast<f32>(v.w);
      let epsilon = bitcast<f32>(inputs[2u * id.x + 1u].x);
      let sign = signNoise(v.x, v.y, v.z, epsilon);
      let uniform = uniformNoise(v.x, v.y, v.z, epsilon, inputs[2u * id.x + 1u].y);
      outputs[id.x] = bitcast<vec4<u32>>(vec4<f32>(sign, uniform, x + sign, x + uniform));
    }`,
    ['read', 'write'],
  );
  const [rows, width] = [6, 37];
  const cases = [
    { seed: 3, epsilon: 0.1 },
    { seed: 0xdeadbeef, epsilon: 0.25 },
    { seed: 12345, epsilon: 0.3 },
  ];
  const xs = randomImages(1, 4).subarray(0, rows * width);
  const n = cases.length * rows * width;
  const inputs = new Uint32Array(8 * n);
  const f32 = new Float32Array(inputs.buffer);
  cases.forEach(({ seed, epsilon }, c) => {
    for (let e = 0; e < rows * width; e++) {
      const at = 8 * (c * rows * width + e);
      inputs.set([seed, Math.floor(e / width), e % width], at);
      f32[at + 3] = xs[e]!;
      f32[at + 4] = epsilon;
    }
  });
  const input = runtime.bufferWith('inputs', inputs);
  const output = runtime.buffer('outputs', 16 * n);
  runtime.dispatch(kernel, runtime.bind(kernel, [input, output]), [Math.ceil(n / 64)]);
  const got = new Float32Array(await runtime.read(output, 0, 16 * n));
  let fusedDiffers = 0;
  cases.forEach(({ seed, epsilon }, c) => {
    const noise = (distribution: NoiseDistribution) => counterNoise(rows, width, distribution, epsilon, seed);
    const [sign, uniform] = [noise('sign'), noise('uniform')];
    for (let e = 0; e < rows * width; e++) {
      const at = 4 * (c * rows * width + e);
      const expected = [sign[e]!, uniform[e]!, Math.fround(xs[e]! + sign[e]!), Math.fround(xs[e]! + uniform[e]!)];
      assert.deepEqual(Array.from(got.subarray(at, at + 4)), expected, `seed ${seed}, element ${e}`);
      // ε·(2u − 1) + x rounded once, as an FMA would
      const twoUMinusOne = (threefry2x32(seed, NOISE_KEY, Math.floor(e / width), e % width)[0] >>> 8) * 2 ** -23 - 1;
      if (Math.fround(Math.fround(epsilon) * twoUMinusOne + xs[e]!) !== expected[3]) fusedDiffers++;
    }
  });
  assert.ok(fusedDiffers > 0, 'the elements include sums that a fused multiply-add would round differently');
  runtime.release(input);
  runtime.release(output);
});

test("the noise controls: counterNoise for a maxout with threefry-v1, else stream(seed, 'noise') as before", async () => {
  await initBackend('wasm');
  const spec = (stream: 'sfc32-rows' | 'threefry-v1'): ModelSpec => ({
    kind: 'maxout',
    inputSize: 784,
    classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    maxColumnNorm: null,
    layers: [{ units: 3, pieces: 2 }],
    dropout: { inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2, stream },
    top: 'softmax',
    sigmoidLoss: 'sum',
  });
  const [n, seeds] = [3, [11, 12]];
  const xs = randomImages(2 * n, 5);
  for (const distribution of ['sign', 'uniform'] as const) {
    const noisy = trainingPerturbation({ kind: 'noise', distribution, epsilon: 0.1, mixing: 'replace', alpha: 0.5 })!;
    for (const dropoutStream of ['sfc32-rows', 'threefry-v1'] as const) {
      const model = buildModel(spec(dropoutStream), 0.05, 1);
      const got = tf.tidy(() =>
        noisy.perturb(model, tf.tensor2d(xs, [2 * n, 784]), tf.tensor1d(randomLabels(2 * n, 10, 5), 'int32'), seeds).dataSync(),
      );
      const noise = new Float32Array(2 * n * 784);
      seeds.forEach((seed, i) => {
        const rows = noise.subarray(i * n * 784, (i + 1) * n * 784);
        if (dropoutStream === 'threefry-v1') rows.set(counterNoise(n, 784, distribution, 0.1, seed));
        else if (distribution === 'sign') stream(seed, 'noise').fillBernoulli(rows, 0.5, 0.1, -0.1);
        else stream(seed, 'noise').fillUniform(rows, -0.1, 0.1);
      });
      assert.deepEqual(
        Array.from(got),
        Array.from(xs, (x, i) => Math.fround(x + noise[i]!)),
        `${distribution}, ${dropoutStream}`,
      );
      model.dispose();
    }
  }
});
