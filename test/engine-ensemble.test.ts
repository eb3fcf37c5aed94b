import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stream } from '../src/core/rng.js';
import { EnsembleLoss } from '../src/engine/kernels/ensemble-loss.js';
import { ensembleLossReference } from '../src/engine/kernels/ensemble-loss-reference.js';
import { BackwardData, type LayerShape } from '../src/engine/kernels/layers.js';
import { inputGradientReference } from '../src/engine/kernels/layers-reference.js';
import { encodeSteps } from '../src/engine/kernels/step-record.js';
import { STEP_RECORD_BYTES, type GpuRuntime } from '../src/engine/runtime.js';
import type { MaxoutTop } from '../src/models/classifier.js';
import { engineRuntime } from './engine-helpers.js';

/*
 * The kernels of FGSM against a whole ensemble against their float64 references. Small shapes: lavapipe is a CPU.
 */

/** A step-record buffer of one record whose lane 0 starts its batch at `batchStart`. */
function stepsAt(runtime: GpuRuntime, batchStart: number): GPUBuffer {
  const step = { dropoutSeed: 0, gradientSeed: 0, batchStart, active: true, learningRate: 0, momentum: 0, statsSlot: 0 };
  return runtime.uniform('steps', STEP_RECORD_BYTES, new Uint8Array(encodeSteps([[step]])));
}

/** |got − expected| within float32 rounding of the larger of |expected| and `floor` (where a difference of terms cancels). */
function assertClose(got: Float32Array, expected: Float64Array, tolerance: number, floor: number, what: string): void {
  assert.equal(got.length, expected.length, `${what}: length`);
  got.forEach((value, i) =>
    assert.ok(
      Math.abs(value - expected[i]!) <= tolerance * Math.max(Math.abs(expected[i]!), floor),
      `${what} [${i}]: ${value} against ${expected[i]}`,
    ),
  );
}

test('the ensemble loss kernel equals its reference: softmax and sigmoid members, both forms, ragged batches, two workgroups, tied members', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const random = stream(21, 'engine-ensemble-loss');
  const cases: { tops: MaxoutTop[]; rows: number; classes: number }[] = [
    { tops: ['softmax', 'sigmoid', 'softmax'], rows: 37, classes: 10 },
    { tops: ['sigmoid'], rows: 5, classes: 3 },
    { tops: ['softmax', 'softmax'], rows: 70, classes: 7 },
  ];
  for (const { tops, rows, classes } of cases) {
    const members = tops.length;
    const logits = random.fillUniform(new Float32Array(members * rows * classes), -4, 4);
    // the third member repeats the first: a tie at the logsumexp's max in every row
    if (members === 3) logits.copyWithin(2 * rows * classes, 0, rows * classes);
    const examples = rows + 11;
    const labels = Uint32Array.from({ length: examples }, () => random.int(classes));
    const batchStart = 9;
    const rowIndex = Uint32Array.from({ length: batchStart + rows }, (_, i) => (i * 7) % examples);
    const buffers = {
      steps: stepsAt(runtime, batchStart),
      logits: runtime.bufferWith('logits', logits),
      labels: runtime.bufferWith('labels', labels),
      rowIndex: runtime.bufferWith('rowIndex', rowIndex),
      dLogits: runtime.buffer('dLogits', logits.byteLength),
    };
    for (const gradient of ['standard', 'stable'] as const) {
      const shape = { tops, rows, classes, gradient };
      const kernel = await EnsembleLoss.create(runtime, shape, buffers);
      kernel.record(0);
      const got = new Float32Array(await runtime.read(buffers.dLogits, 0, logits.byteLength));
      kernel.dispose();
      const expected = ensembleLossReference(shape, logits, labels, rowIndex, batchStart);
      assertClose(got, expected, 1e-5, 1e-3, `${tops.join('+')} ${gradient}`);
      assert.ok(
        expected.some((d) => Math.abs(d) > 0.05),
        `${tops.join('+')} ${gradient}: gradients of some size`,
      );
    }
    for (const buffer of Object.values(buffers)) runtime.release(buffer);
  }
  assert.equal(runtime.liveBuffers, before);
});

test("the input-gradient epilogue: layer 1's ∇ₓ written, added to what the buffer holds, or signed; no dropout, only layer 1", async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const random = stream(22, 'engine-input-gradient');
  const [rows, inputs, columns] = [23, 50, 12];
  const laneFloats = inputs * columns + columns;
  const shape: LayerShape = { lanes: 1, rows, layer: 1, inputs, columns, laneFloats, offset: 0 };
  const parameters = random.fillUniform(new Float32Array(laneFloats), -1, 1);
  const upstreams = [0, 1].map(() => random.fillUniform(new Float32Array(rows * columns), -1, 1));
  const buffers = {
    steps: stepsAt(runtime, 0),
    parameters: runtime.bufferWith('parameters', parameters),
    first: runtime.bufferWith('upstream 0', upstreams[0]!),
    second: runtime.bufferWith('upstream 1', upstreams[1]!),
    output: runtime.buffer('input gradient', rows * inputs * 4),
  };
  const run = async (upstream: GPUBuffer, accumulate: boolean, sign: boolean): Promise<Float32Array> => {
    const kernel = await BackwardData.create(
      runtime,
      { ...shape, dropout: null, epilogue: { kind: 'input-gradient', accumulate, sign } },
      { steps: buffers.steps, parameters: buffers.parameters, upstream, output: buffers.output },
    );
    kernel.record(0);
    const output = new Float32Array(await runtime.read(buffers.output, 0, rows * inputs * 4));
    kernel.dispose();
    return output;
  };
  const written = await run(buffers.first, false, false);
  // 12 products of values near 1 summed in float32: rounding of about 1e-7 whatever the sum's size
  assertClose(written, inputGradientReference(parameters, upstreams[0]!, { ...shape, sign: false }, null), 1e-5, 0.1, 'written');
  const summed = await run(buffers.second, true, false);
  assertClose(summed, inputGradientReference(parameters, upstreams[1]!, { ...shape, sign: false }, written), 1e-5, 0.1, 'added');
  runtime.write(buffers.output, written);
  const signed = await run(buffers.second, true, true);
  const total = inputGradientReference(parameters, upstreams[1]!, { ...shape, sign: false }, written);
  // the sign of the float64 sum wherever rounding cannot turn it
  signed.forEach((s, i) => assert.ok(Math.abs(total[i]!) < 1e-4 || s === Math.sign(total[i]!), `sign [${i}]: ${s} of ${total[i]}`));
  assert.ok(
    signed.every((s) => s === 1 || s === -1 || s === 0),
    'signs only',
  );
  const dropout = { seed: 'dropoutSeed', inputKeep: 0.8, inputScale: 1.25, hiddenKeep: 0.5, hiddenScale: 2 } as const;
  const epilogue = { kind: 'input-gradient', accumulate: false, sign: true } as const;
  const bound = { steps: buffers.steps, parameters: buffers.parameters, upstream: buffers.first, output: buffers.output };
  await assert.rejects(BackwardData.create(runtime, { ...shape, dropout, epilogue }, bound), /deterministic network/);
  await assert.rejects(BackwardData.create(runtime, { ...shape, layer: 2, dropout: null, epilogue }, bound), /input layer/);
  for (const buffer of Object.values(buffers)) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before);
});
