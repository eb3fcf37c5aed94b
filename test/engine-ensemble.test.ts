import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { AttackSchema } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import { stream } from '../src/core/rng.js';
import { EnsembleFgsm, ensembleMemberSupport } from '../src/engine/ensemble-fgsm.js';
import type { EngineGradient } from '../src/engine/kernels/cross-entropy.js';
import { EnsembleLoss } from '../src/engine/kernels/ensemble-loss.js';
import { ensembleLossReference } from '../src/engine/kernels/ensemble-loss-reference.js';
import { BackwardData, type LayerShape } from '../src/engine/kernels/layers.js';
import { inputGradientReference } from '../src/engine/kernels/layers-reference.js';
import { encodeSteps } from '../src/engine/kernels/step-record.js';
import { ResidentFgsm } from '../src/engine/resident-fgsm.js';
import { GpuRuntime, STEP_RECORD_BYTES } from '../src/engine/runtime.js';
import { classificationMetrics } from '../src/eval/metrics.js';
import { scoreAdversarial } from '../src/eval/transfer.js';
import { buildModel } from '../src/models/build.js';
import type { Split } from '../src/data/dataset.js';
import type { Classifier, MaxoutTop, ModelSpec } from '../src/models/classifier.js';
import { EnsembleClassifier } from '../src/models/ensemble.js';
import { engineAttacks } from '../src/pipeline/engine-attack.js';
import { ENGINE_MAXOUT as SPEC, engineRuntime, labelled, rbfSpec, SOFTMAX_REGRESSION, threeNetworks } from './engine-helpers.js';
import { randomImages } from './helpers.js';

/*
 * FGSM against a whole ensemble on its members' engines (ensemble-fgsm.ts): its two kernels against their float64
 * references, and the examples and their scores against tfjs's fastGradientSign against EnsembleClassifier on the
 * same webgpu device. Small shapes: lavapipe is a CPU.
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

/** Three members (maxout, maxout with a sigmoid top, softmax regression), each scaled so that FGSM bites, and their engines. */
async function withEnsemble(
  n: number,
  batchRows: number,
  body: (ensemble: EnsembleClassifier, engines: Map<Classifier, ResidentFgsm>, split: Split) => Promise<void>,
): Promise<void> {
  const runtime = await engineRuntime();
  const tensors = tf.memory().numTensors;
  const before = runtime.liveBuffers;
  const members = threeNetworks(31);
  const ensemble = new EnsembleClassifier(members);
  const split = await labelled(ensemble, randomImages(n, 32), n, 10);
  const engines = new Map<Classifier, ResidentFgsm>();
  try {
    for (const model of members) engines.set(model, await ResidentFgsm.create(runtime, model.spec, split, { batchRows }));
    await body(ensemble, engines, split);
  } finally {
    for (const engine of engines.values()) engine.dispose();
    for (const model of members) model.dispose();
  }
  assert.equal(runtime.liveBuffers, before, 'no buffer left');
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left');
}

test("FGSM against a whole ensemble on its members' engines makes tfjs's examples: per batch 16 dispatches, one read, nothing uploaded", async () => {
  await withEnsemble(130, 64, async (ensemble, engines, split) => {
    const runtime = [...engines.values()][0]!.runtime;
    const epsilons = [0.1, 0.25];
    const fgsm = EnsembleFgsm.create(ensemble.members.map((member) => engines.get(member)!));
    try {
      for (const gradient of ['standard', 'stable'] as const) {
        await fgsm.adversarial(ensemble, epsilons, gradient, [0, 1]); // builds the kernels and x̃ passes (their uniforms uploaded once)
        const counted = { ...runtime.counters };
        const ours = await fgsm.adversarial(ensemble, epsilons, gradient, [0, 1]);
        // 130 rows in 3 batches of 44: per batch the members' forward passes (3 + 3 + 1), the loss, their backward
        // passes (2 + 2 + 0) and input gradients (3), x̃ (1); one read of x̃
        assert.equal(runtime.counters.dispatches - counted.dispatches, 3 * 16, `${gradient}: dispatches`);
        assert.equal(runtime.counters.reads - counted.reads, 3, `${gradient}: reads`);
        // per call, not per batch: ε, the counters and tallies, the clipping
        const uploaded = runtime.counters.uploadedBytes - counted.uploadedBytes;
        assert.ok(uploaded <= 64, `${gradient}: ${uploaded} bytes uploaded`);
        await compareWithTfjs(ensemble, split, epsilons, gradient, ours);
      }
    } finally {
      fgsm.dispose();
    }
  });
});

/**
 * x̃ of the engine against tfjs's fastGradientSign against the ensemble (true labels, clipped to [0, 1]): equal but
 * where a sign of ∇ₓJ lies within rounding of 0 (the two sum their products in different orders).
 */
async function compareWithTfjs(
  ensemble: EnsembleClassifier,
  split: Split,
  epsilons: number[],
  gradient: EngineGradient,
  ours: Float32Array[],
): Promise<void> {
  const theirs = tf.tidy(() => {
    const x = tf.tensor2d(split.x.subarray(0, split.n * 784), [split.n, 784]);
    const y = tf.tensor1d(split.y, 'int32');
    const options = { epsilons, clip: [0, 1] as const, labels: 'true', target: null, gradient, countZeroGradients: false } as const;
    return fastGradientSign(ensemble, x, y, options).adversarial;
  });
  const theirValues = await Promise.all(theirs.map(async (t) => await t.data()));
  tf.dispose(theirs);
  epsilons.forEach((epsilon, e) => {
    const differing = ours[e]!.reduce((count, value, i) => count + (value === theirValues[e]![i] ? 0 : 1), 0);
    differences.push(`${gradient} ε ${epsilon}: ${differing}`);
    assert.ok(differing <= ours[e]!.length * 1e-4, `${gradient}, ε ${epsilon}: ${differing} of ${ours[e]!.length} pixels differ`);
  });
}

/** Pixels of x̃ that differ from tfjs's, per form and ε (reported at the end of the file). */
const differences: string[] = [];
test.after(() => console.log(`x̃ pixels differing from tfjs's: ${differences.join(', ')}`));

test("scoreAdversarial against an ensemble on its members' engines scores as tfjs's ops do: labels true, predicted, targeted; both forms", async () => {
  await withEnsemble(130, 64, async (ensemble, engines, split) => {
    const runtime = [...engines.values()][0]!.runtime;
    const scorers = [ensemble, ...ensemble.members];
    const aims = [{}, { labels: 'predicted', target: 'least-likely' }, { target: 3 }];
    for (const gradient of ['standard', 'stable'] as EngineGradient[]) {
      for (const aim of aims) {
        const attack = AttackSchema.parse({ epsilons: [0.1, 0.25], batchSize: 64, gradient, ...aim });
        const what = `${gradient} ${JSON.stringify(aim)}`;
        const theirs = await scoreAdversarial(ensemble, scorers, split, attack);
        const dispatches = runtime.counters.dispatches;
        const ours = await scoreAdversarial(ensemble, scorers, split, attack, () => {}, engines);
        assert.ok(runtime.counters.dispatches - dispatches >= 3 * 16, `${what}: made on the engines`);
        ours.forEach((row, e) =>
          row.forEach((p, s) => {
            const [mine, tfjs] = [classificationMetrics(p, split.y, 10), classificationMetrics(theirs[e]![s]!, split.y, 10)];
            const cell = `${what}: ε ${attack.epsilons[e]}, scorer ${s}`;
            assert.equal(mine.error, tfjs.error, `${cell}: error`);
            assert.deepEqual(mine.confusion, tfjs.confusion, `${cell}: confusion`);
            assert.ok(Math.abs((mine.meanConfidenceOnMistakes ?? 0) - (tfjs.meanConfidenceOnMistakes ?? 0)) < 1e-5, `${cell}: confidence`);
          }),
        );
        if (attack.target === 'none') assert.ok(classificationMetrics(ours[1]![0]!, split.y, 10).error > 0.3, `${what}: the attack bites`);
      }
    }
    // a member without an engine, or a form the engine does not take, leaves the whole attack on tfjs's ops
    const dispatches = runtime.counters.dispatches;
    const fgsm = AttackSchema.parse({ epsilons: [0.1], batchSize: 64 });
    await scoreAdversarial(ensemble, [], split, fgsm, () => {}, new Map([...engines].slice(0, 2)));
    await scoreAdversarial(ensemble, [], split, { ...fgsm, gradient: 'softmax-minus-onehot' }, () => {}, engines);
    // as do members' engines on runtimes of their own, whose recorded work would not be ordered with each other's
    const last = ensemble.members[2]!;
    const apart = await ResidentFgsm.create(new GpuRuntime(runtime.device), last.spec, split, { batchRows: 64 });
    try {
      await scoreAdversarial(ensemble, [], split, fgsm, () => {}, new Map([...engines].slice(0, 2).concat([[last, apart]])));
    } finally {
      apart.dispose();
    }
    assert.equal(runtime.counters.dispatches, dispatches, 'no engine dispatch');
  });
});

test("engineAttacks holds every model's engine on one runtime, so that an ensemble's gradient may run across them", async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const models = [SPEC, SOFTMAX_REGRESSION].map((spec, i) => ({ name: `m${i}`, model: buildModel(spec, 0.05, 41 + i) }));
  const split: Split = { name: 'test', x: randomImages(20, 42), y: new Int32Array(20), n: 20 };
  const { engines, release } = await engineAttacks(models, AttackSchema.parse({}), split, createProgress('quiet'), 'ensemble');
  try {
    const [first, second] = [...engines.values()];
    assert.equal(engines.size, 2);
    assert.equal(first!.runtime, second!.runtime);
  } finally {
    release();
    for (const { model } of models) model.dispose();
  }
  assert.equal(runtime.liveBuffers, before);
});

test('an ensemble with a member the ensemble kernels do not take (the RBF network, logistic regression) is attacked as a whole on tfjs’s ops', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const rbf = rbfSpec('independent', 'clamp', 'examples');
  const logistic: ModelSpec = { kind: 'logistic', inputSize: 784, classes: [0, 1], maxColumnNorm: null };
  assert.equal(ensembleMemberSupport(SPEC), null);
  assert.equal(ensembleMemberSupport(SOFTMAX_REGRESSION), null);
  assert.match(ensembleMemberSupport(rbf)!, /not of rbf networks/);
  assert.match(ensembleMemberSupport(logistic)!, /not of logistic networks/);
  const split: Split = { name: 'test', x: randomImages(40, 43), y: Int32Array.from({ length: 40 }, (_, i) => i % 10), n: 40 };
  const members = [buildModel(SPEC, 0.05, 44), buildModel(rbf, 0.05, 45, split)];
  const ensemble = new EnsembleClassifier(members);
  const models = members.map((model, i) => ({ name: `m${i}`, model }));
  const { engines, release } = await engineAttacks(models, AttackSchema.parse({}), split, createProgress('quiet'), 'ensemble');
  try {
    assert.equal(engines.size, 2, 'each member has an engine of its own');
    const dispatches = runtime.counters.dispatches;
    const attack = AttackSchema.parse({ epsilons: [0.1], batchSize: 20 });
    const [[onTfjs]] = (await scoreAdversarial(ensemble, [ensemble], split, attack)) as [[Float32Array]];
    const [[withEngines]] = (await scoreAdversarial(ensemble, [ensemble], split, attack, () => {}, engines)) as [[Float32Array]];
    assert.equal(runtime.counters.dispatches, dispatches, 'made (and so scored) on tfjs’s ops');
    assert.deepEqual(classificationMetrics(withEngines, split.y, 10).confusion, classificationMetrics(onTfjs, split.y, 10).confusion);
  } finally {
    release();
    for (const model of members) model.dispose();
  }
  assert.equal(runtime.liveBuffers, before);
});
