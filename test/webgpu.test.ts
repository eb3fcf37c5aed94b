import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { iterativeGradientSign } from '../src/attacks/iterative.js';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { initBackend, type BackendName } from '../src/backend/select.js';
import { probeWebgpu } from '../src/backend/webgpu.js';
import type { Classifier } from '../src/models/classifier.js';
import type { ResultRecord, TransferRecord } from '../src/results/record.js';
import { columnNormScale, maxoutUnits, momentumVelocities } from '../src/backend/kernels.js';
import { minibatchObjective } from '../src/train/objective.js';
import { MomentumSgd } from '../src/train/sgd.js';
import {
  MAXOUT_TIE_GRADIENT,
  maxoutTieCase,
  model,
  randomImages,
  randomLabels,
  runBySeed,
  SMALL_MAXOUT,
  tempDir,
  TINY_MAXOUT,
  TWO_SEEDS_MAXOUT,
} from './helpers.js';
import { MaxoutNetwork } from '../src/models/maxout.js';

/*
 * The webgpu backend against wasm, on whatever adapter is here: Mesa's lavapipe (a CPU Vulkan device) on
 * machines without a GPU, as CI installs it (.ci/run). WebGPU in Node reads tensors only asynchronously, so
 * these tests read with data(), never dataSync().
 */

const N = 16;

async function values(t: tf.Tensor): Promise<Float32Array> {
  const out = (await t.data()) as Float32Array;
  t.dispose();
  return out;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((most, v, i) => Math.max(most, Math.abs(v - b[i]!)), 0);
}

/** Runs `f` on one backend and on the other, each on a model built there from the same seed. */
async function onBoth<T>(f: (backend: BackendName) => Promise<T>): Promise<{ wasm: T; webgpu: T }> {
  await initBackend('wasm');
  const wasm = await f('wasm');
  await initBackend('webgpu');
  const webgpu = await f('webgpu');
  return { wasm, webgpu };
}

/** The untargeted FGSM step at ε = 0.25 and the probabilities it was taken at, both read back. */
async function softmaxAttack(m: Classifier, x: Float32Array, y: Int32Array) {
  const [xt, yt] = [tf.tensor2d(x, [N, 784]), tf.tensor1d(y, 'int32')];
  const options = { epsilons: [0.25], clip: null, labels: 'true' as const, target: null, countZeroGradients: false };
  const result = fastGradientSign(m, xt, yt, options);
  const out = {
    adversarial: await values(result.adversarial[0]!),
    p: await values(tf.tidy(() => m.probabilities(m.logits(xt)))),
    w: (await m.parameters[0]!.variable.data()) as Float32Array,
  };
  tf.dispose([xt, yt, result.direction]);
  return out;
}

/** Parameters after a few adversarially trained steps of the small maxout network (dropout masks from the host). */
async function parametersAfterSteps(steps: number): Promise<Float32Array[]> {
  const network = model('maxout');
  const optimizer = new MomentumSgd(network.parameters, { weightDecay: 0, l1FirstLayer: 0 });
  const adversarial = trainingPerturbation({ kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'deterministic', gradient: 'standard' })!;
  const variables = network.parameters.map((p) => p.variable);
  const [images, labels] = [randomImages(32, 4), randomLabels(32, 10, 4)];
  for (let step = 0; step < steps; step++) {
    tf.tidy(() => {
      const [x, y] = [tf.tensor2d(images, [32, 784]), tf.tensor1d(labels, 'int32')];
      const perturbed = adversarial.perturb(network, x, y, [step]);
      const { grads } = tf.variableGrads(() => minibatchObjective(network, x, y, perturbed, adversarial, [step]).loss, variables);
      optimizer.apply(grads, 0.1, 0.5);
      network.constrain();
    });
  }
  const out = await Promise.all(variables.map(async (v) => (await v.data()) as Float32Array));
  optimizer.dispose();
  network.dispose();
  return out;
}

describe('webgpu backend (lavapipe without a GPU)', () => {
  before(async () => {
    const probe = await probeWebgpu();
    assert.ok(
      probe.ok,
      `no WebGPU adapter here: ${probe.ok ? '' : `${probe.detail}; ${probe.fix}`} (.ci/run installs Mesa 25's lavapipe from bookworm-backports)`,
    );
  });

  test('--backend webgpu runs on the adapter here and records the adapter and its driver', async () => {
    const choice = await initBackend('webgpu');
    assert.equal(choice.name, 'webgpu');
    assert.equal(tf.getBackend(), 'webgpu');
    assert.match(choice.detail, /@tensorflow\/tfjs-backend-webgpu on Dawn \(webgpu@\d+\.\d+\.\d+\)/);
    assert.match(choice.device, /^WebGPU adapter .+ \(driver: .+\)/);
  });

  test('auto takes a hardware adapter, never a software one (lavapipe, SwiftShader), and says why', async () => {
    const probe = await probeWebgpu();
    const choice = await initBackend('auto');
    const attempt = choice.attempts.find((a) => a.backend === 'webgpu');
    if (choice.name === 'tensorflow') return;
    if (probe.ok && !probe.adapter.software) {
      assert.equal(choice.name, 'webgpu');
    } else {
      assert.notEqual(choice.name, 'webgpu');
      assert.ok(attempt && !attempt.ok);
      if (probe.ok) assert.match(attempt.detail, /(only a software adapter|no GPU device) .*auto takes no CPU-emulated GPU/);
    }
  });

  test('FGSM on softmax regression: webgpu equals the closed form x + ε·sign(W(p − onehot(y))) and wasm', async () => {
    const [x, y] = [randomImages(N, 1), randomLabels(N, 10, 1)];
    const runs = await onBoth(async () => {
      const m = model('softmax');
      const out = await softmaxAttack(m, x, y);
      m.dispose();
      return out;
    });
    const { adversarial, p, w } = runs.webgpu;
    let ambiguous = 0;
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < 784; j++) {
        let g = 0;
        for (let k = 0; k < 10; k++) g += w[j * 10 + k]! * (p[i * 10 + k]! - (k === y[i] ? 1 : 0));
        // a gradient within float32 rounding of 0 may take either sign on either backend
        if (Math.abs(g) < 1e-6) {
          ambiguous++;
          continue;
        }
        const expected = x[i * 784 + j]! + 0.25 * Math.sign(g);
        assert.ok(Math.abs(adversarial[i * 784 + j]! - expected) < 1e-6, `example ${i} pixel ${j}: ${adversarial[i * 784 + j]} vs ${expected}`);
      }
    }
    assert.ok(ambiguous < 10, `${ambiguous} gradients within rounding of 0`);
    assert.ok(maxDifference(runs.webgpu.p, runs.wasm.p) < 1e-6);
    const differing = adversarial.filter((v, i) => Math.abs(v - runs.wasm.adversarial[i]!) > 1e-6).length;
    assert.ok(differing <= ambiguous, `${differing} pixels differ from wasm`);
  });

  test('maxout: forward and input gradient equal wasm; on ties the last piece takes the gradient', async () => {
    const x = randomImages(N, 2);
    const runs = await onBoth(async () => {
      const m = model('maxout');
      const xt = tf.tensor2d(x, [N, 784]);
      const logits = await values(tf.tidy(() => m.logits(xt)));
      const gradient = await values(tf.grad((v: tf.Tensor) => tf.sum(tf.square(m.logits(v as tf.Tensor2D))))(xt));
      const tieCase = maxoutTieCase(maxoutUnits);
      const ties = await values(tieCase.gradient);
      tf.dispose([xt, tieCase.units]);
      m.dispose();
      return { logits, gradient, ties };
    });
    assert.ok(maxDifference(runs.webgpu.logits, runs.wasm.logits) < 1e-5);
    const scale = runs.wasm.gradient.reduce((most, v) => Math.max(most, Math.abs(v)), 0);
    assert.ok(maxDifference(runs.webgpu.gradient, runs.wasm.gradient) < 1e-4 * scale);
    assert.deepEqual(Array.from(runs.webgpu.ties), MAXOUT_TIE_GRADIENT);
    assert.deepEqual(runs.webgpu.ties, runs.wasm.ties);
  });

  test('a short adversarial training run gives the parameters wasm gives, within float tolerance', async () => {
    const runs = await onBoth(() => parametersAfterSteps(3));
    runs.wasm.forEach((expected, i) => assert.ok(maxDifference(runs.webgpu[i]!, expected) < 1e-4, `parameter ${i}`));
  });

  test('fused kernels: the momentum step and the max-norm scale equal their element-wise forms, in fewer dispatches', async () => {
    await initBackend('webgpu');
    const close = async (ours: tf.Tensor, theirs: tf.Tensor, what: string) => {
      const [a, b] = [await values(ours), await values(theirs)];
      assert.ok(maxDifference(a, b) <= 1e-6 * Math.max(1, ...b.map(Math.abs)), `${what}: differs by ${maxDifference(a, b)}`);
    };
    const random = (shape: number[], seed: number) =>
      tf.tensor(
        randomImages(1, seed).slice(
          0,
          shape.reduce((a, b) => a * b, 1),
        ),
        shape,
      );
    // one network, and three stacked with a momentum and a learning rate each
    const v = [random([28, 28], 1), random([3, 20, 13], 2)];
    const g = [random([28, 28], 3), random([3, 20, 13], 4)];
    const [momenta, rates] = [tf.tensor3d([0.5, 0.6, 0.7], [3, 1, 1]), tf.tensor3d([0.1, 0.01, 0.001], [3, 1, 1])];
    await close(momentumVelocities([{ v: v[0]!, g: g[0]! }], 0.55, 0.1)[0]!, tf.sub(tf.mul(0.55, v[0]!), tf.mul(0.1, g[0]!)), 'velocity');
    await close(
      momentumVelocities([{ v: v[1]!, g: g[1]! }], momenta, rates)[0]!,
      tf.sub(tf.mul(momenta, v[1]!), tf.mul(rates, g[1]!)),
      'stacked velocity',
    );
    for (const w of [tf.mul(v[0]!, 3), tf.mul(v[1]!, 3)]) {
      const norms = tf.sqrt(tf.sum(tf.square(w), w.rank - 2, true));
      await close(columnNormScale(w, 1.9365), tf.minimum(1, tf.div(1.9365, tf.maximum(norms, 1e-12))), `max-norm scale of [${w.shape}]`);
    }
    // an update and the max-norm of the small maxout network: 2 dispatches per parameter, 2 per weight matrix
    const network = new MaxoutNetwork(
      { kind: 'maxout', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: 1.9365, ...SMALL_MAXOUT },
      0.05,
      3,
    );
    const optimizer = new MomentumSgd(network.parameters, { weightDecay: 0, l1FirstLayer: 0 });
    const grads = Object.fromEntries(network.parameters.map((p) => [p.variable.name, tf.onesLike(p.variable)]));
    // counted where tfjs-backend-webgpu records every dispatch (programs run through it directly are not kernels)
    const backend = tf.backend() as unknown as { recordAndSubmit: (...args: unknown[]) => unknown };
    const record = backend.recordAndSubmit;
    let dispatches = 0;
    backend.recordAndSubmit = function (this: unknown, ...args: unknown[]) {
      dispatches++;
      return record.apply(this, args);
    };
    try {
      optimizer.apply(grads, 0.1, 0.5);
      network.constrain();
    } finally {
      backend.recordAndSubmit = record;
    }
    assert.equal(dispatches, 2 * 6 + 2 * 3, 'fused: velocity and parameter per parameter, scale and product per weight matrix');
    tf.dispose([...v, ...g, momenta, rates, ...Object.values(grads)]);
    optimizer.dispose();
    network.dispose();
  });

  test('host values reach the device through queue writes into pooled buffers: exact for float32, int32 and bool, no staging buffer', async () => {
    await initBackend('webgpu');
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    const create = device.createBuffer;
    let staging = 0;
    device.createBuffer = function (this: GPUDevice, descriptor: GPUBufferDescriptor) {
      if (descriptor.usage & GPUBufferUsage.MAP_WRITE) staging++;
      return create.call(this, descriptor);
    };
    try {
      // above tfjs's CPU hand-off size (1,000 elements), so the kernels run on the device and read the uploads
      const floats = randomImages(2, 5);
      // within ±2²⁴: tfjs's int32 add computes in float32
      const ints = Int32Array.from({ length: 2048 }, (_, i) => (i === 0 ? -16777216 : i === 1 ? 16777215 : ((i * 7919) % 4001) - 2000));
      const bools = Array.from({ length: 2048 }, (_, i) => i % 3 === 0);
      assert.deepEqual(await values(tf.tidy(() => tf.add(tf.tensor1d(floats), 0))), floats);
      const added = tf.tidy(() => tf.add(tf.tensor1d(ints, 'int32'), tf.scalar(0, 'int32')));
      const negated = tf.tidy(() => tf.logicalNot(tf.tensor1d(bools, 'bool')));
      assert.deepEqual(await added.data(), ints);
      assert.deepEqual(
        Array.from(await negated.data(), (v) => v === 0),
        bools,
      );
      tf.dispose([added, negated]);
      await parametersAfterSteps(2);
    } finally {
      device.createBuffer = create;
    }
    assert.equal(staging, 0, 'uploads made mapped staging buffers');
  });

  test('PGD (random start, restarts) on the small maxout network: webgpu gives the examples wasm gives, within ε, no leak', async () => {
    const [x, y] = [randomImages(N, 5), randomLabels(N, 10, 5)];
    const options = {
      epsilon: 0.1,
      steps: 3,
      stepSize: 0.04,
      randomStart: true,
      restarts: 2,
      seed: 3,
      clip: [0, 1] as const,
      labels: 'true' as const,
      target: null,
    };
    let leaked = 0;
    const runs = await onBoth(async () => {
      const m = model('maxout', 0.3);
      const [xt, yt] = [tf.tensor2d(x, [N, 784]), tf.tensor1d(y, 'int32')];
      const before = tf.memory().numTensors;
      const adversarial = await values(iterativeGradientSign(m, xt, yt, options).adversarial);
      leaked += tf.memory().numTensors - before;
      tf.dispose([xt, yt]);
      m.dispose();
      return adversarial;
    });
    assert.equal(leaked, 0);
    runs.webgpu.forEach((v, i) => assert.ok(v >= Math.max(0, x[i]! - 0.1 - 1e-6) && v <= Math.min(1, x[i]! + 0.1 + 1e-6), `pixel ${i}: ${v}`));
    // a gradient within rounding of 0 may take either sign on either backend, and a step carries it on
    const differing = runs.webgpu.filter((v, i) => Math.abs(v - runs.wasm[i]!) > 1e-5).length;
    assert.ok(differing < 0.01 * runs.wasm.length, `${differing} of ${runs.wasm.length} pixels differ from wasm`);
  });

  test('attack, gradient and training steps on webgpu leak no tensor', async () => {
    await initBackend('webgpu');
    await parametersAfterSteps(1); // the first pass compiles the shaders and fills tfjs's caches
    const before = tf.memory().numTensors;
    await parametersAfterSteps(2);
    const m = model('softmax');
    await softmaxAttack(m, randomImages(N, 3), randomLabels(N, 10, 3));
    m.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  test('nothing under src/ reads a tensor synchronously but the host tie fix, which webgpu never runs', (t) => {
    // a packed app (pack-portable.sh, scripts/device-check.sh) carries dist/ only: this is about the sources
    if (!existsSync('src')) return t.skip('no src/ here: a packed app');
    // tfjs-backend-webgpu's synchronous read needs a browser's OffscreenCanvas: in Node it fails
    const files = readdirSync('src', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const reads = files.flatMap((f) =>
      readFileSync(join('src', f), 'utf8')
        .split('\n')
        .flatMap((line, i) => (/\b(dataSync|arraySync|bufferSync)\(/.test(line) ? [`${f}:${i + 1}`] : [])),
    );
    assert.deepEqual(
      reads.map((r) => r.replace(/:\d+$/, '')),
      [join('backend', 'kernels.ts'), join('backend', 'kernels.ts')],
    );
  });

  /** TINY_MAXOUT (or `yaml`, the experiment `name`) run by `fgsm run` with `args`: its record and its weights. */
  const wholeRun = (dir: string, label: string, args: string[], yaml = TINY_MAXOUT, name = 'tiny') => {
    const config = join(dir, `${name}.yaml`);
    writeFileSync(config, yaml);
    const results = join(dir, label);
    const out = spawnSync(process.execPath, [join('bin', 'fgsm.js'), 'run', config, '--results-dir', results, ...args], {
      encoding: 'utf8',
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    assert.equal(out.status, 0, out.stderr);
    const runDir = join(results, name, readdirSync(join(results, name))[0]!);
    const result = JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')) as ResultRecord;
    const bytes = readFileSync(join(runDir, 'model', 'weights.bin'));
    return { result, output: out.stdout + out.stderr, weights: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) };
  };

  /** The two runs' parameters within `tolerance`, their figures within half a point, the same epochs in each stage. */
  const assertSameRun = (webgpu: ReturnType<typeof wholeRun>, wasm: ReturnType<typeof wholeRun>, tolerance: number) => {
    assert.equal(webgpu.result.provenance.backend.name, 'webgpu');
    assert.ok(maxDifference(webgpu.weights, wasm.weights) < tolerance, `parameters differ by ${maxDifference(webgpu.weights, wasm.weights)}`);
    const [a, b] = [webgpu.result.metrics, wasm.result.metrics];
    const close = (x: number, y: number, what: string) => assert.ok(Math.abs(x - y) <= 0.005, `${what}: webgpu ${x}, wasm ${y}`);
    close(a.clean.error, b.clean.error, 'clean error');
    for (const eps of ['0.1', '0.25']) {
      close(a.fgsm[eps]!.error, b.fgsm[eps]!.error, `FGSM error at ε = ${eps}`);
      close(a.fgsmOtherGradient![eps]!.error, b.fgsmOtherGradient![eps]!.error, `FGSM error (other gradient) at ε = ${eps}`);
    }
    close(a.rubbish!.error, b.rubbish!.error, 'rubbish error');
    // the same stopping decisions: epochs in each stage
    assert.deepEqual([a.training.epochs, a.training.stage2?.epochs], [b.training.epochs, b.training.stage2?.epochs]);
  };

  test("a whole run on webgpu completes, and its parameters and metrics are wasm's within float tolerance", () => {
    // adversarial training, adversarial early stopping, stage 2 and the full evaluation, on a tiny maxout network
    const dir = tempDir();
    const webgpu = wholeRun(dir, 'webgpu', ['--backend', 'webgpu']);
    assert.equal(webgpu.result.provenance.trainer, 'tfjs');
    assert.equal(webgpu.result.provenance.attacker, 'webgpu-engine', 'FGSM needs no dropout stream: the engine attacks whichever path trained');
    assert.match(webgpu.output, /training: tfjs's webgpu ops \(the WebGPU engine does not run this: .*threefry-v1/);
    assertSameRun(webgpu, wholeRun(dir, 'wasm', ['--backend', 'wasm']), 1e-3);
    // the transfer between the run and itself: on webgpu x̃ made and scored on each model's engine
    const transfer = (label: string) => {
      const config = join(dir, 'tiny.yaml');
      const results = join(dir, label);
      const args = ['transfer', config, config, '--results-dir', results, '--backend', label, '--eps', '0.1,0.25'];
      const out = spawnSync(process.execPath, [join('bin', 'fgsm.js'), ...args], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
      assert.equal(out.status, 0, out.stderr);
      const runs = join(results, 'transfer');
      const record = JSON.parse(readFileSync(join(runs, readdirSync(runs)[0]!, 'result.json'), 'utf8')) as TransferRecord;
      return { output: out.stdout + out.stderr, record };
    };
    const [onEngine, onWasm] = [transfer('webgpu'), transfer('wasm')];
    assert.match(onEngine.output, /transfer: tiny2: FGSM on the WebGPU engine/);
    assert.doesNotMatch(onWasm.output, /WebGPU engine/);
    for (const [key, matrices] of [
      ['matrices', onEngine.record.metrics.matrices],
      ['other gradient', onEngine.record.metrics.otherGradient!.matrices],
    ] as const) {
      const theirs = key === 'matrices' ? onWasm.record.metrics.matrices : onWasm.record.metrics.otherGradient!.matrices;
      matrices.forEach((matrix, e) =>
        matrix.cells.flat().forEach((cell, i) => {
          const other = theirs[e]!.cells.flat()[i]!;
          assert.ok(Math.abs(cell.error - other.error) <= 0.005, `${key}, ε = ${matrix.epsilon}, cell ${i}: ${cell.error} against ${other.error}`);
        }),
      );
    }
  });

  test("a whole run on the WebGPU engine (dropout stream threefry-v1): wasm's parameters and metrics, epochs and stages", () => {
    const dir = tempDir();
    const counter = ['--set', 'model.dropout.stream=threefry-v1'];
    const engine = wholeRun(dir, 'engine', ['--backend', 'webgpu', ...counter]);
    assert.equal(engine.result.provenance.trainer, 'webgpu-engine');
    assert.match(engine.output, /training: the WebGPU engine/);
    assert.equal(engine.result.provenance.attacker, 'webgpu-engine');
    assert.match(engine.output, /evaluation: FGSM on the WebGPU engine/);
    assertSameRun(engine, wholeRun(dir, 'wasm', ['--backend', 'wasm', ...counter]), 1e-4);
    // a sweep of each run: on webgpu the engine attacks every ε of the grid from one gradient per batch
    const sweep = (backend: string) => {
      const args = ['sweep', join(dir, 'tiny.yaml'), '--results-dir', join(dir, backend === 'webgpu' ? 'engine' : 'wasm'), '--backend', backend];
      const out = spawnSync(process.execPath, [join('bin', 'fgsm.js'), ...args, '--eps', '0:0.3:0.05', ...counter], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const runs = join(dir, backend === 'webgpu' ? 'engine' : 'wasm', 'tiny');
      const sweeps = join(runs, readdirSync(runs)[0]!, 'sweeps');
      return { output: out.stdout + out.stderr, record: JSON.parse(readFileSync(join(sweeps, readdirSync(sweeps)[0]!, 'sweep.json'), 'utf8')) };
    };
    const [onEngine, onWasm] = [sweep('webgpu'), sweep('wasm')];
    assert.match(onEngine.output, /evaluation: FGSM on the WebGPU engine/);
    assert.deepEqual([onEngine.record.attacker, onWasm.record.attacker], ['webgpu-engine', 'tfjs']);
    onEngine.record.points.forEach((point: { epsilon: number; error: number }, i: number) =>
      assert.ok(
        Math.abs(point.error - onWasm.record.points[i].error) <= 0.005,
        `ε = ${point.epsilon}: ${point.error} against ${onWasm.record.points[i].error}`,
      ),
    );
  });

  test("whole runs of logistic regression (3 vs 7, its last minibatch ragged) and of §7's RBF network (independent outputs, clamped precisions) on the WebGPU engine: wasm's parameters and metrics", () => {
    const data = (digits: string) => `data:
  source: auto
  limit: { train: 1000, validation: 300, test: 300 }${digits}
`;
    const runs = [
      {
        name: 'tiny-logreg',
        sections: `${data('\n  digits: [3, 7]')}model: { kind: logistic, init: { range: 0.005 }, maxColumnNorm: null }
training: { epochs: 3, batchSize: 30, earlyStopping: { metric: validation-error, patience: 5 } }`,
        raggedBatch: 30,
      },
      {
        name: 'tiny-rbf',
        sections: `${data('')}model: { kind: rbf, output: independent, precision: clamp, init: { centres: class-means, precision: 0.05 } }
training: { epochs: 2, earlyStopping: { metric: validation-error, patience: 5 } }`,
        raggedBatch: null,
      },
    ];
    for (const { name, sections, raggedBatch } of runs) {
      const dir = tempDir();
      const yaml = `name: ${name}
seed: 2
backend: wasm
${sections}
attack: { epsilons: [0.1, 0.25] }
evaluation: { rubbish: { samples: 200 }, figureExamples: 2 }
`;
      const engine = wholeRun(dir, 'engine', ['--backend', 'webgpu'], yaml, name);
      assert.equal(engine.result.provenance.trainer, 'webgpu-engine', name);
      assert.equal(engine.result.provenance.attacker, 'webgpu-engine', name);
      assert.match(engine.output, /training: the WebGPU engine/);
      const examples = engine.result.data.counts.train;
      if (raggedBatch) assert.notEqual(examples % raggedBatch, 0, `${examples} training examples: a ragged last minibatch`);
      assertSameRun(engine, wholeRun(dir, 'wasm', ['--backend', 'wasm'], yaml, name), 1e-4);
    }
  });

  test("two seeds on webgpu train as one stacked network (auto), on tfjs's ops or on the engine, each ending as on wasm one by one", () => {
    for (const counter of [[], ['--set', 'model.dropout.stream=threefry-v1']]) {
      const dir = tempDir();
      const config = join(dir, 'two-seeds.yaml');
      writeFileSync(config, TWO_SEEDS_MAXOUT);
      const stacked = runBySeed(config, join(dir, 'webgpu'), ['--backend', 'webgpu', ...counter]);
      const alone = runBySeed(config, join(dir, 'wasm'), ['--backend', 'wasm', '--stack-seeds', 'never', ...counter]);
      assert.match(stacked.output, /seeds 3, 4 trained together as one stacked network on webgpu/);
      assert.match(stacked.output, counter.length ? /training: the WebGPU engine/ : /training: tfjs's webgpu ops/);
      for (const seed of [3, 4]) {
        const [a, b] = [stacked.bySeed.get(seed)!, alone.bySeed.get(seed)!];
        assert.ok(maxDifference(a.weights, b.weights) < 1e-3, `seed ${seed}: parameters differ by ${maxDifference(a.weights, b.weights)}`);
        const [x, y] = [a.result.metrics, b.result.metrics];
        assert.deepEqual([x.training.epochs, x.training.stage2?.epochs], [y.training.epochs, y.training.stage2?.epochs]);
        assert.ok(Math.abs(x.clean.error - y.clean.error) <= 0.005 && Math.abs(x.fgsm['0.25']!.error - y.fgsm['0.25']!.error) <= 0.005);
      }
    }
  });
});
