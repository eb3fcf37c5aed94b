import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../src/backend/select.js';
import { stream } from '../src/core/rng.js';
import { cacheDir } from '../src/data/source.js';
import { inspectDir } from '../src/data/verify.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier, ModelSpec } from '../src/models/classifier.js';
import type { ResultRecord } from '../src/results/record.js';

/** The backend the tests run on: wasm, as on the CI machine. */
export async function useWasm(): Promise<void> {
  await initBackend('wasm');
}

/** The CLI as a user runs it. */
export const BIN = join(process.cwd(), 'bin', 'fgsm.js');

/** `fgsm ARGS` in a child process, without colour; its exit status and output. */
export function fgsmCli(args: string[], env: NodeJS.ProcessEnv = {}, options: SpawnSyncOptions = {}) {
  const out = spawnSync(process.execPath, [BIN, ...args], { ...options, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0', ...env } });
  return { status: out.status, stdout: out.stdout as string, stderr: out.stderr as string };
}

export function tempDir(prefix = 'fgsm-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * The full MNIST files for tests that need real bytes: FGSM_DATA_DIR (CI sets it to ../shared/data/mnist),
 * else the user cache filled by `fgsm data download`.
 */
export function realDataDir(): string {
  const dir = process.env.FGSM_DATA_DIR ?? cacheDir();
  if (!inspectDir(dir).every((s) => s.ok)) {
    throw new Error(`no verified MNIST files in ${dir}: set FGSM_DATA_DIR to a directory holding them, or run \`npx fgsm data download\``);
  }
  return dir;
}

export function randomImages(n: number, seed: number): Float32Array {
  return stream(seed, 'test-images').fillUniform(new Float32Array(n * 784), 0, 1);
}

export function randomLabels(n: number, classes: number, seed: number): Int32Array {
  const rng = stream(seed, 'test-labels');
  return Int32Array.from({ length: n }, () => rng.int(classes));
}

/** A small maxout network (2 layers of 12 units × 3 pieces) with pylearn2's dropout. */
export const SMALL_MAXOUT = {
  layers: [
    { units: 12, pieces: 3 },
    { units: 12, pieces: 3 },
  ],
  dropout: { inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2, stream: 'sfc32-rows' as const },
  top: 'softmax' as const,
  sigmoidLoss: 'sum' as const,
};

/**
 * Maxout units with ties, for pylearn2's rule that a tie's gradient goes to the last piece: 2 examples, 3 units of
 * 2 pieces (piece p of unit u is column p·3 + u), ties in units 2 and 3. Gives the units and ∂Σ(units ⊙ upstream)/∂z.
 */
export function maxoutTieCase(units: (z: tf.Tensor2D, pieces: number) => tf.Tensor2D): { units: tf.Tensor; gradient: tf.Tensor } {
  return tf.tidy(() => {
    const z = tf.tensor2d([
      [1, 5, 2, 3, 5, -1],
      [1e-30, 0, 7, 0, 0, 7 - 1e-6],
    ]);
    const upstream = tf.tensor2d([
      [10, 20, 30],
      [40, 50, 60],
    ]);
    return {
      units: units(z, 2),
      gradient: tf.grad((v: tf.Tensor) => tf.sum(tf.mul(units(v as tf.Tensor2D, 2), upstream)))(z),
    };
  });
}

/** What maxoutTieCase gives when the largest piece is the unit and the last tied piece takes the gradient. */
export const MAXOUT_TIE_UNITS = [3, 5, 2, 1e-30, 0, 7].map(Math.fround);
export const MAXOUT_TIE_GRADIENT = [0, 0, 30, 10, 20, 0, 40, 0, 60, 0, 50, 0];

export function model(kind: Exclude<ModelSpec['kind'], 'rbf' | 'ensemble'>, initRange = 0.05, seed = 3): Classifier {
  const classes = kind === 'logistic' ? [3, 7] : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const base = { inputSize: 784, classes, maxColumnNorm: null };
  return buildModel(kind === 'maxout' ? { ...base, kind, ...SMALL_MAXOUT } : { ...base, kind }, initRange, seed);
}

/** Per-example loss of the model in its deterministic state. */
export function lossOf(m: Classifier, x: Float32Array, y: Int32Array): Float32Array {
  return tf.tidy(() => m.loss(m.logits(tf.tensor2d(x, [y.length, 784])), tf.tensor1d(y, 'int32')).dataSync() as Float32Array);
}

/**
 * ∂J/∂z of the softmax cross-entropy in float64 (plain JS numbers): p_k for k ≠ y, and p_y − 1 written as the
 * exact −Σ_{k≠y} p_k (with z_y 40 above the rest even float64 rounds p_y to 1).
 */
export function float64LossGradient(z: ArrayLike<number>, y: number): number[] {
  const values = Array.from(z);
  const max = Math.max(...values);
  const lse = max + Math.log(values.reduce((sum, v) => sum + Math.exp(v - max), 0));
  const p = values.map((v) => Math.exp(v - lse));
  return p.map((pk, k) => (k === y ? -p.reduce((sum, other, j) => (j === y ? sum : sum + other), 0) : pk));
}

/** A softmax experiment of a few seconds on 1,000 training examples (limits on every split); `seedLine` e.g. "seed: 1". */
export function tinySoftmaxYaml(name: string, seedLine: string): string {
  return `name: ${name}
${seedLine}
backend: wasm
data:
  source: auto
  limit: { train: 1000, validation: 300, test: 300 }
model: { kind: softmax, maxColumnNorm: 1.9365 }
training: { epochs: 2, earlyStopping: { metric: validation-error, patience: 5 } }
evaluation: { rubbish: null, figureExamples: 0 }
`;
}

/** SMALL_MAXOUT's layers on 1,000 digits (FGSM_DATA_DIR's where set: CI, a packed app; else the embedded ones). */
const TINY_MAXOUT_SECTIONS = `backend: wasm
data:
  source: auto
  limit: { train: 1000, validation: 300, test: 300 }
model:
  kind: maxout
  layers:
    - { units: 12, pieces: 3 }
    - { units: 12, pieces: 3 }
  init: { range: 0.05 }
  maxColumnNorm: 1.9365
  dropout: { inputKeep: 0.8, inputScale: 1, hiddenKeep: 0.5, hiddenScale: 2 }
`;

/** A tiny maxout run with every part of a run (adversarial training and early stopping, stage 2, the full evaluation), in seconds. */
export const TINY_MAXOUT = `name: tiny
seed: 3
${TINY_MAXOUT_SECTIONS}training:
  epochs: 2
  objective: { kind: adversarial, alpha: 0.5, epsilon: 0.25 }
  earlyStopping: { metric: adversarial-validation-error, patience: 5, epsilon: 0.25 }
  stage2: { mode: continue, maxEpochs: 2 }
attack:
  epsilons: [0.1, 0.25]
evaluation:
  rubbish: { samples: 500 }
  figureExamples: 4
`;

/** Two seeds of the tiny maxout network with early stopping and stage 2: whole minibatches of 100 in both stages. */
export const TWO_SEEDS_MAXOUT = `name: two-seeds
seeds: [3, 4]
${TINY_MAXOUT_SECTIONS}training:
  epochs: 4
  objective: { kind: adversarial, alpha: 0.5, epsilon: 0.25 }
  earlyStopping: { patience: 2 }
  stage2: { mode: continue, maxEpochs: 2 }
attack:
  epsilons: [0.25]
evaluation:
  rubbish: null
  figureExamples: 0
`;

/** `fgsm run CONFIG --results-dir RESULTS ...args` on a config of seeds: its output, and each seed's result and weights. */
export function runBySeed(config: string, results: string, args: string[]) {
  const out = fgsmCli(['run', config, '--results-dir', results, ...args]);
  assert.equal(out.status, 0, out.stderr);
  const experiment = readdirSync(results)[0]!;
  const bySeed = new Map(
    readdirSync(join(results, experiment)).map((id) => {
      const runDir = join(results, experiment, id);
      const result = JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')) as ResultRecord;
      const bytes = readFileSync(join(runDir, 'model', 'weights.bin'));
      return [result.seed, { result, weights: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) }] as const;
    }),
  );
  return { output: out.stderr, bySeed };
}
