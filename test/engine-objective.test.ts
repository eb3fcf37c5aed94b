import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/select.js';
import { stream } from '../src/core/rng.js';
import { CrossEntropy, type CrossEntropyShape, type EngineGradient } from '../src/engine/kernels/cross-entropy.js';
import { crossEntropyReference } from '../src/engine/kernels/cross-entropy-reference.js';
import { encodeSteps, type LaneStep } from '../src/engine/kernels/step-record.js';
import { Update, type UpdateShape } from '../src/engine/kernels/update.js';
import { updateReference } from '../src/engine/kernels/update-reference.js';
import type { EngineTop } from '../src/engine/network.js';
import { PackedLayout } from '../src/engine/parameters.js';
import { STEP_RECORD_BYTES, type GpuRuntime } from '../src/engine/runtime.js';
import type { Classifier, MaxoutTop, ModelSpec, SigmoidLoss } from '../src/models/classifier.js';
import { applyMaxColumnNorm } from '../src/models/dense.js';
import { LogisticRegression } from '../src/models/linear.js';
import { MaxoutNetwork } from '../src/models/maxout.js';
import { RbfNetwork } from '../src/models/rbf.js';
import { minibatchObjective } from '../src/train/objective.js';
import { MomentumSgd } from '../src/train/sgd.js';
import { engineRuntime, maxRelativeDifference } from './engine-helpers.js';

const laneStep = (overrides: Partial<LaneStep> = {}): LaneStep => ({
  dropoutSeed: 0,
  gradientSeed: 0,
  batchStart: 0,
  active: true,
  learningRate: 0.1,
  momentum: 0.5,
  statsSlot: 0,
  ...overrides,
});

const stepBuffer = (runtime: GpuRuntime, steps: readonly (readonly LaneStep[])[]) =>
  runtime.uniform('steps', steps.length * STEP_RECORD_BYTES, new Uint8Array(encodeSteps(steps)));

const uniform = (seed: number, length: number, low: number, high: number) =>
  stream(seed, 'engine-objective').fillUniform(new Float32Array(length), low, high);

/** Examples, their labels and two lanes' epoch orders: lane l's order is a rotation of the examples by 3·l. */
const EXAMPLES = 13;
const LABEL_SEED = 5;
function labelsOf(classes: number): Uint32Array {
  const random = stream(LABEL_SEED, 'labels');
  return Uint32Array.from({ length: EXAMPLES }, () => random.int(classes));
}
const rowIndexOf = (lanes: number) =>
  Uint32Array.from({ length: lanes * EXAMPLES }, (_, i) => ((i % EXAMPLES) + 3 * Math.floor(i / EXAMPLES)) % EXAMPLES);

interface CrossEntropyRun {
  dLogits: Float32Array;
  stats: Float32Array;
}

/** One dispatch of the kernel at step record `stepIndex` of `steps`; every buffer it made released again. */
async function runCrossEntropy(
  runtime: GpuRuntime,
  shape: CrossEntropyShape,
  logits: Float32Array,
  labels: Uint32Array,
  steps: readonly (readonly LaneStep[])[],
  stepIndex = 0,
  statsSlots = 1,
): Promise<CrossEntropyRun> {
  const before = runtime.liveBuffers;
  const buffers = {
    steps: stepBuffer(runtime, steps),
    logits: runtime.bufferWith('logits', logits),
    labels: runtime.bufferWith('labels', labels),
    rowIndex: runtime.bufferWith('rowIndex', rowIndexOf(shape.lanes)),
    dLogits: runtime.buffer('dLogits', logits.byteLength),
    stats: runtime.buffer('stats', statsSlots * shape.lanes * 2 * 4),
  };
  const kernel = await CrossEntropy.create(runtime, shape, buffers);
  kernel.record(stepIndex);
  const dLogits = new Float32Array(await runtime.read(buffers.dLogits, 0, logits.byteLength));
  const stats = new Float32Array(await runtime.read(buffers.stats, 0, statsSlots * shape.lanes * 2 * 4));
  kernel.dispose();
  for (const buffer of Object.values(buffers)) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before, 'buffers released');
  return { dLogits, stats };
}

/** Rows of lane l of an [x; x̃] pass: its batch rows of x, then the same examples' x̃; rows of x are grouped by lane. */
function split(values: Float32Array, lanes: number, batch: number, classes: number): { clean: Float32Array; adversarial: Float32Array } {
  const half = batch * classes;
  const clean = new Float32Array(lanes * half);
  const adversarial = new Float32Array(lanes * half);
  for (let lane = 0; lane < lanes; lane++) {
    clean.set(values.subarray(2 * lane * half, (2 * lane + 1) * half), lane * half);
    adversarial.set(values.subarray((2 * lane + 1) * half, (2 * lane + 2) * half), lane * half);
  }
  return { clean, adversarial };
}

const alphaMix = (top: EngineTop, sigmoidLoss: SigmoidLoss, gradient: EngineGradient, classes: number): CrossEntropyShape => ({
  lanes: 2,
  rows: 10,
  batch: 5,
  classes,
  indexStride: EXAMPLES,
  top,
  sigmoidLoss,
  gradient,
  weights: { clean: 0.3, adversarial: 1 - 0.3 },
  reduction: 'mean',
  statistics: { misclassifiedRows: 5 },
});

const OUTPUTS: [MaxoutTop, SigmoidLoss][] = [
  ['softmax', 'sum'],
  ['sigmoid', 'sum'],
  ['sigmoid', 'mean'],
];

/** Each lane's (batchStart) and stats slot: lane 1 starts mid-epoch, and the results go to slot 1. */
const STEPS = [
  [laneStep(), laneStep()],
  [laneStep({ batchStart: 0, statsSlot: 1 }), laneStep({ batchStart: 6, statsSlot: 1 })],
];

test('cross-entropy equals its float64 reference: softmax and sigmoid (sum, mean) tops, both gradient forms, 10 and 3 classes', async () => {
  const runtime = await engineRuntime();
  for (const classes of [10, 3]) {
    for (const [top, sigmoidLoss] of OUTPUTS) {
      for (const gradient of ['standard', 'stable'] as const) {
        const shape = alphaMix(top, sigmoidLoss, gradient, classes);
        const what = `${top} ${top === 'sigmoid' ? sigmoidLoss : ''} ${gradient}, ${classes} classes`;
        const logits = uniform(classes, shape.lanes * shape.rows * classes, -4, 4);
        const labels = labelsOf(classes);
        const got = await runCrossEntropy(runtime, shape, logits, labels, STEPS, 1, 2);
        const want = crossEntropyReference(shape, logits, labels, rowIndexOf(2), [0, 6]);
        // entries of a row are compared on the scale of its weight: a gradient near 0 is a difference of terms that size
        assert.ok(maxRelativeDifference(got.dLogits, want.dLogits, 1e-3 / shape.batch) < 1e-5, `${what}: gradient`);
        const slot1 = Array.from(got.stats.subarray(4, 8));
        assert.ok(maxRelativeDifference([slot1[0]!, slot1[2]!], want.objective) < 1e-5, `${what}: objective`);
        assert.deepEqual([slot1[1], slot1[3]], want.misclassified, `${what}: misclassified`);
        assert.deepEqual(Array.from(got.stats.subarray(0, 4)), [0, 0, 0, 0], `${what}: slot 0 untouched`);
      }
    }
  }
});

test('cross-entropy of a plain pass, a replace pass and the FGSM pass (weight 1 per row, no statistics) equals the reference', async () => {
  const runtime = await engineRuntime();
  const classes = 10;
  const labels = labelsOf(classes);
  const base = alphaMix('softmax', 'sum', 'standard', classes);
  const shapes: CrossEntropyShape[] = [
    { ...base, rows: 5, weights: { clean: 1, adversarial: 0 } },
    {
      ...base,
      top: 'sigmoid',
      sigmoidLoss: 'mean',
      gradient: 'stable',
      rows: 5,
      weights: { clean: 1, adversarial: 0 },
      statistics: { misclassifiedRows: 3 },
    },
    { ...base, rows: 5, weights: { clean: 1, adversarial: 0 }, reduction: 'sum', statistics: null },
  ];
  for (const shape of shapes) {
    const logits = uniform(shape.rows, shape.lanes * shape.rows * classes, -4, 4);
    const got = await runCrossEntropy(runtime, shape, logits, labels, STEPS, 1, 2);
    const want = crossEntropyReference(shape, logits, labels, rowIndexOf(2), [0, 6]);
    assert.ok(maxRelativeDifference(got.dLogits, want.dLogits, 1e-3 / shape.batch) < 1e-5, `${JSON.stringify(shape)}: gradient`);
    if (!shape.statistics) {
      assert.ok(
        got.stats.every((v) => v === 0),
        'no statistics written',
      );
      continue;
    }
    assert.ok(maxRelativeDifference([got.stats[4]!, got.stats[6]!], want.objective) < 1e-5, `${JSON.stringify(shape)}: objective`);
    assert.deepEqual([got.stats[5], got.stats[7]], want.misclassified);
  }
});

const identityModel = (
  top: MaxoutTop,
  sigmoidLoss: SigmoidLoss,
  classes: number,
  gradient: EngineGradient,
): { model: Classifier; dispose(): void } => {
  const spec: Extract<ModelSpec, { kind: 'maxout' }> = {
    kind: 'maxout',
    inputSize: 1,
    classes: Array.from({ length: classes }, (_, k) => k),
    maxColumnNorm: null,
    layers: [],
    dropout: null,
    top,
    sigmoidLoss,
  };
  const network = new MaxoutNetwork(spec, 0.05, 1);
  return { model: logitsAsInput(network, gradient), dispose: () => network.dispose() };
};

/**
 * `network`'s loss and probabilities (its gradient form `gradient`) on logits given as the input: tf.grad with respect
 * to the input is the gradient with respect to the logits.
 */
const logitsAsInput = (network: Classifier, gradient?: EngineGradient): Classifier => ({
  spec: network.spec,
  parameters: [],
  logits: (x) => x,
  loss: (z, y) => network.loss(z, y, gradient),
  probabilities: (z) => network.probabilities(z),
  logProbabilities: (z) => network.logProbabilities(z, gradient),
  constrain: () => undefined,
  reinitialize: () => undefined,
  dispose: () => undefined,
});

/**
 * tfjs's minibatchObjective (α-mix, α = 0.3) of `model` over the two lanes of an alphaMix pass, [x; x̃] per network,
 * its logits (`columns` a row) as the input: the gradients with respect to x's and x̃'s logits, and the lanes' objectives
 * then their misclassified counts.
 */
async function tfjsObjective(
  model: Classifier,
  shape: CrossEntropyShape,
  logits: Float32Array,
  labels: Uint32Array,
  columns: number,
): Promise<{ dx: Float32Array; dxt: Float32Array; stats: Float32Array }> {
  const rowIndex = rowIndexOf(2);
  const { clean, adversarial } = split(logits, 2, shape.batch, columns);
  const y = Array.from(
    { length: 2 * shape.batch },
    (_, i) => labels[rowIndex[Math.floor(i / shape.batch) * EXAMPLES + (i < shape.batch ? 0 : 6) + (i % shape.batch)]!]!,
  );
  const [gradients, objective] = tf.tidy(() => {
    const [x, xt] = [tf.tensor2d(clean, [2 * shape.batch, columns]), tf.tensor2d(adversarial, [2 * shape.batch, columns])];
    const labelTensor = tf.tensor1d(y, 'int32');
    const mixing = { mixing: 'alpha-mix' as const, alpha: 0.3 };
    const grads = tf.grads(
      (a: tf.Tensor, b: tf.Tensor) => minibatchObjective(model, a as tf.Tensor2D, labelTensor, b as tf.Tensor2D, mixing, [1, 2]).loss,
    );
    const result = minibatchObjective(model, x, labelTensor, xt, mixing, [1, 2]);
    return [grads([x, xt]), tf.concat([result.networkLosses, result.misclassified])];
  });
  const [dx, dxt] = await Promise.all(gradients.map((g) => g.data<'float32'>()));
  const stats = await objective.data<'float32'>();
  tf.dispose([...gradients, objective]);
  return { dx: dx!, dxt: dxt!, stats };
}

/**
 * Logits in which row 0 of each lane's clean rows and row 1 of its x̃ rows have the true class 28 or more above the rest
 * (p_y and σ(z_y) round to 1 in float32), row 2 a tie for the top; the others are ordinary.
 */
function saturatedLogits(shape: CrossEntropyShape, labels: Uint32Array, batchStarts: number[]): Float32Array {
  const logits = uniform(7, shape.lanes * shape.rows * shape.classes, -2, 2);
  const rowIndex = rowIndexOf(shape.lanes);
  for (let lane = 0; lane < shape.lanes; lane++) {
    for (const r of [0, shape.batch + 1].filter((r) => r < shape.rows)) {
      const label = labels[rowIndex[lane * shape.indexStride + batchStarts[lane]! + (r % shape.batch)]!]!;
      logits[(lane * shape.rows + r) * shape.classes + label] = 30;
    }
    // a tie for the highest logit between the label and every class before it: argMax takes the first
    const label = labels[rowIndex[lane * shape.indexStride + batchStarts[lane]! + 2]!]!;
    logits.fill(5, (lane * shape.rows + 2) * shape.classes, (lane * shape.rows + 2) * shape.classes + label + 1);
  }
  return logits;
}

test('saturated logits: the standard form zeroes ∂J/∂z_y exactly, the stable one does not, and both equal tfjs’s gradient of minibatchObjective', async () => {
  const runtime = await engineRuntime();
  const classes = 10;
  const labels = labelsOf(classes);
  for (const [top, sigmoidLoss] of OUTPUTS) {
    for (const gradient of ['standard', 'stable'] as const) {
      const shape = alphaMix(top, sigmoidLoss, gradient, classes);
      const what = `${top} ${top === 'sigmoid' ? sigmoidLoss : ''} ${gradient}`;
      const logits = saturatedLogits(shape, labels, [0, 6]);
      const got = await runCrossEntropy(runtime, shape, logits, labels, STEPS, 1, 2);
      const rowIndex = rowIndexOf(2);
      for (let lane = 0; lane < 2; lane++) {
        for (const r of [0, shape.batch + 1]) {
          const label = labels[rowIndex[lane * EXAMPLES + (lane === 0 ? 0 : 6) + (r % shape.batch)]!]!;
          const row = got.dLogits.subarray((lane * shape.rows + r) * classes, (lane * shape.rows + r + 1) * classes);
          if (gradient === 'standard') assert.equal(row[label], 0, `${what}: lane ${lane} row ${r}: ∂J/∂z_y`);
          else assert.ok(row[label]! < 0, `${what}: lane ${lane} row ${r}: ∂J/∂z_y = ${row[label]}`);
          assert.ok(
            row.every((v, k) => k === label || v > 0),
            `${what}: the other classes' gradients stay`,
          );
        }
      }

      // tfjs: the same two lanes as minibatchObjective sees them, [x; x̃] per network, the logits as the input
      const { model, dispose } = identityModel(top, sigmoidLoss, classes, gradient);
      const { dx, dxt, stats: tfjsStats } = await tfjsObjective(model, shape, logits, labels, classes);
      dispose();
      const device = split(got.dLogits, 2, shape.batch, classes);
      for (const [ours, theirs, part] of [
        [device.clean, dx, 'x'],
        [device.adversarial, dxt, 'x̃'],
      ] as const) {
        assert.ok(maxRelativeDifference(ours, theirs, 1e-3 / shape.batch) < 1e-5, `${what}: ∂/∂${part} as tfjs`);
        theirs.forEach((v, i) => assert.equal(v === 0, ours[i] === 0, `${what}: ${part}[${i}] is zero in both or neither (${ours[i]}, ${v})`));
      }
      assert.ok(maxRelativeDifference([got.stats[4]!, got.stats[6]!], tfjsStats.subarray(0, 2)) < 1e-5, `${what}: objective as tfjs`);
      assert.deepEqual([got.stats[5], got.stats[7]], Array.from(tfjsStats.subarray(2)), `${what}: misclassified as tfjs`);
    }
  }
});

test('the FGSM pass (weight 1 per row) equals tfjs’s gradient of Σ J on saturated and ordinary logits', async () => {
  const runtime = await engineRuntime();
  const classes = 10;
  const labels = labelsOf(classes);
  for (const [top, sigmoidLoss] of OUTPUTS) {
    for (const gradient of ['standard', 'stable'] as const) {
      const shape: CrossEntropyShape = {
        ...alphaMix(top, sigmoidLoss, gradient, classes),
        lanes: 1,
        rows: 5,
        weights: { clean: 1, adversarial: 0 },
        reduction: 'sum',
        statistics: null,
      };
      const logits = saturatedLogits(shape, labels, [0]);
      const got = await runCrossEntropy(runtime, shape, logits, labels, [[laneStep()]]);
      const { model, dispose } = identityModel(top, sigmoidLoss, classes, gradient);
      const y = Array.from({ length: shape.batch }, (_, r) => labels[rowIndexOf(1)[r]!]!);
      const gradientTensor = tf.tidy(() => {
        const labelTensor = tf.tensor1d(y, 'int32');
        return tf.grad((z: tf.Tensor) => tf.sum(model.loss(z as tf.Tensor2D, labelTensor)))(tf.tensor2d(logits, [shape.rows, classes]));
      });
      const theirs = await gradientTensor.data<'float32'>();
      gradientTensor.dispose();
      dispose();
      const what = `${top} ${top === 'sigmoid' ? sigmoidLoss : ''} ${gradient}`;
      assert.ok(maxRelativeDifference(got.dLogits, theirs, 1e-3) < 1e-5, `${what}: as tfjs`);
      theirs.forEach((v, i) => assert.equal(v === 0, got.dLogits[i] === 0, `${what}: [${i}] is zero in both or neither`));
      assert.equal(got.dLogits[labels[0]!] === 0, gradient === 'standard', `${what}: the saturated row's ∂J/∂z_y`);
    }
  }
});

test('logistic regression’s loss (one logit, two classes) equals its reference and tfjs’s gradient of minibatchObjective, large margins and σ(z) = .5 included', async () => {
  const runtime = await engineRuntime();
  const labels = labelsOf(2);
  const shape = alphaMix('logistic', 'sum', 'standard', 2);
  const logits = uniform(9, shape.lanes * shape.rows, -4, 4);
  // margins of 30 either way (σ(−y·z) down to 1e-13: the gradient must not round to 0 through 1 − σ), and a logit of 0
  logits.set([30, -30, 0], 0);
  logits.set([-25, 28], 12);
  const got = await runCrossEntropy(runtime, shape, logits, labels, STEPS, 1, 2);
  const want = crossEntropyReference(shape, logits, labels, rowIndexOf(2), [0, 6]);
  assert.ok(maxRelativeDifference(got.dLogits, want.dLogits, 1e-12) < 1e-5, 'gradient as the reference');
  assert.ok(maxRelativeDifference([got.stats[4]!, got.stats[6]!], want.objective) < 1e-5, 'objective as the reference');
  assert.deepEqual([got.stats[5], got.stats[7]], want.misclassified, 'misclassified as the reference');
  assert.ok(
    got.dLogits.every((d) => d !== 0),
    'no row’s gradient vanishes',
  );

  const spec: ModelSpec = { kind: 'logistic', inputSize: 1, classes: [0, 1], maxColumnNorm: null };
  const regression = new LogisticRegression(spec, 0.005, 1);
  const { dx, dxt, stats: tfjsStats } = await tfjsObjective(logitsAsInput(regression), shape, logits, labels, 1);
  regression.dispose();
  const device = split(got.dLogits, 2, shape.batch, 1);
  assert.ok(maxRelativeDifference(device.clean, dx, 1e-12) < 1e-5, '∂/∂x as tfjs');
  assert.ok(maxRelativeDifference(device.adversarial, dxt, 1e-12) < 1e-5, '∂/∂x̃ as tfjs');
  assert.ok(maxRelativeDifference([got.stats[4]!, got.stats[6]!], tfjsStats.subarray(0, 2)) < 1e-5, 'objective as tfjs');
  assert.deepEqual([got.stats[5], got.stats[7]], Array.from(tfjsStats.subarray(2)), 'misclassified as tfjs');
});

test('the RBF network’s independent outputs (logits −d): loss, gradient and errors equal the reference and tfjs’s expDistanceCrossEntropy, d near 0 included', async () => {
  const runtime = await engineRuntime();
  const classes = 10;
  const labels = labelsOf(classes);
  const shape = alphaMix('distance', 'sum', 'standard', classes);
  const logits = uniform(13, shape.lanes * shape.rows * classes, -6, -0.3);
  // d of 1e-3 and 0.1 (where 1 − e^(−d) cancels in float32) and 3, on a wrong class and on the true one
  logits.set([-1e-3, -0.1, -3], 0);
  logits.set([-1e-3, -0.1, -3], 5 * classes);
  const got = await runCrossEntropy(runtime, shape, logits, labels, STEPS, 1, 2);
  const want = crossEntropyReference(shape, logits, labels, rowIndexOf(2), [0, 6]);
  assert.ok(maxRelativeDifference(got.dLogits, want.dLogits, 1e-3 / shape.batch) < 1e-5, 'gradient as the reference');
  assert.ok(maxRelativeDifference([got.stats[4]!, got.stats[6]!], want.objective) < 1e-5, 'objective as the reference');
  assert.deepEqual([got.stats[5], got.stats[7]], want.misclassified, 'misclassified as the reference');

  const spec: ModelSpec = {
    kind: 'rbf',
    inputSize: 1,
    classes: Array.from({ length: classes }, (_, k) => k),
    maxColumnNorm: null,
    output: 'independent',
    precision: 'clamp',
    init: { centres: 'class-means', precision: 0.05 },
  };
  // on wasm: tfjs's webgpu expm1 is exp(x) − 1, which cancels at small d; its wasm backend's is Math.expm1
  await initBackend('wasm');
  const network = new RbfNetwork(spec, new Float32Array(classes));
  const { dx, dxt, stats: tfjsStats } = await tfjsObjective(logitsAsInput(network), shape, logits, labels, classes);
  network.dispose();
  await initBackend('webgpu');
  const device = split(got.dLogits, 2, shape.batch, classes);
  assert.ok(maxRelativeDifference(device.clean, dx, 1e-3 / shape.batch) < 1e-5, '∂/∂x as tfjs');
  assert.ok(maxRelativeDifference(device.adversarial, dxt, 1e-3 / shape.batch) < 1e-5, '∂/∂x̃ as tfjs');
  assert.ok(maxRelativeDifference([got.stats[4]!, got.stats[6]!], tfjsStats.subarray(0, 2)) < 1e-5, 'objective as tfjs');
  assert.deepEqual([got.stats[5], got.stats[7]], Array.from(tfjsStats.subarray(2)), 'misclassified as tfjs');
});

const LAYOUT = new PackedLayout([
  { inputs: 5, columns: 3 },
  { inputs: 4, columns: 7 },
  { inputs: 7, columns: 2 },
]);

const updateShape = (lanes: number, overrides: Partial<UpdateShape> = {}): UpdateShape => ({
  lanes,
  laneFloats: LAYOUT.laneFloats,
  layers: LAYOUT.layers,
  penalties: { weightDecay: 0.01, l1FirstLayer: 0.003 },
  maxColumnNorm: 1.1,
  ...overrides,
});

/** Parameters in [−0.8, 0.8] with some of layer 1's weights exactly 0, gradients and velocities: lanes blocks of each. */
function updateProblem(lanes: number, seed: number) {
  const size = lanes * LAYOUT.laneFloats;
  const parameters = uniform(seed, size, -0.8, 0.8);
  for (let lane = 0; lane < lanes; lane++) for (const at of [0, 4, 7, 11]) parameters[lane * LAYOUT.laneFloats + at] = 0;
  return { parameters, gradients: uniform(seed + 1, size, -1, 1), velocities: uniform(seed + 2, size, -0.2, 0.2) };
}

async function runUpdate(runtime: GpuRuntime, shape: UpdateShape, problem: ReturnType<typeof updateProblem>, lanes: readonly LaneStep[]) {
  const before = runtime.liveBuffers;
  const buffers = {
    steps: stepBuffer(runtime, [lanes]),
    parameters: runtime.bufferWith('parameters', problem.parameters),
    gradients: runtime.bufferWith('gradients', problem.gradients),
    velocities: runtime.bufferWith('velocities', problem.velocities),
  };
  const kernel = await Update.create(runtime, shape, buffers);
  kernel.record(0);
  const bytes = problem.parameters.byteLength;
  const parameters = new Float32Array(await runtime.read(buffers.parameters, 0, bytes));
  const velocities = new Float32Array(await runtime.read(buffers.velocities, 0, bytes));
  kernel.dispose();
  for (const buffer of Object.values(buffers)) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before, 'buffers released');
  return { parameters, velocities };
}

/** Lane l's pre-update column norms of W over maxNorm: some must be above, some below, for max-norm to be tested. */
function columnsOverNorm(parameters: Float64Array, lane: number, maxNorm: number): boolean[] {
  return LAYOUT.layers.flatMap((layer) =>
    Array.from({ length: layer.columns }, (_, c) => {
      let squares = 0;
      for (let row = 0; row < layer.inputs; row++) squares += parameters[lane * LAYOUT.laneFloats + layer.offset + row * layer.columns + c]! ** 2;
      return Math.sqrt(squares) > maxNorm;
    }),
  );
}

test('update: momentum, weight decay, L1 on layer 1 (zeros included) and max-norm equal the float64 reference', async () => {
  const runtime = await engineRuntime();
  const lanes = [laneStep({ learningRate: 0.1, momentum: 0.5 }), laneStep({ learningRate: 0.05, momentum: 0.9 })];
  const variants: UpdateShape[] = [
    updateShape(2),
    updateShape(2, { penalties: { weightDecay: 0, l1FirstLayer: 0 }, maxColumnNorm: null }),
    updateShape(2, { penalties: { weightDecay: 0, l1FirstLayer: 0.01 }, maxColumnNorm: 1.1 }),
    // the RBF network's clamped precisions: layer 1's weights projected onto ≥ 0 (half of them start below), and
    // weight decay on layer 1 alone
    updateShape(2, { penalties: { weightDecay: 0.01, l1FirstLayer: 0.01 }, maxColumnNorm: null, nonNegativeFirstLayer: true, decayedLayers: 1 }),
  ];
  for (const shape of variants) {
    const problem = updateProblem(2, 11);
    const got = await runUpdate(runtime, shape, problem, lanes);
    const want = updateReference(shape, problem.parameters, problem.gradients, problem.velocities, lanes);
    const what = JSON.stringify({ penalties: shape.penalties, maxColumnNorm: shape.maxColumnNorm });
    assert.ok(maxRelativeDifference(got.parameters, want.parameters, 1e-3) < 1e-5, `${what}: parameters`);
    assert.ok(maxRelativeDifference(got.velocities, want.velocities, 1e-3) < 1e-5, `${what}: velocities`);
    if (shape.nonNegativeFirstLayer) {
      const first = LAYOUT.layers[0]!;
      const weights = got.parameters.subarray(0, first.inputs * first.columns);
      assert.ok(weights.every((w) => w >= 0) && weights.some((w) => w === 0), `${what}: layer 1's weights clamped at 0`);
    }
    if (shape.maxColumnNorm !== null) {
      const unconstrained = updateReference({ ...shape, maxColumnNorm: null }, problem.parameters, problem.gradients, problem.velocities, lanes);
      for (const lane of [0, 1]) {
        const over = columnsOverNorm(unconstrained.parameters, lane, shape.maxColumnNorm);
        assert.ok(over.includes(true) && over.includes(false), `${what}: lane ${lane}: columns over and under the norm (${over})`);
      }
      // the bias rows are never rescaled
      for (const layer of LAYOUT.layers) {
        const bias = layer.offset + layer.inputs * layer.columns;
        assert.ok(
          maxRelativeDifference(got.parameters.subarray(bias, bias + layer.columns), unconstrained.parameters.subarray(bias, bias + layer.columns)) <
            1e-6,
        );
      }
    }
  }
  // L1's sign(0) = 0: without weight decay or momentum a zero weight with a zero gradient stays exactly 0
  const problem = updateProblem(1, 12);
  problem.gradients[4] = 0;
  const got = await runUpdate(runtime, updateShape(1, { penalties: { weightDecay: 0, l1FirstLayer: 0.5 }, maxColumnNorm: null }), problem, [
    laneStep({ momentum: 0 }),
  ]);
  assert.ok(got.parameters[4] === 0 && got.velocities[4] === 0, `${got.parameters[4]}, ${got.velocities[4]}`);
});

test('update: an inactive lane is untouched, and two lanes equal each lane alone bit for bit', async () => {
  const runtime = await engineRuntime();
  const shape = updateShape(2);
  const problem = updateProblem(2, 21);
  const lanes = [laneStep({ learningRate: 0.1, momentum: 0.5 }), laneStep({ learningRate: 0.05, momentum: 0.9 })];
  const idle = await runUpdate(runtime, shape, problem, [lanes[0]!, { ...lanes[1]!, active: false }]);
  const laneFloats = LAYOUT.laneFloats;
  assert.deepEqual(idle.parameters.subarray(laneFloats), problem.parameters.subarray(laneFloats));
  assert.deepEqual(idle.velocities.subarray(laneFloats), problem.velocities.subarray(laneFloats));
  assert.notDeepEqual(idle.parameters.subarray(0, laneFloats), problem.parameters.subarray(0, laneFloats));

  const both = await runUpdate(runtime, shape, problem, lanes);
  for (const lane of [0, 1]) {
    const block = (values: Float32Array) => values.slice(lane * laneFloats, (lane + 1) * laneFloats);
    const alone = await runUpdate(
      runtime,
      updateShape(1),
      { parameters: block(problem.parameters), gradients: block(problem.gradients), velocities: block(problem.velocities) },
      [lanes[lane]!],
    );
    assert.deepEqual(block(both.parameters), alone.parameters, `lane ${lane}: parameters`);
    assert.deepEqual(block(both.velocities), alone.velocities, `lane ${lane}: velocities`);
  }
});

test('update equals tfjs’s MomentumSgd.apply then max-norm on the same values', async () => {
  const runtime = await engineRuntime();
  const shape = updateShape(1);
  const problem = updateProblem(1, 31);
  const step = laneStep({ learningRate: 0.1, momentum: 0.5 });
  const got = await runUpdate(runtime, shape, problem, [step]);

  // one tfjs variable per W and b, cut from the packed block
  const slice = (values: Float32Array, from: number, length: number) => values.slice(from, from + length);
  const parameters = LAYOUT.layers.flatMap((layer, j) => {
    const weights = layer.inputs * layer.columns;
    return [
      { layer, role: 'weight' as const, at: layer.offset, shape: [layer.inputs, layer.columns], length: weights, j },
      { layer, role: 'bias' as const, at: layer.offset + weights, shape: [layer.columns], length: layer.columns, j },
    ];
  });
  const variables = parameters.map((p) => tf.variable(tf.tensor(slice(problem.parameters, p.at, p.length), p.shape)));
  const optimiser = new MomentumSgd(
    parameters.map((p, i) => ({ name: `${p.role}${p.j}`, variable: variables[i]!, role: p.role, layer: p.j + 1 })),
    shape.penalties,
  );
  tf.tidy(() => {
    parameters.forEach((p) => optimiser.velocities.get(`${p.role}${p.j}`)!.assign(tf.tensor(slice(problem.velocities, p.at, p.length), p.shape)));
    const gradients = Object.fromEntries(
      parameters.map((p, i) => [variables[i]!.name, tf.tensor(slice(problem.gradients, p.at, p.length), p.shape)]),
    );
    optimiser.apply(gradients, step.learningRate, step.momentum);
  });
  parameters.forEach((p, i) => {
    if (p.role === 'weight') applyMaxColumnNorm(variables[i]!, shape.maxColumnNorm!);
  });
  const theirs = new Float32Array(LAYOUT.laneFloats);
  const theirVelocities = new Float32Array(LAYOUT.laneFloats);
  for (const [i, p] of parameters.entries()) {
    theirs.set(await variables[i]!.data<'float32'>(), p.at);
    theirVelocities.set(await optimiser.velocities.get(`${p.role}${p.j}`)!.data<'float32'>(), p.at);
  }
  optimiser.dispose();
  tf.dispose(variables);
  assert.ok(maxRelativeDifference(got.parameters, theirs, 1e-3) < 2e-7, 'parameters as tfjs');
  assert.ok(maxRelativeDifference(got.velocities, theirVelocities, 1e-3) < 2e-7, 'velocities as tfjs');
});
