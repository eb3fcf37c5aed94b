import assert from 'node:assert/strict';
import { test } from 'node:test';
import { counterNoise } from '../src/core/counter-random.js';
import { BatchInputKernel } from '../src/engine/kernels/batch-input.js';
import type { PassDropout } from '../src/engine/kernels/layers.js';
import { batchInputReference, laneMask } from '../src/engine/kernels/layers-reference.js';
import { encodeSteps, type LaneStep } from '../src/engine/kernels/step-record.js';
import { STEP_RECORD_BYTES, type GpuRuntime } from '../src/engine/runtime.js';
import { engineRuntime } from './engine-helpers.js';
import { randomImages } from './helpers.js';

const INPUTS = 784;
const N = 5;
const EXAMPLES = 30;

/** Two lanes' step entries: dropout seeds `seed` and `seed + 10` (gradient seeds one above), minibatches at `starts`. */
const twoLanes = (seed: number, starts: [number, number]): LaneStep[] =>
  starts.map((batchStart, l) => ({
    dropoutSeed: seed + 10 * l,
    gradientSeed: seed + 10 * l + 1,
    batchStart,
    active: true,
    learningRate: 0,
    momentum: 0,
    statsSlot: 0,
  }));

/** Random examples in a shuffled order on the device, with two step records (tests record step 1) and x̃ rows if given. */
function residentExamples(runtime: GpuRuntime, seed: number, lanes: LaneStep[], adversarial?: Float32Array) {
  const images = randomImages(EXAMPLES, seed);
  const rowIndex = Uint32Array.from({ length: 2 * EXAMPLES }, (_, i) => (i * (6 * seed + 1) + seed) % EXAMPLES);
  const steps = runtime.uniform('steps', 2 * STEP_RECORD_BYTES, new Uint8Array(encodeSteps([lanes, lanes])));
  const batch = {
    images: runtime.bufferWith('images', images),
    rowIndex: runtime.bufferWith('rowIndex', rowIndex),
    indexStride: EXAMPLES,
    batchRows: N,
    ...(adversarial ? { adversarial: runtime.bufferWith('adversarial', adversarial) } : {}),
  };
  const host = { images, rowIndex, indexStride: EXAMPLES, batchRows: N, ...(adversarial ? { adversarial } : {}) };
  const release = () => [steps, batch.images, batch.rowIndex, ...(batch.adversarial ? [batch.adversarial] : [])].forEach((b) => runtime.release(b));
  return { steps, batch, host, release };
}

test("a pass's batch input: rows by index, then x̃ rows, times the input mask, exactly as the reference", async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const lanes = twoLanes(11, [10, 5]);
  const { steps, batch, host, release } = residentExamples(runtime, 1, lanes, randomImages(2 * N, 2));
  const dropouts: (PassDropout | null)[] = [
    null,
    { seed: 'dropoutSeed', inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2 },
    { seed: 'gradientSeed', inputKeep: 0.5, inputScale: 2, hiddenKeep: 0.5, hiddenScale: 2 },
  ];
  for (const rows of [N, 2 * N]) {
    for (const dropout of dropouts) {
      const output = runtime.buffer('output', 2 * rows * INPUTS * 4);
      const kernel = await BatchInputKernel.create(runtime, { lanes: 2, rows, inputs: INPUTS, dropout }, { steps, batch, output });
      kernel.record(1);
      const got = new Float32Array(await runtime.read(output, 0, 2 * rows * INPUTS * 4));
      const expected = batchInputReference(host, lanes, { lanes: 2, rows, inputs: INPUTS }, dropout);
      assert.deepEqual(Array.from(got), Array.from(expected, Math.fround), `rows ${rows}, dropout ${dropout?.seed ?? 'none'}`);
      // the images hold no zero: every zero is a dropped pixel
      assert.equal(
        got.some((v) => v === 0),
        dropout !== null,
      );
      kernel.dispose();
      runtime.release(output);
    }
  }
  release();
  assert.equal(runtime.liveBuffers, before);
});

test("the noise controls' batch input: x + counterNoise drawn from the clean rows (after them for alpha-mix, alone for replace), then masked", async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const lanes = twoLanes(31, [7, 2]);
  const { steps, batch, host, release } = residentExamples(runtime, 3, lanes);
  const clean = batchInputReference(host, lanes, { lanes: 2, rows: N, inputs: INPUTS }, null, false);
  const dropout: PassDropout = { seed: 'dropoutSeed', inputKeep: 0.8, inputScale: 2, hiddenKeep: 0.5, hiddenScale: 2 };
  for (const distribution of ['sign', 'uniform'] as const) {
    for (const rows of [N, 2 * N]) {
      for (const masks of [null, dropout]) {
        const noise = { distribution, epsilon: 0.3 };
        const output = runtime.buffer('output', 2 * rows * INPUTS * 4);
        const kernel = await BatchInputKernel.create(runtime, { lanes: 2, rows, inputs: INPUTS, dropout: masks, noise }, { steps, batch, output });
        kernel.record(1);
        const got = new Float32Array(await runtime.read(output, 0, 2 * rows * INPUTS * 4));
        const expected = new Float32Array(2 * rows * INPUTS);
        lanes.forEach((step, l) => {
          const x = clean.subarray(l * N * INPUTS, (l + 1) * N * INPUTS);
          const drawn = counterNoise(N, INPUTS, distribution, 0.3, step.dropoutSeed);
          const noisy = Array.from(x, (v, i) => Math.fround(v + drawn[i]!));
          const mask = laneMask(masks, step, 0, rows, INPUTS);
          (rows > N ? [...x, ...noisy] : noisy).forEach((v, i) => (expected[l * rows * INPUTS + i] = v * (mask ? mask[i]! : 1)));
        });
        assert.deepEqual(Array.from(got), Array.from(expected), `${distribution}, rows ${rows}, dropout ${masks ? 'on' : 'off'}`);
        kernel.dispose();
        runtime.release(output);
      }
    }
  }
  release();
  assert.equal(runtime.liveBuffers, before);
});
