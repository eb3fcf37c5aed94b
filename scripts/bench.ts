/**
 * npm run bench: throughput of the paths a reproduction spends its time in, on the backend `auto` picks
 * (or --backend NAME). Softmax and maxout training in examples/s (batch 100, the paper recipe's step incl.
 * dropout and max-norm; plain and adversarial), and FGSM generation on the 10,000 MNIST test images in
 * images/s, ours against straightforward tfjs versions (tf.matMul with its default gradients). On wasm the
 * maxout paths run on one thread and again on --threads N (default: every core) with the threaded build.
 * Steady state: training figures are the fastest of 2 epochs, FGSM the best of 3 passes, naive ones skip 3 warm-up
 * steps. Every figure ends in a read of its result, so a GPU backend's queued work is counted (`--backend webgpu`).
 * `--units 1600` measures §6's larger maxout network. `--seeds N` (default 5 on webgpu and tensorflow, none
 * elsewhere) also measures N seeds of adversarial training stacked as one network (trainStacked), in examples/s
 * of all seeds together. PGD-40 (α = 0.01, random start, clipped; what the audit runs) on the maxout network: the
 * seconds of one pass over the 10,000 test images, on each wasm thread count as the maxout rows; on a software
 * WebGPU adapter (lavapipe) over the first --pgd-images (default 500) only, as it says; on webgpu also on the
 * WebGPU engine (one batch, the images resident). `--only pgd` measures PGD alone. On webgpu, the WebGPU engine (src/engine) beside tfjs's ops: the host's cost per J̃ step (steps/s of a
 * 16-unit network, whose arithmetic is negligible even on lavapipe, with its dispatches, uploads, reads and submits
 * per step counted on the device), then maxout J̃ and the stacked seeds on the engine, the engine's FGSM error rates,
 * a run's evaluation with its attack on tfjs's ops and on the engine, §6's transfer between two networks both ways,
 * and §9's FGSM against a whole ensemble of three networks both ways (on a software adapter over 2,000 examples). `--only engine` measures those alone. Data: FGSM_DATA_DIR, else the cache, else the embedded subset.
 */
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { iterativeGradientSign } from '../src/attacks/iterative.js';
import { initBackend, type BackendRequest } from '../src/backend/select.js';
import { createProgress } from '../src/core/progress.js';
import { makeSplits, type Split } from '../src/data/dataset.js';
import { cacheDir, explicitDataDir, resolveMnist } from '../src/data/source.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier } from '../src/models/classifier.js';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import type { TrainingPerturbation } from '../src/train/objective.js';
import { train, trainStacked, type EpochRecord } from '../src/train/loop.js';
import { MaxoutNetwork } from '../src/models/maxout.js';
import { AttackSchema, TrainingSchema, type TrainingConfig } from '../src/config/schema.js';
import { ResidentFgsm } from '../src/engine/resident-fgsm.js';
import { evaluate } from '../src/eval/evaluate.js';
import { scoreAdversarial, transferMatrices } from '../src/eval/transfer.js';
import { EnsembleClassifier } from '../src/models/ensemble.js';
import { TrainingEngine } from '../src/engine/training-engine.js';
import { GpuRuntime } from '../src/engine/runtime.js';
import { countDeviceCalls, type DeviceCalls } from './device-calls.js';

const quiet = createProgress('quiet');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

/** The fastest of `runs` passes: the steady state, warm-up excluded. */
async function fastest(runs: number, pass: () => Promise<void>): Promise<number> {
  let seconds = Infinity;
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    await pass();
    seconds = Math.min(seconds, (performance.now() - started) / 1000);
  }
  return seconds;
}

/** Waits for `tensor` to be computed (a read: GPU backends queue their work) and disposes it. */
async function settle(tensor: tf.Tensor): Promise<void> {
  await tensor.data();
  tensor.dispose();
}

async function fgsmImagesPerSecond(model: Classifier, test: Split, batch: number): Promise<number> {
  const seconds = await fastest(3, async () => {
    for (let start = 0; start < test.n; start += batch) {
      const end = Math.min(test.n, start + batch);
      const adversarial = tf.tidy(() => {
        const x = tf.tensor2d(test.x.subarray(start * 784, end * 784), [end - start, 784]);
        const result = fastGradientSign(model, x, tf.tensor1d(test.y.subarray(start, end), 'int32'), {
          epsilons: [0.25],
          clip: null,
          labels: 'true',
          target: null,
          countZeroGradients: false,
        });
        return result.adversarial[0]!;
      });
      await settle(adversarial);
    }
  });
  return test.n / seconds;
}

/** The same attack written the straightforward way: tf.matMul, whose gradient uses transposed matMuls. */
async function naiveFgsmImagesPerSecond(model: Classifier, test: Split, batch: number): Promise<number> {
  const [w, b] = model.parameters.map((p) => p.variable);
  const seconds = await fastest(3, async () => {
    for (let start = 0; start < test.n; start += batch) {
      const end = Math.min(test.n, start + batch);
      const adversarial = tf.tidy(() => {
        const x = tf.tensor2d(test.x.subarray(start * 784, end * 784), [end - start, 784]);
        const y = tf.oneHot(tf.tensor1d(test.y.subarray(start, end), 'int32'), 10);
        const g = tf.grad((input: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(input as tf.Tensor2D, w as tf.Tensor2D), b!)))(x);
        return tf.add(x, tf.mul(tf.sign(g), 0.25));
      });
      await settle(adversarial);
    }
  });
  return test.n / seconds;
}

/** Seconds of the same PGD-40 on the WebGPU engine: the first `images` test images resident, one batch, uploads and reads included. */
async function enginePgdSeconds(model: Classifier, test: Split, images: number): Promise<number> {
  const part: Split = { ...test, n: images, x: test.x.subarray(0, images * 784), y: test.y.subarray(0, images) };
  const onDevice = await ResidentFgsm.create(GpuRuntime.ofTfjsBackend(), model.spec, part);
  try {
    const started = performance.now();
    await onDevice.iterative(model, {
      epsilons: [0.25],
      stepSizes: [0.01],
      steps: 40,
      randomStart: true,
      restarts: 1,
      seed: 1,
      clip: [0, 1],
      gradient: 'standard',
      aim: null,
    });
    return (performance.now() - started) / 1000;
  } finally {
    onDevice.dispose();
  }
}

/** Seconds of PGD-40 (ε = .25, α = 0.01, random start, clipped to [0, 1]) on the first `images` test images. */
async function pgdSeconds(model: Classifier, test: Split, images: number, batch: number): Promise<number> {
  const started = performance.now();
  for (let start = 0; start < images; start += batch) {
    const end = Math.min(images, start + batch);
    const x = tf.tensor2d(test.x.subarray(start * 784, end * 784), [end - start, 784]);
    const y = tf.tensor1d(test.y.subarray(start, end), 'int32');
    const { adversarial } = iterativeGradientSign(model, x, y, {
      epsilon: 0.25,
      steps: 40,
      stepSize: 0.01,
      randomStart: true,
      restarts: 1,
      seed: 1,
      firstRow: start,
      clip: [0, 1],
      labels: 'true',
      target: null,
    });
    tf.dispose([x, y]);
    await settle(adversarial);
  }
  return (performance.now() - started) / 1000;
}

/** N seeds of `spec` trained together as one stacked network: examples/s of all seeds, the fastest epoch. */
async function stackedExamplesPerSecond(
  spec: ConstructorParameters<typeof MaxoutNetwork>[0],
  seeds: number,
  split: Split,
  perturbation: TrainingPerturbation,
): Promise<number> {
  const config: TrainingConfig = TrainingSchema.parse({ epochs: 2, earlyStopping: { metric: 'none' } });
  const list = Array.from({ length: seeds }, (_, i) => i + 1);
  const lanes = list.map((seed) => new MaxoutNetwork(spec, 0.005, seed));
  const summaries = await trainStacked(
    lanes.map((model, i) => ({ model, train: split, validation: null, config, seed: list[i]!, perturbation, checkpointDir: null, progress: quiet })),
    (stack) => new MaxoutNetwork(spec, 0.005, stack),
  );
  for (const model of lanes) model.dispose();
  return (seeds * split.n) / Math.min(...summaries[0]!.history.map((r) => r.seconds));
}

/**
 * J̃ training of `seeds` networks (stacked when several) for 2 epochs over `split`, by tfjs's ops or by the WebGPU
 * engine: examples/s of all seeds together in the faster epoch, and the device calls per step over both epochs
 * (counted on the device itself, so both paths are counted alike).
 */
async function adversarialTraining(
  spec: ConstructorParameters<typeof MaxoutNetwork>[0],
  seeds: number,
  split: Split,
  engineOn: boolean,
  batchSize = 100,
): Promise<{ examplesPerSecond: number; stepsPerSecond: number; perStep: DeviceCalls; recordingMicroseconds: number | null }> {
  const objective = { kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'clean-mask', gradient: 'standard' } as const;
  const config: TrainingConfig = TrainingSchema.parse({ epochs: 2, batchSize, earlyStopping: { metric: 'none' }, objective });
  const list = Array.from({ length: seeds }, (_, i) => i + 1);
  const models = list.map((seed) => new MaxoutNetwork(spec, 0.005, seed));
  const engine = engineOn ? TrainingEngine.onTfjsDevice(spec, config) : null;
  const perturbation = trainingPerturbation(objective);
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  let counter: ReturnType<typeof countDeviceCalls> | null = null;
  // the second epoch's calls only: the first also uploads the data and builds the pipelines
  const countFromEpoch2 = (record: EpochRecord): void => {
    if (record.epoch === 1 && !counter) counter = countDeviceCalls(device);
  };
  try {
    const summaries = await trainStacked(
      models.map((model, i) => ({
        model,
        train: split,
        validation: null,
        config,
        seed: list[i]!,
        perturbation,
        checkpointDir: null,
        progress: quiet,
        engine,
        onEpoch: countFromEpoch2,
      })),
      seeds > 1 ? (stack) => new MaxoutNetwork(spec, 0.005, stack) : null,
    );
    const steps = split.n / batchSize;
    const counts = (counter as ReturnType<typeof countDeviceCalls> | null)!.counts;
    const perStep = Object.fromEntries(Object.entries(counts).map(([key, value]) => [key, value / steps])) as unknown as DeviceCalls;
    const seconds = summaries[0]!.history[1]!.seconds;
    const recordingMicroseconds = engine ? (engine.counters.recordingMilliseconds * 1000) / (2 * steps) : null;
    return { examplesPerSecond: (seeds * split.n) / seconds, stepsPerSecond: steps / seconds, perStep, recordingMicroseconds };
  } finally {
    (counter as ReturnType<typeof countDeviceCalls> | null)?.restore();
    engine?.dispose();
    for (const model of models) model.dispose();
  }
}

/** FGSM error rates of an (untrained) maxout network on `test` at every ε of `epsilons` on the engine: images/s per ε, best of 3. */
async function engineFgsmImagesPerSecond(spec: ConstructorParameters<typeof MaxoutNetwork>[0], test: Split, epsilons: number[]): Promise<number> {
  const model = new MaxoutNetwork(spec, 0.005, 1);
  const rates = await ResidentFgsm.create(GpuRuntime.ofTfjsBackend(), spec, test);
  try {
    await rates.errorRates(model, epsilons, 'standard'); // builds the pipelines
    const seconds = await fastest(3, async () => void (await rates.errorRates(model, epsilons, 'standard')));
    return (test.n * epsilons.length) / seconds;
  } finally {
    rates.dispose();
    model.dispose();
  }
}

/**
 * A run's test-set evaluation of an (untrained) maxout network (FGSM at `epsilons`, both gradients; no rubbish
 * inputs, no figure) through tfjs's webgpu ops, or with the attack on the engine: images/s per gradient and ε.
 */
async function evaluationImagesPerSecond(
  spec: ConstructorParameters<typeof MaxoutNetwork>[0],
  test: Split,
  epsilons: number[],
  onEngine: boolean,
): Promise<number> {
  const model = new MaxoutNetwork(spec, 0.005, 1);
  const onDevice = onEngine ? await ResidentFgsm.create(GpuRuntime.ofTfjsBackend(), spec, test) : undefined;
  const options = { attack: AttackSchema.parse({ epsilons }), rubbishSamples: null, figureExamples: 0, seed: 1, progress: quiet, onDevice };
  try {
    await evaluate(model, test, options); // builds the pipelines
    const { fgsmImagesPerSecond } = await evaluate(model, test, options);
    return fgsmImagesPerSecond * epsilons.length;
  } finally {
    onDevice?.dispose();
    model.dispose();
  }
}

/**
 * §6's transfer between two (untrained) maxout networks at `epsilons`: each network's FGSM examples scored by both,
 * through tfjs's webgpu ops or on an engine per network: test images/s per source and ε (the second of two calls; the
 * first builds the pipelines).
 */
async function transferImagesPerSecond(
  spec: ConstructorParameters<typeof MaxoutNetwork>[0],
  test: Split,
  epsilons: number[],
  onEngine: boolean,
): Promise<number> {
  const models = [1, 2].map((seed) => ({ name: `seed${seed}`, model: new MaxoutNetwork(spec, 0.005, seed) }));
  const engines = new Map<Classifier, ResidentFgsm>();
  try {
    if (onEngine) for (const { model } of models) engines.set(model, await ResidentFgsm.create(GpuRuntime.ofTfjsBackend(), spec, test));
    const attack = AttackSchema.parse({ epsilons, batchSize: test.n });
    await transferMatrices(models, test, attack, quiet, engines);
    const seconds = await fastest(1, async () => void (await transferMatrices(models, test, attack, quiet, engines)));
    return (models.length * test.n * epsilons.length) / seconds;
  } finally {
    for (const engine of engines.values()) engine.dispose();
    for (const { model } of models) model.dispose();
  }
}

/**
 * §9's FGSM against a whole ensemble of three (untrained) maxout networks at `epsilons`, its examples scored by the
 * ensemble: through tfjs's webgpu ops, or made and scored on the members' engines (one runtime): test images/s per ε
 * (the second of two calls; the first builds the pipelines).
 */
async function ensembleFgsmImagesPerSecond(
  spec: ConstructorParameters<typeof MaxoutNetwork>[0],
  test: Split,
  epsilons: number[],
  onEngine: boolean,
): Promise<number> {
  const members = [1, 2, 3].map((seed) => new MaxoutNetwork(spec, 0.005, seed));
  const ensemble = new EnsembleClassifier(members);
  const engines = new Map<Classifier, ResidentFgsm>();
  try {
    const runtime = GpuRuntime.ofTfjsBackend();
    if (onEngine) for (const model of members) engines.set(model, await ResidentFgsm.create(runtime, spec, test));
    const attack = AttackSchema.parse({ epsilons, batchSize: test.n });
    const run = async () => void (await scoreAdversarial(ensemble, [ensemble], test, attack, () => {}, engines));
    await run();
    return (test.n * epsilons.length) / (await fastest(1, run));
  } finally {
    for (const engine of engines.values()) engine.dispose();
    for (const model of members) model.dispose();
  }
}

const perStepLine = (calls: DeviceCalls): string =>
  `${calls.dispatches.toFixed(1)} dispatches, ${calls.uploads.toFixed(2)} uploads (${Math.round(calls.uploadedBytes).toLocaleString('en-US')} B), ${calls.reads.toFixed(3)} reads, ${calls.submits.toFixed(2)} submits a step`;

async function trainingExamplesPerSecond(
  model: Classifier,
  split: Split,
  epochs: number,
  perturbation: TrainingPerturbation | null = null,
): Promise<number> {
  const config: TrainingConfig = TrainingSchema.parse({ epochs, earlyStopping: { metric: 'none' } });
  const summary = await train({ model, train: split, validation: null, config, seed: 1, perturbation, checkpointDir: null, progress: quiet });
  // the fastest epoch: steady state, as the FGSM figures take the best of 3 (the first epoch also warms up)
  return split.n / Math.min(...summary.history.map((r) => r.seconds));
}

/**
 * The maxout step written the straightforward way, for comparison: tf.matMul with its default gradients,
 * max over a reshape, dropout masks from tf.randomUniform with a fresh seed, tf.train.momentum, max-norm after
 * the update; adversarial: a separate ∇ₓJ pass, then J̃ on [x; x̃].
 */
async function naiveMaxoutExamplesPerSecond(model: Classifier, split: Split, steps: number, adversarial: boolean): Promise<number> {
  const variables = model.parameters.map((p) => p.variable);
  const [w1, b1, w2, b2, w3, b3] = variables as tf.Variable[];
  const optimizer = tf.train.momentum(0.1, 0.5);
  let seed = 1;
  const drop = (h: tf.Tensor2D, keep: number, scale: number, training: boolean): tf.Tensor2D =>
    training ? tf.mul(h, tf.mul(tf.cast(tf.less(tf.randomUniform(h.shape, 0, 1, 'float32', seed++), keep), 'float32'), scale)) : h;
  const maxout = (h: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor) =>
    tf.max(tf.reshape(tf.add(tf.matMul(h, w as tf.Tensor2D), b), [h.shape[0], -1, 5]), 2) as tf.Tensor2D;
  const logits = (x: tf.Tensor2D, training: boolean) => {
    const h1 = drop(maxout(drop(x, 0.8, 1, training), w1!, b1!), 0.5, 2, training);
    const h2 = drop(maxout(h1, w2!, b2!), 0.5, 2, training);
    return tf.add(tf.matMul(h2, w3 as tf.Tensor2D), b3!);
  };
  const warmup = 3;
  let started = performance.now();
  for (let step = 0; step < warmup + steps; step++) {
    if (step === warmup) started = performance.now();
    tf.tidy(() => {
      const x = tf.tensor2d(split.x.subarray(step * 100 * 784, (step + 1) * 100 * 784), [100, 784]);
      const y = tf.oneHot(tf.tensor1d(split.y.subarray(step * 100, (step + 1) * 100), 'int32'), 10);
      let inputs: tf.Tensor2D = x;
      let labels = y;
      if (adversarial) {
        const g = tf.grad((input: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, logits(input as tf.Tensor2D, false)))(x);
        inputs = tf.concat([x, tf.add(x, tf.mul(tf.sign(g), 0.25)) as tf.Tensor2D]);
        labels = tf.concat([y, y]);
      }
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, logits(inputs, true)) as tf.Scalar, false, variables);
      for (const w of [w1!, w2!, w3!]) w.assign(tf.mul(w, tf.minimum(1, tf.div(1.9365, tf.sqrt(tf.sum(tf.square(w), 0, true))))));
    });
    await w1!.data(); // the step is done (a GPU backend queues its work until a read)
  }
  optimizer.dispose();
  return (steps * 100) / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const raw = await resolveMnist({ source: 'auto', explicit: explicitDataDir(undefined, null), cache: cacheDir(), progress: quiet });
  const backend = await initBackend((arg('--backend') as BackendRequest | undefined) ?? 'auto');
  const threads = Number(arg('--threads') ?? availableParallelism());
  // --units 1600: §6's larger network (the issue's GPU targets name both sizes)
  const units = Number(arg('--units') ?? 240);
  const splits = makeSplits(raw, {
    source: 'auto',
    dir: null,
    train: 'train',
    validation: false,
    digits: null,
    limit: { train: null, validation: null, test: null },
  });
  const softmax = buildModel({ kind: 'softmax', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: 1.9365 }, 0.005, 1);

  console.log(`backend: ${backend.name} (${backend.reason}); data: ${raw.provenance.kind}; Node ${process.version}; tfjs ${tf.version_core}`);
  // each figure as soon as it is measured: a slow backend (lavapipe) still shows its first ones
  const rows: [string, number, string][] = [];
  const push = (row: [string, number, string]): void => {
    rows.push(row);
    const [what, value, unit] = row;
    console.log(`${what.padEnd(72)} ${Math.round(value).toLocaleString('en-US').padStart(10)} ${unit}`);
  };
  const only = arg('--only');
  if (only !== undefined && only !== 'pgd' && only !== 'engine') throw new Error(`--only pgd or --only engine, not ${only}`);
  const onlyPgd = only === 'pgd';
  const onlyEngine = only === 'engine';
  if (!only) {
    push(['softmax training, batch 100', await trainingExamplesPerSecond(softmax, splits.train, 2), 'examples/s']);
    for (const batch of [10000, 2000]) {
      push([
        `FGSM generation, softmax, ${splits.test.n} test images, batch ${batch}`,
        await fgsmImagesPerSecond(softmax, splits.test, batch),
        'images/s',
      ]);
    }
    push([`  same, naive tfjs (default matMul gradient), batch 2000`, await naiveFgsmImagesPerSecond(softmax, splits.test, 2000), 'images/s']);
  }
  softmax.dispose();

  const maxoutSpec = {
    kind: 'maxout' as const,
    inputSize: 784,
    classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    maxColumnNorm: 1.9365,
    layers: [
      { units, pieces: 5 },
      { units, pieces: 5 },
    ],
    dropout: { inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2 },
    top: 'softmax' as const,
    sigmoidLoss: 'sum' as const,
  };
  const subset: Split = { ...splits.train, n: 5000, x: splits.train.x.subarray(0, 5000 * 784), y: splits.train.y.subarray(0, 5000) };
  const adversarial = trainingPerturbation({ kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'deterministic', gradient: 'standard' });
  const naiveOn = backend.name === 'wasm' ? 'one thread' : backend.name;
  let plainNaive = 0;
  let advNaive = 0;
  if (!only) {
    const maxout = buildModel(maxoutSpec, 0.005, 1);
    plainNaive = await naiveMaxoutExamplesPerSecond(maxout, subset, 30, false);
    advNaive = await naiveMaxoutExamplesPerSecond(maxout, subset, 15, true);
    maxout.dispose();
  }
  // lavapipe runs PGD-40 on 10,000 images for hours: a part of them there, said in the row
  const software = backend.name === 'webgpu' && /software/.test(backend.device);
  const pgdImages = Math.min(splits.test.n, Number(arg('--pgd-images') ?? (software ? 500 : splits.test.n)));
  // the maxout paths on one thread (tfjs's stock build), then on the threaded build when more are asked for
  for (const count of onlyEngine ? [] : threads > 1 && backend.name === 'wasm' ? [1, threads] : [1]) {
    const on = count > 1 ? ` — wasm, ${count} threads` : '';
    if (count > 1) {
      const threaded = await initBackend('wasm', { wasmThreads: count });
      if (threaded.threads !== count) throw new Error(`the threaded build did not start: ${threaded.detail}`);
    }
    const model = buildModel(maxoutSpec, 0.005, 1);
    if (!onlyPgd) {
      const plainOurs = await trainingExamplesPerSecond(model, subset, 2);
      push([`maxout ${units}×5 ×2 + dropout training, batch 100${units === 240 ? ' (target ≥ 4,000)' : ''}${on}`, plainOurs, 'examples/s']);
      push([
        `  vs naive tfjs on ${naiveOn} (${Math.round(plainNaive).toLocaleString('en-US')}): ${(plainOurs / plainNaive).toFixed(1)}× faster`,
        plainNaive,
        'examples/s',
      ]);
      const advOurs = await trainingExamplesPerSecond(model, subset, 2, adversarial);
      push([`maxout adversarial training J̃, batch 100 (target ≥ 2,000)${on}`, advOurs, 'examples/s']);
      push([
        `  vs naive tfjs on ${naiveOn} (${Math.round(advNaive).toLocaleString('en-US')}): ${(advOurs / advNaive).toFixed(1)}× faster`,
        advNaive,
        'examples/s',
      ]);
      for (const batch of [100, 1000]) {
        push([
          `FGSM generation, maxout ${units}, ${splits.test.n} test images, batch ${batch}${batch === 100 ? ' (target ≥ 3,000)' : ''}${on}`,
          await fgsmImagesPerSecond(model, splits.test, batch),
          'images/s',
        ]);
      }
    }
    const part = pgdImages < splits.test.n ? ` (the first ${pgdImages} only: ${backend.device})` : '';
    push([
      `PGD-40 (α = 0.01, random start, clipped), maxout ${units}, ${pgdImages} test images, batch 1000${part}${on}`,
      await pgdSeconds(model, splits.test, pgdImages, 1000),
      's',
    ]);
    if (backend.name === 'webgpu') {
      push([`  the same on the WebGPU engine (one batch of ${pgdImages})${part}`, await enginePgdSeconds(model, splits.test, pgdImages), 's']);
    }
    model.dispose();
  }

  const seeds = Number(arg('--seeds') ?? (['webgpu', 'tensorflow'].includes(backend.name) ? 5 : 0));
  if (seeds > 1 && !only) {
    await initBackend(backend.name);
    push([
      `${seeds} seeds of maxout ${units} adversarial training J̃ stacked, batch 100 each${units === 1600 ? ' (target ≥ 20,000)' : ''}`,
      await stackedExamplesPerSecond(maxoutSpec, seeds, subset, adversarial!),
      'examples/s',
    ]);
  }

  if (backend.name === 'webgpu' && !onlyPgd) {
    await initBackend('webgpu');
    // the host's work per step: a network so small that even lavapipe spends almost nothing on its arithmetic
    const tiny = { ...maxoutSpec, layers: maxoutSpec.layers.map(() => ({ units: 16, pieces: 5 })) };
    const small: Split = { ...subset, n: 2000, x: subset.x.subarray(0, 2000 * 784), y: subset.y.subarray(0, 2000) };
    const hostOps = await adversarialTraining(tiny, 1, small, false, 10);
    push([`host cost: maxout 16×5 J̃ steps/s, batch 10, tfjs's webgpu ops; ${perStepLine(hostOps.perStep)}`, hostOps.stepsPerSecond, 'steps/s']);
    const counted = { ...tiny, dropout: { ...tiny.dropout, stream: 'threefry-v1' as const } };
    const hostEngine = await adversarialTraining(counted, 1, small, true, 10);
    push([`host cost: maxout 16×5 J̃ steps/s, batch 10, WebGPU engine; ${perStepLine(hostEngine.perStep)}`, hostEngine.stepsPerSecond, 'steps/s']);
    push([`  the engine's host time recording and submitting a J̃ step`, hostEngine.recordingMicroseconds!, 'µs']);
    const opsRun = await adversarialTraining(maxoutSpec, 1, software ? small : subset, false);
    push([`maxout ${units} J̃ (clean-mask), batch 100, tfjs's webgpu ops; ${perStepLine(opsRun.perStep)}`, opsRun.examplesPerSecond, 'examples/s']);
    const engineSpec = { ...maxoutSpec, dropout: { ...maxoutSpec.dropout, stream: 'threefry-v1' as const } };
    const engineRun = await adversarialTraining(engineSpec, 1, software ? small : subset, true);
    push([`maxout ${units} J̃ (clean-mask), batch 100, WebGPU engine; ${perStepLine(engineRun.perStep)}`, engineRun.examplesPerSecond, 'examples/s']);
    const test: Split = software
      ? { ...splits.test, n: 2000, x: splits.test.x.subarray(0, 2000 * 784), y: splits.test.y.subarray(0, 2000) }
      : splits.test;
    for (const epsilons of [[0.25], [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]]) {
      push([
        `FGSM error rates, maxout ${units}, ${test.n} test images, ${epsilons.length} ε from one gradient, WebGPU engine, per ε`,
        await engineFgsmImagesPerSecond(engineSpec, test, epsilons),
        'images/s',
      ]);
    }
    const paperEpsilons = [0.1, 0.25];
    for (const onEngine of [false, true]) {
      push([
        `a run's evaluation, maxout ${units}, ${test.n} test images, FGSM at ε = .1 and .25, both gradients, ${onEngine ? 'attack on the WebGPU engine' : "tfjs's webgpu ops"}, per gradient and ε`,
        await evaluationImagesPerSecond(engineSpec, test, paperEpsilons, onEngine),
        'images/s',
      ]);
    }
    for (const onEngine of [false, true]) {
      push([
        `transfer between two maxout ${units} networks, ${test.n} test images, FGSM at ε = .1 and .25 scored by both, ${onEngine ? 'on their WebGPU engines' : "tfjs's webgpu ops"}, per source and ε`,
        await transferImagesPerSecond(engineSpec, test, paperEpsilons, onEngine),
        'images/s',
      ]);
    }
    for (const onEngine of [false, true]) {
      push([
        `FGSM against an ensemble of three maxout ${units} networks, ${test.n} test images, ε = .1 and .25, scored by it, ${onEngine ? "on the members' WebGPU engines" : "tfjs's webgpu ops"}, per ε`,
        await ensembleFgsmImagesPerSecond(engineSpec, test, paperEpsilons, onEngine),
        'images/s',
      ]);
    }
    if (seeds > 1) {
      const stackedRun = await adversarialTraining(engineSpec, seeds, software ? small : subset, true);
      push([`${seeds} seeds of maxout ${units} J̃ stacked, WebGPU engine, together`, stackedRun.examplesPerSecond, 'examples/s']);
    }
  }

  if (process.argv.includes('--json'))
    console.log(
      JSON.stringify({
        backend: backend.name,
        device: backend.device,
        detail: backend.detail,
        date: new Date().toISOString(),
        data: raw.provenance.kind,
        rows,
      }),
    );
}

await main();
