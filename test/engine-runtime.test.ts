import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stackedParametersTooLarge } from '../src/engine/network.js';
import { STEP_RECORD_BYTES } from '../src/engine/runtime.js';
import type { ModelSpec } from '../src/models/classifier.js';
import { engineRuntime } from './engine-helpers.js';

test('engine runtime: a kernel with a per-step record runs, counts its dispatches, writes and reads, and releases its buffers', async () => {
  const runtime = await engineRuntime();
  const kernel = await runtime.kernel(
    'scale',
    /* wgsl */ `
      struct Step { factor: f32 }
      @group(0) @binding(0) var<uniform> step: Step;
      @group(0) @binding(1) var<storage, read> x: array<f32>;
      @group(0) @binding(2) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
        if (id.x < arrayLength(&x)) { y[id.x] = y[id.x] + step.factor * x[id.x]; }
      }`,
    ['step', 'read', 'write'],
  );
  const before = runtime.liveBuffers;
  const floats = STEP_RECORD_BYTES / 4;
  const records = new Float32Array(3 * floats);
  [1, 10, 100].forEach((factor, i) => (records[i * floats] = factor));
  const steps = runtime.uniform('steps', records.byteLength, records);
  const x = runtime.bufferWith(
    'x',
    Float32Array.from({ length: 100 }, (_, i) => i),
  );
  const y = runtime.buffer('y', 400);
  const group = runtime.bind(kernel, [steps, x, y]);
  const counted = { ...runtime.counters };
  for (let step = 0; step < 3; step++) runtime.dispatch(kernel, group, [2], step);
  const out = new Float32Array(await runtime.read(y, 0, 400));
  assert.deepEqual(Array.from(out.slice(0, 4)), [0, 111, 222, 333]);
  assert.equal(runtime.counters.dispatches - counted.dispatches, 3);
  assert.equal(runtime.counters.reads - counted.reads, 1);
  assert.equal(runtime.counters.submits - counted.submits, 1);
  [steps, x, y].forEach((buffer) => runtime.release(buffer));
  assert.equal(runtime.liveBuffers, before - 0);
  await assert.rejects(runtime.kernel('broken', 'fn main( {', []), /engine kernel broken/);
});

test('engine runtime: a buffer larger than the device binds is refused by name, and a device error surfaces as an exception', async () => {
  const runtime = await engineRuntime();
  const kernel = await runtime.kernel(
    'fill',
    /* wgsl */ `
      @group(0) @binding(0) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
        if (id.x < arrayLength(&y)) { y[id.x] = 1.0; }
      }`,
    ['write'],
  );
  const huge = runtime.buffer('huge', runtime.device.limits.maxStorageBufferBindingSize + 4);
  assert.throws(() => runtime.bind(kernel, [huge]), /fill: buffer huge holds \d+ bytes, more than this device binds/);
  runtime.release(huge);
  const y = runtime.buffer('y', 256);
  const group = runtime.bind(kernel, [y]);
  await runtime.checked('a fill', async () => runtime.dispatch(kernel, group, [1]));
  y.destroy(); // used after destruction: Dawn invalidates the submit
  await assert.rejects(
    runtime.checked('a fill of a destroyed buffer', async () => {
      runtime.dispatch(kernel, group, [1]);
      runtime.submit();
    }),
    /the GPU refused a fill of a destroyed buffer/,
  );
  runtime.release(y);
});

test("stacked seeds' parameters against the adapter's binding limit: §6's five 1600-unit seeds do not fit lavapipe's 128 MiB, one does", async () => {
  const runtime = await engineRuntime();
  const limit = runtime.device.limits.maxStorageBufferBindingSize;
  const layers = [
    { units: 1600, pieces: 5 },
    { units: 1600, pieces: 5 },
  ];
  const maxout1600: ModelSpec = {
    kind: 'maxout',
    inputSize: 784,
    classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    maxColumnNorm: null,
    layers,
    dropout: null,
    top: 'softmax',
    sigmoidLoss: 'sum',
  };
  // per lane: (784 + 1)·8000 + (1600 + 1)·8000 + (1600 + 1)·10 floats
  const laneBytes = ((784 + 1) * 8000 + (1600 + 1) * 8000 + (1600 + 1) * 10) * 4;
  assert.equal(stackedParametersTooLarge(maxout1600, 1, laneBytes), null);
  assert.match(
    stackedParametersTooLarge(maxout1600, 2, laneBytes)!,
    /^2 stacked seeds' parameters take 146 MiB, more than this adapter binds in one buffer \(72 MiB\)$/,
  );
  assert.match(stackedParametersTooLarge(maxout1600, 1, laneBytes - 4)!, /^the network's parameters take 73 MiB/);
  if (limit === 128 * 2 ** 20) {
    assert.equal(stackedParametersTooLarge(maxout1600, 1, limit), null);
    assert.match(stackedParametersTooLarge(maxout1600, 5, limit)!, /5 stacked seeds' parameters take 365 MiB, .*\(128 MiB\)/);
  }
  const rbf: ModelSpec = {
    kind: 'rbf',
    inputSize: 784,
    classes: [0, 1],
    maxColumnNorm: null,
    output: 'softmax',
    precision: 'exp',
    init: { centres: 'class-means', precision: 1 },
  };
  assert.match(stackedParametersTooLarge(rbf, 5, 1)!, /5 stacked seeds' parameters take/, 'the RBF network is packed too');
  const ensemble: ModelSpec = { ...rbf, kind: 'ensemble', members: [rbf, rbf] };
  assert.equal(stackedParametersTooLarge(ensemble, 5, 1), null, 'only the networks the engine packs are measured');
});
