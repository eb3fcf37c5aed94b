import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stream } from '../src/core/rng.js';
import { rbfShape, RbfForward, RbfInputSign, RbfParameterGradient, type RbfShape } from '../src/engine/kernels/rbf.js';
import { rbfForwardReference, rbfInputSignReference, rbfParameterGradientReference } from '../src/engine/kernels/rbf-reference.js';
import { layoutOf, asEngineNetwork } from '../src/engine/network.js';
import type { ModelSpec, RbfSpec } from '../src/models/classifier.js';
import { engineRuntime, maxRelativeDifference } from './engine-helpers.js';

/*
 * The RBF kernels against their float64 references, on two stacked lanes of a small network (23 inputs, 3 classes)
 * in the packed layout the engine gives it, for each parameterisation of the precisions.
 */

const [LANES, ROWS, INPUTS, CLASSES] = [2, 6, 23, 3];

function shapeOf(precision: RbfSpec['precision']): RbfShape {
  const spec: ModelSpec = {
    kind: 'rbf',
    inputSize: INPUTS,
    classes: [0, 1, 2],
    maxColumnNorm: null,
    output: 'independent',
    precision,
    init: { centres: 'class-means', precision: 0.05 },
  };
  const network = asEngineNetwork(spec)!;
  return rbfShape(network, layoutOf(network), LANES, ROWS);
}

/** ρ (positive for clamp, where it is a itself), μ in [0, 1] and images in [0, 1]: row 1 of lane 0 sits on class 2's centre (d = 0). */
function problem(shape: RbfShape, seed: number) {
  const random = stream(seed, 'engine-rbf');
  const parameters = new Float32Array(LANES * shape.laneFloats);
  const input = random.fillUniform(new Float32Array(LANES * ROWS * INPUTS), 0, 1);
  for (let lane = 0; lane < LANES; lane++) {
    for (let at = 0; at < INPUTS * CLASSES; at++) {
      parameters[lane * shape.laneFloats + at] = shape.precision === 'clamp' ? 0.01 + 0.19 * random.next() : -4 + 3 * random.next();
      parameters[lane * shape.laneFloats + shape.muOffset + at] = random.next();
    }
  }
  for (let f = 0; f < INPUTS; f++) input[1 * INPUTS + f] = parameters[shape.muOffset + f * CLASSES + 2]!;
  const dLogits = random.fillUniform(new Float32Array(LANES * ROWS * CLASSES), -1, 1);
  return { parameters, input, dLogits };
}

test('the RBF kernels equal their float64 references: −d, ∂J/∂ρ and ∂J/∂μ, sign(∇ₓJ) and x̃, each precision, two lanes, a row on a centre', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  for (const precision of ['clamp', 'exp', 'softplus'] as const) {
    const shape = shapeOf(precision);
    const { parameters, input, dLogits } = problem(shape, 3);
    const buffers = {
      parameters: runtime.bufferWith('parameters', parameters),
      input: runtime.bufferWith('input', input),
      logits: runtime.buffer('logits', LANES * ROWS * CLASSES * 4),
      dLogits: runtime.bufferWith('dLogits', dLogits),
      gradients: runtime.bufferWith('gradients', new Float32Array(LANES * shape.laneFloats).fill(7)),
      output: runtime.buffer('output', LANES * ROWS * INPUTS * 4),
    };
    const read = async (buffer: GPUBuffer, floats: number) => new Float32Array(await runtime.read(buffer, 0, floats * 4));

    const forward = await RbfForward.create(runtime, shape, buffers);
    forward.record(0);
    const logits = await read(buffers.logits, LANES * ROWS * CLASSES);
    const expected = rbfForwardReference(shape, parameters, input);
    assert.ok(maxRelativeDifference(logits, expected, 1e-3) < 1e-5, `${precision}: −d`);
    assert.ok(Math.abs(logits[1 * CLASSES + 2]!) < 1e-5, `${precision}: a row on a centre: d ${logits[1 * CLASSES + 2]}`);
    assert.ok(
      logits.every((z) => z <= 0),
      'd ≥ 0',
    );

    const gradient = await RbfParameterGradient.create(runtime, shape, buffers);
    gradient.record(0);
    const gradients = await read(buffers.gradients, LANES * shape.laneFloats);
    const expectedGradients = rbfParameterGradientReference(shape, parameters, input, logits, dLogits);
    assert.ok(maxRelativeDifference(gradients, expectedGradients, 1e-3) < 1e-4, `${precision}: ∂J/∂ρ, ∂J/∂μ`);
    for (let lane = 0; lane < LANES; lane++) {
      const bias = lane * shape.laneFloats + INPUTS * CLASSES;
      assert.deepEqual(Array.from(gradients.subarray(bias, bias + CLASSES)), [0, 0, 0], `${precision}: ρ's unused bias row`);
    }

    for (const epsilon of [null, 0.25]) {
      const sign = await RbfInputSign.create(runtime, { ...shape, epsilon }, buffers);
      sign.record(0);
      const output = await read(buffers.output, LANES * ROWS * INPUTS);
      const want = rbfInputSignReference(shape, epsilon, parameters, input, logits, dLogits);
      assert.deepEqual(Array.from(output), Array.from(want), `${precision}: ${epsilon === null ? 'sign(∇ₓJ)' : 'x̃'}`);
      sign.dispose();
    }
    for (const kernel of [forward, gradient]) kernel.dispose();
    for (const buffer of Object.values(buffers)) runtime.release(buffer);
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
});
