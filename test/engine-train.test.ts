import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { initBackend } from '../src/backend/select.js';
import { TrainingSchema, type TrainingConfig } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import type { Split } from '../src/data/dataset.js';
import { TrainingEngine } from '../src/engine/training-engine.js';
import { fgsmErrorRate } from '../src/eval/evaluate.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier, ModelSpec } from '../src/models/classifier.js';
import { MaxoutNetwork } from '../src/models/maxout.js';
import { train, trainStacked, type TrainingSummary, type TrainOptions } from '../src/train/loop.js';
import { maxRelativeDifference, rbfSpec } from './engine-helpers.js';
import { randomImages, randomLabels } from './helpers.js';

/*
 * The engine against tfjs on wasm: the same network, data, orders, masks (dropout stream threefry-v1) and
 * schedules, trained by each; parameters and per-epoch figures must agree to float32 rounding. Small shapes:
 * lavapipe is a CPU.
 */

const quiet = createProgress('quiet');

const SPEC: ModelSpec = {
  kind: 'maxout',
  inputSize: 784,
  classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  maxColumnNorm: 0.6,
  layers: [
    { units: 7, pieces: 3 },
    { units: 5, pieces: 2 },
  ],
  dropout: { inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2, stream: 'threefry-v1' },
  top: 'softmax',
  sigmoidLoss: 'sum',
};

function split(name: Split['name'], n: number, seed: number): Split {
  const x = randomImages(n, seed);
  const y = randomLabels(n, 10, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < 78; j++) x[i * 784 + y[i]! * 78 + j] = 1;
  return { name, x, y, n };
}

const trainSplit = split('train', 60, 1);
const validation = split('validation', 20, 2);

const config = (patch: Record<string, unknown> = {}): TrainingConfig =>
  TrainingSchema.parse({
    epochs: 2,
    batchSize: 10,
    learningRate: { initial: 0.2 },
    momentum: { endEpoch: 2 },
    earlyStopping: { patience: 1 },
    ...patch,
  });

const ADVERSARIAL = { kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'clean-mask', gradient: 'standard' } as const;

/** `model` trained on the small split (validated on `monitored`) by tfjs's ops, or by `engine` when given. */
const trainOptions = (
  model: Classifier,
  trainingConfig: TrainingConfig,
  engine: TrainingEngine | null,
  seed = 5,
  monitored: Split | null = validation,
  trained: Split = trainSplit,
): TrainOptions => ({
  model,
  train: trained,
  validation: monitored,
  config: trainingConfig,
  seed,
  perturbation: trainingPerturbation(trainingConfig.objective),
  // as fgsm run measures it: on the engine where there is one
  adversarialError: async (m, split) => {
    const { epsilon } = trainingConfig.earlyStopping;
    return (await engine?.fgsmErrorRate(m, split, epsilon, 'standard')) ?? (await fgsmErrorRate(m, split, epsilon, 'standard'));
  },
  checkpointDir: null,
  progress: quiet,
  engine,
});

interface Trained {
  summary: TrainingSummary;
  parameters: Float32Array[];
  /** The engine's dispatches (0 on wasm). */
  dispatches: number;
}

async function trainOn(
  backend: 'wasm' | 'webgpu',
  trainingConfig: TrainingConfig,
  spec: ModelSpec = SPEC,
  data = { train: trainSplit, validation },
): Promise<Trained> {
  await initBackend(backend);
  const model = buildModel(spec, 0.05, 7, data.train);
  const engine = backend === 'webgpu' ? TrainingEngine.onTfjsDevice(spec, trainingConfig) : null;
  try {
    const summary = await train(trainOptions(model, trainingConfig, engine, 5, data.validation, data.train));
    const parameters = await Promise.all(model.parameters.map(async (p) => (await p.variable.data()) as Float32Array));
    return { summary, parameters, dispatches: engine?.counters.dispatches ?? 0 };
  } finally {
    engine?.dispose();
    model.dispose();
  }
}

function assertSameTraining(engine: Trained, wasm: Trained, tolerance: number): void {
  assert.deepEqual(
    engine.summary.history.map((r) => [r.stage, r.epoch, r.trainError, r.validationError, r.adversarialValidationError]),
    wasm.summary.history.map((r) => [r.stage, r.epoch, r.trainError, r.validationError, r.adversarialValidationError]),
  );
  assert.equal(engine.summary.chosenEpoch, wasm.summary.chosenEpoch);
  engine.summary.history.forEach((r, i) =>
    assert.ok(
      Math.abs(r.trainLoss - wasm.summary.history[i]!.trainLoss) < tolerance * Math.abs(r.trainLoss),
      `training loss ${r.trainLoss} against ${wasm.summary.history[i]!.trainLoss}`,
    ),
  );
  engine.parameters.forEach((values, i) => {
    const difference = maxRelativeDifference(values, wasm.parameters[i]!, 1e-2);
    assert.ok(difference < tolerance, `parameter ${i}: relative difference ${difference}`);
  });
}

describe('the WebGPU engine trains as tfjs does', () => {
  test('adversarial training (J̃, clean-mask, standard): an epoch of 60 steps (two pipelined chunks) gives wasm parameters within 1e-5', async () => {
    // η 0.01: at batch 1 and η 0.2 this network's training is chaotic, and float32 rounding alone moves its loss by 1e-4
    const one = config({ epochs: 1, batchSize: 1, learningRate: { initial: 0.01 }, objective: ADVERSARIAL, earlyStopping: { metric: 'none' } });
    const wasm = await trainOn('wasm', one);
    const engine = await trainOn('webgpu', one);
    assertSameTraining(engine, wasm, 1e-5);
  });

  test('clean training, deterministic and independent-mask gradient states, stable gradient', async () => {
    for (const objective of [
      { kind: 'clean' },
      { ...ADVERSARIAL, gradientState: 'deterministic', gradient: 'stable' },
      { ...ADVERSARIAL, gradientState: 'independent-mask' },
    ]) {
      const one = config({ epochs: 1, objective, earlyStopping: { metric: 'none' } });
      assertSameTraining(await trainOn('webgpu', one), await trainOn('wasm', one), 1e-5);
    }
  });

  test("§6's noise controls (threefry-v1 noise): sign with alpha-mix and uniform with replace, 11 dispatches a step", async () => {
    for (const objective of [
      { kind: 'noise', distribution: 'sign', epsilon: 0.25, mixing: 'alpha-mix', alpha: 0.5 },
      { kind: 'noise', distribution: 'uniform', epsilon: 0.3, mixing: 'replace' },
    ]) {
      const one = config({ epochs: 1, objective, earlyStopping: { metric: 'none' } });
      const engine = await trainOn('webgpu', one);
      assertSameTraining(engine, await trainOn('wasm', one), 1e-5);
      // the training pass alone, its x̃ drawn in its batch input: as many dispatches as a clean step
      assert.equal(engine.dispatches / (trainSplit.n / one.batchSize), 11, objective.mixing);
    }
  });

  test("Appendix A's independent-sigmoid top, its loss the mean over classes, with weight decay and L1", async () => {
    const sigmoid: ModelSpec = { ...SPEC, top: 'sigmoid', sigmoidLoss: 'mean' } as ModelSpec;
    const one = config({ epochs: 1, objective: ADVERSARIAL, weightDecay: 0.001, l1FirstLayer: 0.0005, earlyStopping: { metric: 'none' } });
    assertSameTraining(await trainOn('webgpu', one, sigmoid), await trainOn('wasm', one, sigmoid), 1e-5);
  });

  test('softmax regression (a maxout network with no hidden layer to the engine), clean and adversarially trained, early-stopping on the adversarial validation error', async () => {
    const softmax: ModelSpec = { kind: 'softmax', inputSize: 784, classes: SPEC.classes, maxColumnNorm: 0.6 };
    for (const [objective, metric] of [
      [{ kind: 'clean' }, 'validation-error'],
      [{ ...ADVERSARIAL, gradientState: 'deterministic' }, 'adversarial-validation-error'],
    ] as const) {
      // η 0.02: at 0.2 its loss grows, and float32 rounding alone moves the second epoch's weights by 1e-4
      const one = config({
        epochs: 2,
        learningRate: { initial: 0.02 },
        objective,
        weightDecay: 0.001,
        earlyStopping: { metric, patience: 1, epsilon: 0.25 },
      });
      assertSameTraining(await trainOn('webgpu', one, softmax), await trainOn('wasm', one, softmax), 1e-5);
    }
  });

  test('logistic regression (one logit, two classes), clean and adversarially trained, its last minibatch ragged (60 = 25 + 25 + 10)', async () => {
    const logistic: ModelSpec = { kind: 'logistic', inputSize: 784, classes: [3, 7], maxColumnNorm: null };
    const twoClasses = (s: Split): Split => ({ ...s, y: s.y.map((c) => c % 2) });
    const data = { train: twoClasses(trainSplit), validation: twoClasses(validation) };
    for (const objective of [{ kind: 'clean' }, { ...ADVERSARIAL, gradientState: 'deterministic' }]) {
      // η 0.02: at 0.2 its loss swings between epochs, and float32 rounding alone moves the weights by 2e-5
      const one = config({ epochs: 2, batchSize: 25, learningRate: { initial: 0.02 }, objective, earlyStopping: { metric: 'none' } });
      const engine = await trainOn('webgpu', one, logistic, data);
      assertSameTraining(engine, await trainOn('wasm', one, logistic, data), 1e-5);
      // 3 steps an epoch: the ragged one is recorded by kernels of its own, as many as a whole minibatch's
      assert.equal(engine.dispatches % (2 * 3), 0, `${objective.kind}: ${engine.dispatches} dispatches over 6 steps`);
    }
  });

  test("§7's RBF network: independent outputs with clamped precisions and L1, clean; the softmax output with exp precisions, adversarially trained; weight decay; 5 and 9 dispatches a step", async () => {
    for (const [spec, objective, l1FirstLayer, perStep] of [
      [rbfSpec('independent', 'clamp'), { kind: 'clean' }, 0.0005, 5],
      [rbfSpec('softmax', 'exp'), { ...ADVERSARIAL, gradientState: 'deterministic' }, 0, 9],
    ] as const) {
      // weight decay on the precisions only, as tfjs's (on role weight)
      const penalties = { l1FirstLayer, weightDecay: 0.01 };
      const one = config({ epochs: 2, learningRate: { initial: 0.05 }, objective, ...penalties, earlyStopping: { metric: 'none' } });
      const engine = await trainOn('webgpu', one, spec);
      assertSameTraining(engine, await trainOn('wasm', one, spec), 1e-5);
      assert.equal(engine.dispatches, 2 * (trainSplit.n / one.batchSize) * perStep, `${spec.kind} ${objective.kind}: dispatches`);
    }
  });

  test('a tiny full run with both stages ends at the same epochs with the same errors', async () => {
    const full = config({ epochs: 3, objective: ADVERSARIAL, stage2: { mode: 'continue', maxEpochs: 2 } });
    const wasm = await trainOn('wasm', full);
    const engine = await trainOn('webgpu', full);
    assert.ok(
      wasm.summary.history.some((r) => r.stage === 2),
      'the run reaches stage 2',
    );
    assertSameTraining(engine, wasm, 1e-4);
  });

  test('stacked lanes equal each seed trained alone, bit for bit: 2 seeds over an epoch of two pipelined chunks, 12 seeds (§9)', async () => {
    await initBackend('webgpu');
    const cases = [
      { seeds: [3, 4], batchSize: 1 }, // 60 steps: two chunks
      { seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], batchSize: 10 },
    ];
    for (const { seeds, batchSize } of cases) {
      const trainingConfig = config({ epochs: 1, batchSize, objective: ADVERSARIAL, earlyStopping: { metric: 'none' } });
      const options = (seed: number, engine: TrainingEngine) => trainOptions(buildModel(SPEC, 0.05, seed), trainingConfig, engine, seed, null);
      const alone: Float32Array[][] = [];
      for (const seed of seeds) {
        const engine = TrainingEngine.onTfjsDevice(SPEC, trainingConfig);
        const run = options(seed, engine);
        await train(run);
        alone.push(await Promise.all(run.model.parameters.map(async (p) => (await p.variable.data()) as Float32Array)));
        run.model.dispose();
        engine.dispose();
      }
      const engine = TrainingEngine.onTfjsDevice(SPEC, trainingConfig);
      const runs = seeds.map((seed) => options(seed, engine));
      await trainStacked(runs, (stack) => new MaxoutNetwork(SPEC as Extract<ModelSpec, { kind: 'maxout' }>, 0.05, stack));
      for (const [i, run] of runs.entries()) {
        const together = await Promise.all(run.model.parameters.map(async (p) => (await p.variable.data()) as Float32Array));
        together.forEach((values, j) => assert.deepEqual(values, alone[i]![j], `seed ${seeds[i]} parameter ${j}`));
        run.model.dispose();
      }
      engine.dispose();
    }
  });

  test('a J̃ step: at most 20 dispatches, no upload after the epoch starts, one read per 50 steps; no buffer leaks', async () => {
    await initBackend('webgpu');
    const trainingConfig = config({ epochs: 1, batchSize: 1, objective: ADVERSARIAL, earlyStopping: { metric: 'none' } });
    const tensors = tf.memory().numTensors;
    const engine = TrainingEngine.onTfjsDevice(SPEC, trainingConfig);
    const model = buildModel(SPEC, 0.05, 7);
    const before = { ...engine.counters };
    const steps = trainSplit.n;
    await train(trainOptions(model, trainingConfig, engine, 5, null));
    const dispatches = engine.counters.dispatches - before.dispatches;
    const reads = engine.counters.reads - before.reads;
    const uploaded = engine.counters.uploadedBytes - before.uploadedBytes;
    assert.ok(dispatches <= 20 * steps, `${dispatches / steps} dispatches a step`);
    assert.ok(reads <= Math.ceil(steps / 50), `${reads} reads in ${steps} steps`);
    // the epoch's uploads: its row indices and per-step records, once, before its first step
    assert.ok(uploaded / steps <= 4096, `${uploaded / steps} bytes uploaded a step`);
    engine.dispose();
    model.dispose();
    assert.equal(engine.liveBuffers, 0);
    assert.equal(tf.memory().numTensors, tensors);
  });
});
