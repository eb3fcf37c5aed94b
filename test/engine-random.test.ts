import assert from 'node:assert/strict';
import { test } from 'node:test';
import { counterDropoutMask, dropoutThreshold, threefry2x32 } from '../src/core/counter-random.js';
import { THREEFRY_WGSL } from '../src/engine/kernels/threefry.js';
import { engineRuntime } from './engine-helpers.js';

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
