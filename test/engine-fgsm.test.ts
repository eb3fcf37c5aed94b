import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stream } from '../src/core/rng.js';
import type { Split } from '../src/data/dataset.js';
import { AttackSchema } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import {
  encodeClip,
  encodeIteratePasses,
  encodePasses,
  ErrorCount,
  FgsmExamples,
  IterateStep,
  KeepWorst,
  type IteratePass,
  Probabilities,
  ZeroDirections,
  type FgsmPass,
} from '../src/engine/kernels/fgsm-passes.js';
import {
  errorCountReference,
  fgsmExamplesReference,
  iterateStepReference,
  keepWorstReference,
  probabilitiesReference,
  zeroDirectionsReference,
} from '../src/engine/kernels/fgsm-passes-reference.js';
import { ResidentFgsm, residentFgsmSupport } from '../src/engine/resident-fgsm.js';
import { evaluate, fgsmErrorRate, type Evaluation } from '../src/eval/evaluate.js';
import type { ClassificationMetrics } from '../src/eval/metrics.js';
import { agreementOf } from '../src/eval/agreement.js';
import { labelLeakProbe } from '../src/eval/label-leak.js';
import { ensembleMetrics } from '../src/eval/ensemble.js';
import { transferMatrices } from '../src/eval/transfer.js';
import { attackMeasures } from '../src/pipeline/audit.js';
import { STEP_RECORD_BYTES } from '../src/engine/runtime.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier, ModelSpec } from '../src/models/classifier.js';
import { ENGINE_MAXOUT, engineRuntime, labelled, rbfSpec, scale, SOFTMAX_REGRESSION, threeNetworks } from './engine-helpers.js';
import { randomImages } from './helpers.js';

/*
 * The engine's FGSM (error rates, and the attack of a run's evaluation) against tfjs's fgsmErrorRate and evaluate on
 * the same webgpu device, model and split; and the kernels of fgsm-passes.ts against their references. Small
 * shapes: lavapipe is a CPU.
 */

const SPEC: ModelSpec = ENGINE_MAXOUT;

/** The paper's 0.1 and 0.25, and small values where an untrained network's error still climbs. */
const EPSILONS = [0, 0.01, 0.03, 0.1, 0.25];

/** Each output the pass kernels read logits of: `classes` classes, logistic regression's two from one logit. */
const outputsOf = (classes: number) =>
  [
    { classes, top: 'softmax' },
    { classes, top: 'sigmoid' },
    { classes, top: 'distance' },
    { classes: 2, top: 'logistic' },
  ] as const;

test('the pass kernels equal their references: x̃ clipped and not, padding, a short group, ties to the first class, probabilities, zero rows', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const random = stream(11, 'engine-fgsm');
  const [examples, n, inputs, groupSize, classes] = [9, 4, 70, 3, 5];
  const images = random.fillUniform(new Float32Array(examples * inputs), 0, 1);
  const rowIndex = Uint32Array.from({ length: 8 }, (_, i) => (i * 5) % examples);
  const direction = Float32Array.from({ length: n * inputs }, () => random.int(3) - 1);
  direction.fill(0, 2 * inputs, 4 * inputs); // rows 2 and 3: a gradient zero everywhere
  const epsilons = Float32Array.from([0.3, 0, 0.1, 0.25, 0.07]);
  // pass record 1: the second batch (whose last row is padding past `examples` = 7 here), ε slots 3 and 4 only
  const passes: FgsmPass[] = [
    { cleanStart: 0, firstSlot: 0, epsilons: 3 },
    { cleanStart: 4, firstSlot: 3, epsilons: 2 },
  ];
  const logits = Float32Array.from({ length: groupSize * n * classes }, () => random.int(4) * 3 - 4);
  logits[1] = 0; // logistic regression's σ(0) = .5 = 1 − σ(0): class 0, as argMax takes it
  const labels = Uint32Array.from({ length: examples }, () => random.int(classes));
  const counts = Uint32Array.from([5, 0, 2, 1, 3]);
  const tallies = Uint32Array.from([2, 0, 0, 0, 0, 0]);
  const probabilities = new Float32Array(epsilons.length * 7 * classes);
  const buffers = {
    passes: runtime.uniform('passes', passes.length * STEP_RECORD_BYTES, encodePasses(passes)),
    clip: runtime.uniform('clip', 16),
    images: runtime.bufferWith('images', images),
    rowIndex: runtime.bufferWith('rowIndex', rowIndex),
    direction: runtime.bufferWith('direction', direction),
    epsilons: runtime.bufferWith('epsilons', epsilons),
    adversarial: runtime.buffer('adversarial', groupSize * n * inputs * 4),
    tallies: runtime.bufferWith('tallies', tallies),
    logits: runtime.bufferWith('logits', logits),
    labels: runtime.bufferWith('labels', labels),
    counts: runtime.bufferWith('counts', counts),
    probabilities: runtime.bufferWith('probabilities', probabilities),
  };
  const shape = { batchRows: n, groupSize, examples: 7 };
  const read = async (buffer: GPUBuffer, bytes: number) => await runtime.read(buffer, 0, bytes);
  const writer = await FgsmExamples.create(runtime, { ...shape, inputs }, buffers);
  for (const clip of [null, [0.05, 0.9]] as const) {
    runtime.write(buffers.clip, encodeClip(clip));
    runtime.write(buffers.tallies, tallies);
    writer.record(1);
    const expected = fgsmExamplesReference({ ...shape, inputs }, passes[1]!, images, rowIndex, direction, epsilons, clip, tallies);
    assert.deepEqual(new Float32Array(await read(buffers.adversarial, groupSize * n * inputs * 4)), expected.adversarial, `x̃, clip ${clip}`);
    assert.deepEqual(new Uint32Array(await read(buffers.tallies, 24)), expected.tallies, `largest |x̃ − x|, clip ${clip}`);
  }
  writer.dispose();

  // logistic regression: two classes from one logit a row
  for (const output of [
    { classes, top: 'softmax' },
    { classes: 2, top: 'logistic' },
  ] as const) {
    const labelsOfTop = output.top === 'logistic' ? labels.map((c) => c % 2) : labels;
    runtime.write(buffers.labels, labelsOfTop);
    runtime.write(buffers.counts, counts);
    const counter = await ErrorCount.create(runtime, { ...shape, ...output }, buffers);
    counter.record(1);
    const counted = new Uint32Array(await read(buffers.counts, 20));
    assert.deepEqual(counted, errorCountReference({ ...shape, ...output }, passes[1]!, logits, labelsOfTop, rowIndex, counts), output.top);
    assert.deepEqual(Array.from(counted.subarray(0, 3)), [5, 0, 2], `${output.top}: the other slots untouched`);
    counter.dispose();
  }
  runtime.write(buffers.labels, labels);

  for (const output of outputsOf(classes)) {
    const { top } = output;
    runtime.write(buffers.probabilities, probabilities);
    const kernel = await Probabilities.create(runtime, { ...shape, ...output }, buffers);
    kernel.record(1);
    const written = new Float32Array(await read(buffers.probabilities, probabilities.byteLength));
    const expected = probabilitiesReference({ ...shape, ...output }, passes[1]!, logits, probabilities);
    // logistic regression's 1 − σ(z) is a float32 difference (as tfjs's sub(1, p)): exact to float32's absolute rounding only
    const floor = top === 'logistic' ? 1 : 1e-3;
    written.forEach((p, i) =>
      assert.ok(Math.abs(p - expected[i]!) <= 1e-6 * Math.max(floor, expected[i]!), `${top} [${i}]: ${p} against ${expected[i]}`),
    );
    assert.ok(
      expected.some((p) => p > 0),
      `${top}: the pass wrote its rows`,
    );
    kernel.dispose();
  }

  const zeroRows = await ZeroDirections.create(runtime, { ...shape, inputs }, buffers);
  for (const pass of passes) {
    runtime.write(buffers.tallies, tallies);
    zeroRows.record(passes.indexOf(pass));
    const expected = zeroDirectionsReference({ ...shape, inputs }, pass, direction, tallies);
    assert.deepEqual(new Uint32Array(await read(buffers.tallies, 24)), expected);
  }
  assert.equal(zeroDirectionsReference({ ...shape, inputs }, passes[0]!, direction, tallies)[0], 4, 'both zero rows counted in the first batch');
  assert.equal(
    zeroDirectionsReference({ ...shape, inputs }, passes[1]!, direction, tallies)[0],
    3,
    'and only the one before the padding in the second',
  );
  zeroRows.dispose();
  for (const buffer of Object.values(buffers)) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before);
});

test('IterateStep equals its reference: both starts, steps up and down (targeted), clipped and not, a tally only where asked, padding rows untallied', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const random = stream(12, 'engine-iterate');
  const [examples, n, inputs] = [7, 4, 70];
  const images = random.fillUniform(new Float32Array(examples * inputs), 0, 1);
  const rowIndex = Uint32Array.from({ length: 8 }, (_, i) => (i * 3) % examples);
  const direction = Float32Array.from({ length: n * inputs }, () => random.int(3) - 1);
  const noise = random.fillUniform(new Float32Array(n * inputs), -0.3, 0.3);
  const epsilons = Float32Array.from([0.3, 0.1]);
  const stepSizes = Float32Array.from([0.07, -0.025]);
  const host = {
    images,
    rowIndex,
    direction,
    noise,
    epsilons,
    stepSizes,
    iterate: random.fillUniform(new Float32Array(n * inputs), -0.2, 1.2),
    tallies: new Uint32Array(3),
  };
  const passes: IteratePass[] = [
    { cleanStart: 0, slot: 0, phase: 'startAtX', tally: false },
    { cleanStart: 0, slot: 0, phase: 'startRandom', tally: false },
    { cleanStart: 4, slot: 1, phase: 'step', tally: false },
    // the second batch: its last row is padding past the 7 examples, left out of the tally
    { cleanStart: 4, slot: 1, phase: 'step', tally: true },
    { cleanStart: 0, slot: 0, phase: 'step', tally: true },
    { cleanStart: 4, slot: 1, phase: 'measure', tally: true },
  ];
  const buffers = {
    passes: runtime.uniform('passes', passes.length * STEP_RECORD_BYTES, encodeIteratePasses(passes)),
    clip: runtime.uniform('clip', 16),
    images: runtime.bufferWith('images', images),
    rowIndex: runtime.bufferWith('rowIndex', rowIndex),
    direction: runtime.bufferWith('direction', direction),
    noise: runtime.bufferWith('noise', noise),
    epsilons: runtime.bufferWith('epsilons', epsilons),
    stepSizes: runtime.bufferWith('stepSizes', stepSizes),
    iterate: runtime.bufferWith('iterate', host.iterate),
    tallies: runtime.bufferWith('tallies', host.tallies),
  };
  const shape = { batchRows: n, inputs, examples };
  const kernel = await IterateStep.create(runtime, shape, buffers);
  for (const clip of [null, [0, 1]] as const) {
    runtime.write(buffers.clip, encodeClip(clip));
    let expected: { iterate: Float32Array; tallies: Uint32Array } = { iterate: host.iterate, tallies: host.tallies };
    runtime.write(buffers.iterate, expected.iterate);
    runtime.write(buffers.tallies, expected.tallies);
    for (const [i, pass] of passes.entries()) {
      kernel.record(i);
      expected = iterateStepReference(shape, pass, { ...host, ...expected }, clip);
      const iterate = new Float32Array(await runtime.read(buffers.iterate, 0, n * inputs * 4));
      assert.deepEqual(iterate, expected.iterate, `clip ${clip}, pass ${i} (${pass.phase})`);
      assert.deepEqual(new Uint32Array(await runtime.read(buffers.tallies, 0, 12)), expected.tallies, `clip ${clip}, pass ${i}: tallies`);
    }
    assert.ok(expected.tallies[2]! > 0 && expected.tallies[1]! > 0, 'both slots tallied');
  }
  kernel.dispose();
  for (const buffer of Object.values(buffers)) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before);
});

test("KeepWorst equals its reference: each restart's iterate kept where the attack did best (a success first, then the higher loss, or the lower targeted), every top", async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const random = stream(13, 'engine-keep-worst');
  const [examples, n, inputs, classes] = [9, 6, 70, 5];
  const rowIndex = Uint32Array.from({ length: 12 }, (_, i) => (i * 2) % examples);
  const labels = Uint32Array.from({ length: examples }, () => random.int(classes));
  const passes: IteratePass[] = [
    { cleanStart: 6, slot: 0, phase: 'keepFirst', tally: false },
    { cleanStart: 6, slot: 0, phase: 'keep', tally: false },
  ];
  const buffers = {
    passes: runtime.uniform('passes', passes.length * STEP_RECORD_BYTES, encodeIteratePasses(passes)),
    aim: runtime.uniform('aim', 16),
    logits: runtime.buffer('logits', n * classes * 4),
    labels: runtime.bufferWith('labels', labels),
    rowIndex: runtime.bufferWith('rowIndex', rowIndex),
    iterate: runtime.buffer('iterate', n * inputs * 4),
    best: runtime.buffer('best', n * inputs * 4),
    bestSuccess: runtime.buffer('bestSuccess', n * 4),
    bestObjective: runtime.buffer('bestObjective', n * 4),
  };
  for (const output of outputsOf(classes)) {
    const { top } = output;
    const labelsOfTop = top === 'logistic' ? labels.map((c) => c % 2) : labels;
    runtime.write(buffers.labels, labelsOfTop);
    for (const targeted of [false, true]) {
      const shape = { batchRows: n, inputs, examples, ...output, sigmoidLoss: 'mean' } as const;
      const kernel = await KeepWorst.create(runtime, shape, buffers);
      runtime.write(buffers.aim, Uint32Array.from([targeted ? 1 : 0]));
      let host: ReturnType<typeof keepWorstReference> = {
        best: new Float32Array(n * inputs),
        bestSuccess: new Uint32Array(n),
        bestObjective: new Float64Array(n),
      };
      for (const [i, pass] of [passes[0]!, passes[1]!, passes[1]!].entries()) {
        // each restart: new logits (integers a third apart: no near ties; the RBF network's −d below 0) and a new iterate
        const logits = Float32Array.from({ length: n * classes }, () => (top === 'distance' ? -(random.int(13) + 1) / 3 : (random.int(13) - 6) / 3));
        const iterate = Float32Array.from({ length: n * inputs }, () => random.int(100) / 100);
        runtime.write(buffers.logits, logits);
        runtime.write(buffers.iterate, iterate);
        kernel.record(passes.indexOf(pass));
        host = keepWorstReference(shape, pass, { logits, labels: labelsOfTop, rowIndex, iterate, ...host }, targeted);
        const what = `${top}, ${targeted ? 'targeted' : 'untargeted'}, restart ${i}`;
        assert.deepEqual(new Float32Array(await runtime.read(buffers.best, 0, n * inputs * 4)), host.best, `${what}: kept iterates`);
        assert.deepEqual(new Uint32Array(await runtime.read(buffers.bestSuccess, 0, n * 4)), host.bestSuccess, `${what}: successes`);
        new Float32Array(await runtime.read(buffers.bestObjective, 0, n * 4)).forEach((objective, r) =>
          assert.ok(
            Math.abs(objective - host.bestObjective[r]!) <= 1e-5 * Math.max(1, Math.abs(host.bestObjective[r]!)),
            `${what}: objective of row ${r}`,
          ),
        );
      }
      kernel.dispose();
    }
  }
  for (const buffer of Object.values(buffers)) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before);
});

/** The engine's rates and fgsmErrorRate's (the same model, split, device) for each gradient form, at EPSILONS. */
async function bothWays(rates: ResidentFgsm, model: Classifier, split: Split): Promise<{ engine: number[]; tfjs: number[] }[]> {
  const results = [];
  for (const gradient of ['standard', 'stable'] as const) {
    const engine = await rates.errorRates(model, EPSILONS, gradient);
    const tfjs = [];
    for (const epsilon of EPSILONS) tfjs.push(await fgsmErrorRate(model, split, epsilon, gradient));
    results.push({ engine, tfjs });
  }
  return results;
}

test('FGSM error rates equal fgsmErrorRate on the same device: softmax and sigmoid tops, both gradient forms; one read a call, 12 dispatches a batch', async () => {
  const runtime = await engineRuntime();
  const tensors = tf.memory().numTensors;
  const before = runtime.liveBuffers;
  for (const top of ['softmax', 'sigmoid'] as const) {
    const spec = { ...SPEC, top };
    const model = buildModel(spec, 0.05, 3);
    scale(model, 5); // logits of about ±0.5: far from saturation
    const n = 300;
    const split = await labelled(model, randomImages(n, 4), n, 20);
    // three batches of 100 rows (at most 128 each): the split is not a multiple of 128
    const rates = await ResidentFgsm.create(runtime, spec, split, { batchRows: 128 });
    try {
      const counters = { ...runtime.counters };
      const [standard, stable] = await bothWays(rates, model, split);
      assert.equal(runtime.counters.reads - counters.reads, 2, 'one read a call');
      assert.equal(runtime.counters.dispatches - counters.dispatches, 2 * 3 * 12, '12 dispatches a batch');
      for (const { engine, tfjs } of [standard!, stable!]) {
        assert.deepEqual(engine, tfjs, `${top}: the engine's error rates`);
        assert.ok(
          tfjs.every((rate, i) => i === 0 || rate > tfjs[i - 1]!),
          `${top}: FGSM raises the error (${tfjs})`,
        );
      }
    } finally {
      rates.dispose();
      model.dispose();
    }
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left');
});

test('ε values split over several x̃ passes by a small pass buffer give the same rates; a call with another count of ε rebuilds them', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const model = buildModel(SPEC, 0.05, 7);
  scale(model, 5);
  const n = 150;
  const split = await labelled(model, randomImages(n, 8), n, 10);
  // two ε blocks of 75 rows × 784 pixels fit: 5 ε in groups of 2, 2 and 1
  const rates = await ResidentFgsm.create(runtime, SPEC, split, { batchRows: 75, passBytes: 2 * 75 * 784 * 4 });
  try {
    const counters = { ...runtime.counters };
    const engine = await rates.errorRates(model, EPSILONS, 'standard');
    assert.equal(runtime.counters.dispatches - counters.dispatches, 2 * (7 + 3 * 5), '7 dispatches a batch and 5 a group');
    const tfjs = [];
    for (const epsilon of EPSILONS) tfjs.push(await fgsmErrorRate(model, split, epsilon, 'standard'));
    assert.deepEqual(engine, tfjs);
    assert.deepEqual(await rates.errorRates(model, [EPSILONS[3]!, EPSILONS[1]!], 'standard'), [tfjs[3], tfjs[1]]);
  } finally {
    rates.dispose();
    model.dispose();
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
});

test('FGSM error rates of a saturated network are within one example of fgsmErrorRate', async () => {
  const runtime = await engineRuntime();
  const model = buildModel(SPEC, 0.05, 5);
  scale(model, 40); // logits in the hundreds
  const n = 200;
  const x = randomImages(n, 6);
  const saturated = tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.max(tf.softmax(model.logits(tf.tensor2d(x, [n, 784]))), 1), 1), 'int32')));
  assert.ok((await saturated.data())[0]! > n / 2, 'p_y rounds to 1 for most rows');
  saturated.dispose();
  const split = await labelled(model, x, n, 20);
  const rates = await ResidentFgsm.create(runtime, SPEC, split, { batchRows: 128 });
  try {
    const [standard, stable] = await bothWays(rates, model, split);
    for (const [gradient, { engine, tfjs }] of [
      ['standard', standard!],
      ['stable', stable!],
    ] as const) {
      engine.forEach((rate, i) => assert.ok(Math.abs(rate - tfjs[i]!) * n <= 1, `${gradient} at ε = ${EPSILONS[i]}: ${rate} against ${tfjs[i]}`));
    }
    // saturation is where the forms part: the standard gradient of a saturated row has lost its true-class term
    assert.notDeepEqual(standard!.tfjs, stable!.tfjs);
  } finally {
    rates.dispose();
    model.dispose();
  }
});

const quiet = createProgress('quiet');

/** Clean figures of the engine and of tfjs: errors within `slack` examples (confusions equal without it), confidences within float32 rounding. */
function assertSameMetrics(ours: ClassificationMetrics, theirs: ClassificationMetrics, what: string, slack: number): void {
  assert.equal(ours.n, theirs.n, `${what}: examples`);
  assert.ok(Math.abs(ours.error - theirs.error) * ours.n <= slack, `${what}: error ${ours.error} against ${theirs.error}`);
  if (slack === 0) assert.deepEqual(ours.confusion, theirs.confusion, `${what}: confusion`);
  assert.ok(
    Math.abs(ours.meanConfidence - theirs.meanConfidence) < 1e-5,
    `${what}: confidence ${ours.meanConfidence} against ${theirs.meanConfidence}`,
  );
}

/** The attack's figures of two evaluations, side by side: errors, confusions and counts equal, confidences within float32 rounding. */
function assertSameAttack(engine: Evaluation, tfjs: Evaluation, what: string, slack: number): void {
  for (const key of ['fgsm', 'fgsmOtherGradient'] as const) {
    for (const [epsilon, ours] of Object.entries(engine[key])) {
      const theirs = tfjs[key][epsilon]!;
      const at = `${what}, ${ours.gradient} at ε = ${epsilon}`;
      assert.ok(Math.abs(ours.error - theirs.error) * ours.n <= slack, `${at}: error ${ours.error} against ${theirs.error}`);
      if (slack === 0) assert.deepEqual(ours.confusion, theirs.confusion, `${at}: confusion`);
      assert.ok(
        Math.abs(ours.meanConfidence - theirs.meanConfidence) < 1e-5,
        `${at}: confidence ${ours.meanConfidence} against ${theirs.meanConfidence}`,
      );
      assert.equal(ours.zeroGradient, theirs.zeroGradient, `${at}: zero gradients`);
      assert.equal(ours.maxPerturbation, theirs.maxPerturbation, `${at}: largest perturbation`);
      assert.ok(Math.abs(ours.saturated - theirs.saturated) <= slack, `${at}: saturated ${ours.saturated} against ${theirs.saturated}`);
    }
  }
  assertSameMetrics(engine.clean, tfjs.clean, `${what}: clean figures`, slack);
  assert.ok(engine.rubbish && tfjs.rubbish, `${what}: rubbish inputs measured`);
  const [ours, theirs] = [engine.rubbish, tfjs.rubbish];
  assert.equal(ours.samples, theirs.samples, `${what}: rubbish samples`);
  assert.ok(Math.abs(ours.error - theirs.error) * ours.samples <= slack, `${what}: rubbish error ${ours.error} against ${theirs.error}`);
  assert.ok(Math.abs(ours.meanConfidence! - theirs.meanConfidence!) < 1e-5, `${what}: rubbish confidence`);
  if (slack === 0) assert.deepEqual(ours.classCounts, theirs.classCounts, `${what}: rubbish classes`);
  assert.deepEqual(
    engine.examples.triples.map(({ adversarialProbabilities: _, cleanProbabilities: __, ...images }) => images),
    tfjs.examples.triples.map(({ adversarialProbabilities: _, cleanProbabilities: __, ...images }) => images),
    `${what}: the figure's examples`,
  );
}

const LOGISTIC_REGRESSION: ModelSpec = { kind: 'logistic', inputSize: 784, classes: [3, 7], maxColumnNorm: null };
/** Where an RBF network's centres start: one of these random images of each class. */
const CENTRES: Split = { name: 'train', x: randomImages(30, 9), y: Int32Array.from({ length: 30 }, (_, i) => i % 10), n: 30 };

/** Rubbish inputs of an evaluation: two batches of 128 rows, the second short. */
const RUBBISH_SAMPLES = 200;

/** The dispatches of an evaluation's clean probabilities (3 batches) and rubbish ones (2): per batch the forward pass (a kernel per layer) and the probabilities. */
const probabilityDispatches = (spec: ModelSpec): number =>
  (spec.kind === 'maxout' ? spec.layers.length + 2 : spec.kind === 'rbf' ? 3 : 2) * (3 + Math.ceil(RUBBISH_SAMPLES / 128));

/** What one model's two evaluations gave: tfjs's ops, then the engine's attack, with the engine's counts over its call. */
interface BothEvaluations {
  model: Classifier;
  split: Split;
  onDevice: ResidentFgsm;
  tfjs: Evaluation;
  engine: Evaluation;
  reads: number;
  dispatches: number;
}

/**
 * A model of `spec` (its parameters × `factor`) and 300 examples labelled by its own predictions (20 flipped),
 * evaluated with `attack` on tfjs's ops and with the attack on the engine (batches of 128: 3 per call); then `check`.
 */
async function bothEvaluations(
  spec: ModelSpec,
  factor: number,
  attack: Record<string, unknown>,
  check: (both: BothEvaluations) => Promise<void>,
): Promise<void> {
  const runtime = await engineRuntime();
  const model = buildModel(spec, 0.05, 3, CENTRES);
  scale(model, factor);
  const n = 300;
  const split = await labelled(model, randomImages(n, 4), n, 20);
  const parsed = AttackSchema.parse({ ...attack, batchSize: 128 });
  assert.equal(residentFgsmSupport(spec, parsed), null);
  const options = { attack: parsed, rubbishSamples: RUBBISH_SAMPLES, figureExamples: 3, seed: 5, progress: quiet };
  const onDevice = await ResidentFgsm.create(runtime, spec, split, { batchRows: 128 });
  try {
    const tfjs = await evaluate(model, split, options);
    const counters = { ...runtime.counters };
    const engine = await evaluate(model, split, { ...options, onDevice });
    const reads = runtime.counters.reads - counters.reads;
    const dispatches = runtime.counters.dispatches - counters.dispatches;
    await check({ model, split, onDevice, tfjs, engine, reads, dispatches });
  } finally {
    onDevice.dispose();
    model.dispose();
  }
}

test("a run's evaluation on the engine measures what tfjs's does: both tops, softmax and logistic regression, the RBF network, clipped and not, a saturated network, predicted labels, targets; 2 reads and 13 dispatches a batch per gradient (7 without hidden layers), one read each for the clean and the rubbish probabilities", async () => {
  const runtime = await engineRuntime();
  const tensors = tf.memory().numTensors;
  const before = runtime.liveBuffers;
  type Aim = { labels?: 'predicted'; target?: 'next' | 'least-likely' | number };
  const cases: { spec: ModelSpec; factor: number; clip: 'none' | [number, number]; slack: number; dispatches: number; aim?: Aim }[] = [
    { spec: SPEC, factor: 5, clip: 'none', slack: 0, dispatches: 13 },
    { spec: { ...SPEC, top: 'sigmoid' }, factor: 5, clip: [0, 1], slack: 0, dispatches: 13 },
    // logits in the hundreds: p_y rounds to 1, the standard gradient is zero on most rows
    { spec: SPEC, factor: 40, clip: [0, 1], slack: 1, dispatches: 13 },
    { spec: SOFTMAX_REGRESSION, factor: 10, clip: 'none', slack: 0, dispatches: 7 },
    // J of the model's own predictions (no label leaking), and targeted steps down a class's loss
    { spec: SPEC, factor: 5, clip: 'none', slack: 0, dispatches: 13, aim: { labels: 'predicted' } },
    { spec: { ...SPEC, top: 'sigmoid' }, factor: 5, clip: [0, 1], slack: 0, dispatches: 13, aim: { labels: 'predicted', target: 'least-likely' } },
    { spec: SOFTMAX_REGRESSION, factor: 10, clip: [0, 1], slack: 0, dispatches: 7, aim: { target: 3 } },
    { spec: LOGISTIC_REGRESSION, factor: 10, clip: 'none', slack: 0, dispatches: 7 },
    { spec: LOGISTIC_REGRESSION, factor: 10, clip: [0, 1], slack: 0, dispatches: 7, aim: { labels: 'predicted' } },
    // the RBF network: its batch input and its −d make the forward pass, its input gradient the direction
    { spec: rbfSpec('independent', 'clamp', 'examples'), factor: 1, clip: [0, 1], slack: 0, dispatches: 9 },
    {
      spec: rbfSpec('softmax', 'exp', 'examples'),
      factor: 1,
      clip: 'none',
      slack: 0,
      dispatches: 9,
      aim: { labels: 'predicted', target: 'least-likely' },
    },
  ];
  for (const { spec, factor, clip, slack, dispatches, aim } of cases) {
    await bothEvaluations(spec, factor, { epsilons: EPSILONS, clip, ...aim }, async ({ model, split, onDevice, tfjs, engine, ...counted }) => {
      assert.equal(counted.reads, 2 * 2 + 2, 'two reads per gradient, one for the clean and one for the rubbish probabilities');
      assert.equal(counted.dispatches, 2 * 3 * dispatches + probabilityDispatches(spec), `${dispatches} dispatches a batch per gradient`);
      const what = `${spec.kind === 'maxout' ? spec.top : spec.kind} ×${factor}, clip ${clip}${aim ? `, ${JSON.stringify(aim)}` : ''}`;
      assertSameAttack(engine, tfjs, what, slack);
      const standard = engine.fgsm['0.25']!;
      assert.ok(standard.error > engine.clean.error + 0.1, `${what}: FGSM raises the error (${engine.clean.error} → ${standard.error})`);
      if (aim) {
        const trueLabels = [await fgsmErrorRate(model, split, 0.25, 'standard')];
        assert.deepEqual(await onDevice.errorRates(model, [0.25], 'standard'), trueLabels, `${what}: the next call takes the true labels again`);
      }
      if (factor === 40) assert.ok(standard.zeroGradient! > split.n / 10, `${what}: ${standard.zeroGradient} zero gradients`);
      assert.ok(Math.abs(standard.maxPerturbation - 0.25) < 1e-6, `${what}: the largest perturbation ${standard.maxPerturbation}`);
    });
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left');
});

test("BIM and PGD on the engine measure what tfjs's iterativeGradientSign does: random starts, restarts, clipped and not, targets, softmax regression, the RBF network; 2 reads per gradient", async () => {
  const runtime = await engineRuntime();
  const tensors = tf.memory().numTensors;
  const before = runtime.liveBuffers;
  const steps = 4;
  // perStep: the forward pass (forward), the loss, the backward pass and the step
  const cases = [
    { spec: SPEC, attack: { method: 'pgd', clip: [0, 1], stepSize: 0.05 }, perStep: 8, forward: 3, restarts: 1 },
    {
      spec: { ...SPEC, top: 'sigmoid' },
      attack: { method: 'bim', clip: 'none', stepSize: 0.03, labels: 'predicted', target: 'least-likely' },
      perStep: 8,
      forward: 3,
      restarts: 1,
    },
    { spec: SOFTMAX_REGRESSION, attack: { method: 'pgd', clip: 'none', stepSize: 0.04 }, perStep: 4, forward: 1, restarts: 1 },
    // per example the worst of three random starts
    { spec: SPEC, attack: { method: 'pgd', clip: [0, 1], stepSize: 0.02, restarts: 3 }, perStep: 8, forward: 3, restarts: 3 },
    {
      spec: { ...SPEC, top: 'sigmoid', sigmoidLoss: 'mean' },
      attack: { method: 'pgd', clip: 'none', stepSize: 0.03, restarts: 2, target: 'next' },
      perStep: 8,
      forward: 3,
      restarts: 2,
    },
    // the RBF network's forward pass is its batch input and its −d
    {
      spec: rbfSpec('independent', 'clamp', 'examples'),
      attack: { method: 'pgd', clip: [0, 1], stepSize: 0.05, restarts: 2 },
      perStep: 5,
      forward: 2,
      restarts: 2,
    },
  ] as const;
  for (const { spec, attack: chosen, perStep, forward, restarts } of cases) {
    const epsilons = [0, 0.1, 0.25];
    await bothEvaluations(
      spec,
      spec.kind === 'maxout' ? 5 : spec.kind === 'rbf' ? 1 : 10,
      { ...chosen, epsilons, steps },
      async ({ tfjs, engine, reads, dispatches }) => {
        assert.equal(reads, 2 * 2 + 2, 'two reads per gradient, one for the clean and one for the rubbish probabilities');
        // per run: the start, the steps, and with restarts the forward pass and KeepWorst; then the tally, the forward pass, the probabilities
        const perRun = 1 + steps * perStep + (restarts > 1 ? forward + 1 : 0);
        assert.equal(
          dispatches,
          2 * 3 * epsilons.length * (restarts * perRun + 1 + forward + 1) + probabilityDispatches(spec),
          `${restarts} runs of ${steps} steps of ${perStep} dispatches per batch and ε`,
        );
        const what = `${chosen.method} ×${restarts} on ${spec.kind === 'maxout' ? spec.top : spec.kind}`;
        assertSameAttack(engine, tfjs, what, 0);
        assert.ok(engine.fgsm['0.25']!.error > engine.clean.error + 0.1, `${what}: the attack raises the error`);
        const largest = engine.fgsm['0.25']!.maxPerturbation;
        assert.ok(largest > 0.1 && largest <= 0.25 + 1e-6, `${what}: the largest perturbation ${largest}`);
      },
    );
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left');
});

test("an audit's attacks and label-leaking probe on the engine equal tfjs's on the same device; the two float32 forms the engine does not take stay on tfjs", async () => {
  const runtime = await engineRuntime();
  const tensors = tf.memory().numTensors;
  const before = runtime.liveBuffers;
  const model = buildModel(SPEC, 0.05, 6);
  scale(model, 5);
  const n = 150;
  const split = await labelled(model, randomImages(n, 9), n, 10);
  const onDevice = await ResidentFgsm.create(runtime, SPEC, split, { batchRows: 100 });
  try {
    const tfjs = attackMeasures(model, split, 100);
    const engine = attackMeasures(model, split, 100, onDevice);
    const onTfjs = ['fgsm-softmax-minus-onehot', 'fgsm-exp-log-softmax-minus-onehot'];
    assert.deepEqual(
      Object.entries(engine)
        .filter(([, measure]) => !measure.onEngine)
        .map(([key]) => key),
      onTfjs,
    );
    assert.ok(Object.values(tfjs).every((measure) => !measure.onEngine));
    for (const [key, measure] of Object.entries(engine)) {
      const [ours, theirs] = [await measure.figures(), await tfjs[key]!.figures()];
      // errors and zero-gradient counts equal; confidences within float32 rounding of the probabilities
      const exact = (figures: typeof ours) => figures.map(({ meanConfidenceOnMistakes: _, ...counted }) => counted);
      assert.deepEqual(exact(ours), exact(theirs), key);
      ours.forEach((figure, i) =>
        assert.ok(
          Math.abs((figure.meanConfidenceOnMistakes ?? 0) - (theirs[i]!.meanConfidenceOnMistakes ?? 0)) < 1e-5,
          `${key}: confidence at ε = ${figure.epsilon}`,
        ),
      );
      assert.ok(
        ours.some((figure) => figure.error > 0.3),
        `${key}: the attack bites (${ours.map((f) => f.error)})`,
      );
    }
    const probe = { epsilons: [0.1, 0.25], gradient: 'standard', clip: null, batchSize: 100 } as const;
    assert.deepEqual(await labelLeakProbe(model, split, probe, onDevice), await labelLeakProbe(model, split, probe), 'the label-leaking probe');
  } finally {
    onDevice.dispose();
    model.dispose();
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left');
});

/** Figures of one cell measured with the engines and with tfjs's ops: errors and confusions equal, confidences within float32 rounding. */
function assertSameCell(ours: ClassificationMetrics, theirs: ClassificationMetrics, what: string): void {
  assertSameMetrics(ours, theirs, what, 0);
  assert.ok(
    Math.abs((ours.meanConfidenceOnMistakes ?? 0) - (theirs.meanConfidenceOnMistakes ?? 0)) < 1e-5,
    `${what}: confidence on mistakes ${ours.meanConfidenceOnMistakes} against ${theirs.meanConfidenceOnMistakes}`,
  );
}

test("transfer, agreement and the ensemble with the models' engines measure what tfjs's ops do: x̃ made on the source's engine and read once a batch, scored on each scorer's; an ensemble as its members' mean", async () => {
  const runtime = await engineRuntime();
  const tensors = tf.memory().numTensors;
  const before = runtime.liveBuffers;
  const models = threeNetworks(11).map((model, i) => ({ name: `m${i}`, model }));
  const n = 300;
  const split = await labelled(models[0]!.model, randomImages(n, 12), n, 20);
  const engines = new Map<Classifier, ResidentFgsm>();
  try {
    for (const { model } of models) engines.set(model, await ResidentFgsm.create(runtime, model.spec, split, { batchRows: 128 }));
    for (const aim of [{}, { labels: 'predicted', target: 'least-likely' }]) {
      const attack = AttackSchema.parse({ epsilons: [0.1, 0.25], batchSize: 128, ...aim });
      const at = JSON.stringify(aim);
      const tfjs = await transferMatrices(models, split, attack, quiet);
      const reads = runtime.counters.reads;
      const ours = await transferMatrices(models, split, attack, quiet, engines);
      // per source: x̃ once a batch (3), then each scorer's probabilities per ε (3 × 2); predicted labels: the clean ones
      assert.equal(runtime.counters.reads - reads, 3 * (3 + 3 * 2 + (at === '{}' ? 0 : 1)), `${at}: reads`);
      ours.forEach((matrix, e) =>
        matrix.cells.forEach((row, r) =>
          row.forEach((cell, c) => assertSameCell(cell, tfjs[e]!.cells[r]![c]!, `${at}: ε ${matrix.epsilon}, m${r} → m${c}`)),
        ),
      );
      assert.ok(ours[1]!.cells[0]![0]!.error > 0.4, `${at}: white-box FGSM bites (${ours[1]!.cells[0]![0]!.error})`);

      const [ourAgreement, theirAgreement] = [
        await agreementOf(models[0]!, models.slice(1), split, attack, quiet, engines),
        await agreementOf(models[0]!, models.slice(1), split, attack, quiet),
      ];
      assert.deepEqual(ourAgreement, theirAgreement, `${at}: agreement`);

      const members = models.slice(0, 2);
      const [ourEnsemble, theirEnsemble] = [
        await ensembleMetrics(members, split, attack, quiet, engines),
        await ensembleMetrics(members, split, attack, quiet),
      ];
      ourEnsemble.forEach((ensemble, e) => {
        const theirs = theirEnsemble[e]!;
        for (const part of ['clean', 'whole', 'member'] as const) {
          assert.equal(ensemble[part].error, theirs[part].error, `${at}: ensemble ${part} error at ε ${ensemble.epsilon}`);
          assert.ok(
            Math.abs(ensemble[part].meanConfidenceOnMistakes! - theirs[part].meanConfidenceOnMistakes!) < 1e-5,
            `${at}: ensemble ${part} confidence`,
          );
        }
        assert.deepEqual(
          ensemble.member.perMember.map((m) => m.own),
          theirs.member.perMember.map((m) => m.own),
          `${at}: members' own errors`,
        );
      });
    }
  } finally {
    for (const engine of engines.values()) engine.dispose();
    for (const { model } of models) model.dispose();
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left');
});

test('the engine runs FGSM, BIM and PGD, standard or stable, any labels and target, on a maxout, softmax, logistic or RBF network; it says what else lacks', () => {
  const fgsm = AttackSchema.parse({});
  assert.equal(residentFgsmSupport(SPEC, fgsm), null);
  assert.equal(residentFgsmSupport(SPEC, AttackSchema.parse({ method: 'pgd' })), null);
  assert.equal(residentFgsmSupport(SPEC, AttackSchema.parse({ method: 'bim' })), null);
  assert.equal(residentFgsmSupport(SPEC, AttackSchema.parse({ method: 'pgd', restarts: 3 })), null);
  assert.equal(residentFgsmSupport(SPEC, { ...fgsm, labels: 'predicted' }), null);
  assert.equal(residentFgsmSupport(SPEC, { ...fgsm, target: 'least-likely' }), null);
  assert.match(residentFgsmSupport(SPEC, { ...fgsm, gradient: 'softmax-minus-onehot' })!, /standard or the stable/);
  assert.equal(residentFgsmSupport({ ...SPEC, layers: [] }, fgsm), null);
  assert.equal(residentFgsmSupport(SOFTMAX_REGRESSION, fgsm), null);
  assert.equal(residentFgsmSupport(LOGISTIC_REGRESSION, fgsm), null);
  assert.equal(residentFgsmSupport(rbfSpec('independent', 'clamp', 'examples'), fgsm), null);
  const ensemble: ModelSpec = { ...SOFTMAX_REGRESSION, kind: 'ensemble', members: [SPEC, SOFTMAX_REGRESSION] };
  assert.match(residentFgsmSupport(ensemble, fgsm)!, /maxout, softmax, logistic and RBF networks, not ensemble/);
});

test("what the adapter cannot bind is refused before anything is made: the split's images, or the probabilities of a long grid", async () => {
  const runtime = await engineRuntime();
  const limit = runtime.device.limits.maxStorageBufferBindingSize;
  const split = (n: number): Split => ({ name: 'test', n, x: new Float32Array(0), y: new Int32Array(0) });
  const fitting = Math.floor(limit / (784 * 4));
  assert.equal(ResidentFgsm.cannotHold(runtime, SPEC, split(fitting), 1), null);
  assert.match(
    ResidentFgsm.cannotHold(runtime, SPEC, split(fitting + 1), 1)!,
    new RegExp(`the ${fitting + 1} resident test examples take .* MiB, more than this adapter binds`),
  );
  const grid = Math.floor(limit / (10_000 * 10 * 4));
  assert.equal(ResidentFgsm.cannotHold(runtime, SPEC, split(10_000), grid), null);
  assert.match(ResidentFgsm.cannotHold(runtime, SPEC, split(10_000), grid + 1)!, new RegExp(`the probabilities at ${grid + 1} ε take`));
});
