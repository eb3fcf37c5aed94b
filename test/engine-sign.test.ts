import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackwardData } from '../src/engine/kernels/layers.js';
import { encodeSteps } from '../src/engine/kernels/step-record.js';
import { STEP_RECORD_BYTES } from '../src/engine/runtime.js';
import { engineRuntime } from './engine-helpers.js';
import { randomImages } from './helpers.js';

const INPUTS = 784;
const COLUMNS = 6;
const N = 3;
const EPSILON = 0.25;

test('the FGSM step in the engine takes the sign of gradients far too small for an inexact sign (1e-30) exactly', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const images = randomImages(N, 3);
  const w = randomImages(INPUTS + 1, 4)
    .subarray(0, (INPUTS + 1) * COLUMNS)
    .map((v) => v - 0.5);
  // dJ/d(pre-activations) of 1e-30: its products with W stay normal float32 numbers, about 1e-31
  const upstream = Float32Array.from({ length: N * COLUMNS }, (_, i) => (i % 3 === 0 ? -1e-30 : 1e-30) * (1 + i / 7));
  const step = { dropoutSeed: 1, gradientSeed: 2, batchStart: 0, active: true, learningRate: 0, momentum: 0, statsSlot: 0 };
  const buffers = {
    steps: runtime.uniform('steps', STEP_RECORD_BYTES, new Uint8Array(encodeSteps([[step]]))),
    parameters: runtime.bufferWith('parameters', w),
    upstream: runtime.bufferWith('upstream', upstream),
    output: runtime.buffer('adversarial', N * INPUTS * 4),
    batch: {
      images: runtime.bufferWith('images', images),
      rowIndex: runtime.bufferWith('rowIndex', Uint32Array.from([0, 1, 2])),
      indexStride: N,
      batchRows: N,
    },
  };
  const shape = { lanes: 1, rows: N, layer: 1, inputs: INPUTS, columns: COLUMNS, laneFloats: (INPUTS + 1) * COLUMNS, offset: 0 };
  const kernel = await BackwardData.create(runtime, { ...shape, dropout: null, epilogue: { kind: 'input-sign', epsilon: EPSILON } }, buffers);
  kernel.record(0);
  const adversarial = new Float32Array(await runtime.read(buffers.output, 0, N * INPUTS * 4));
  for (let r = 0; r < N; r++) {
    for (let k = 0; k < INPUTS; k++) {
      let g = 0;
      for (let c = 0; c < COLUMNS; c++) g += upstream[r * COLUMNS + c]! * w[k * COLUMNS + c]!;
      assert.ok(Math.abs(g) > 1e-38, 'a normal float32 gradient');
      assert.equal(adversarial[r * INPUTS + k], Math.fround(images[r * INPUTS + k]! + EPSILON * Math.sign(g)), `row ${r} pixel ${k}`);
    }
  }
  kernel.dispose();
  for (const buffer of [buffers.steps, buffers.parameters, buffers.upstream, buffers.output, buffers.batch.images, buffers.batch.rowIndex])
    runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before);
});
