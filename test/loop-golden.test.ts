import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { TrainingSchema, type ObjectiveConfig } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import type { Split } from '../src/data/dataset.js';
import type { Classifier } from '../src/models/classifier.js';
import { train, type TrainingSummary } from '../src/train/loop.js';
import { model, randomImages, randomLabels, tempDir, useWasm } from './helpers.js';

/**
 * The training loop's numbers, pinned bit for bit: each case trains a small model and compares the sha256 of its
 * final parameters and of its epoch history (every field but the wall-clock seconds) with the values recorded
 * before the loop was restructured (issue 12 §2). A refactor of the loop must leave every hash as it is.
 */

const quiet = createProgress('quiet');

function split(name: Split['name'], n: number, seed: number, classes: number): Split {
  // learnable: the label is decided by which tenth of the image is brightest
  const x = randomImages(n, seed);
  const y = randomLabels(n, classes, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < 78; j++) x[i * 784 + y[i]! * 78 + j] = 1;
  return { name, x, y, n };
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function fingerprint(m: Classifier, summary: TrainingSummary): { parameters: string; history: string } {
  const hash = createHash('sha256');
  for (const p of m.parameters) {
    hash.update(p.name);
    const values = p.variable.dataSync() as Float32Array;
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  const history = summary.history.map(({ seconds: _seconds, ...rest }) => rest);
  const summaryFields = { ...summary, history, seconds: 0, totalSeconds: 0 };
  return { parameters: hash.digest('hex'), history: sha256(new TextEncoder().encode(JSON.stringify(summaryFields))) };
}

const adversarial = (gradientState: 'deterministic' | 'clean-mask' | 'independent-mask'): ObjectiveConfig => ({
  kind: 'adversarial',
  alpha: 0.5,
  epsilon: 0.25,
  gradientState,
  gradient: 'standard',
});

interface Case {
  name: string;
  training: Record<string, unknown>;
  objective?: ObjectiveConfig;
  parameters: string;
  history: string;
}

const CASES: Case[] = [
  {
    name: 'clean, early stopping, stage 2 continue',
    training: { epochs: 4, earlyStopping: { patience: 2 }, stage2: { mode: 'continue', maxEpochs: 3 } },
    parameters: '15e48fe3befdc7ed25ae18fe9bc60b58e5b99a65cf123e00d12c1f07899b74d2',
    history: '26e1c9df83dc0bc860207b11c8e9c4e2d29cd9e04abe15f760b3165a18783ea6',
  },
  {
    name: 'clean, stage 2 retrain',
    training: { epochs: 3, earlyStopping: { patience: 2 }, stage2: { mode: 'retrain' } },
    parameters: 'a6f7b27271d8303be893639f28c8c52d5356eeb9da3d52ab5410c376c63b1d55',
    history: '84f0c12cb6f12315929bd8d95653fcbb8d408878588eda3b849ab0febff83bf6',
  },
  {
    name: 'adversarial, deterministic',
    training: { epochs: 2 },
    objective: adversarial('deterministic'),
    parameters: 'ba025d0faf689283af8f5cf694da00335ce5ab6e829082c32f20955c4b0f25a1',
    history: '7f4ff083f33179f69877bb47384bfdcebce698d9bef72bdb3a4787951f58e453',
  },
  {
    name: 'adversarial, clean-mask',
    training: { epochs: 2 },
    objective: adversarial('clean-mask'),
    parameters: '1349c46f082c152f3c65ed0ab527e250d846da1878ebcd009b60d9a9692ba116',
    history: 'daa3e7275e97ecc44df84577d5210a79b0926560a9cace92ecf899180e8fc59b',
  },
  {
    name: 'adversarial, independent-mask, stage 2 continue',
    training: { epochs: 2, stage2: { mode: 'continue', maxEpochs: 2 } },
    objective: adversarial('independent-mask'),
    parameters: '06f932c5a536df9aaa9929e932233f0f1156cc6b0fb5b38f0b8e7061a13efaf1',
    history: 'a9c90df5d516873c478adc4071b125066d3253cd612fe05576ae4f4723f5f180',
  },
  {
    name: 'noise uniform alpha-mix',
    training: { epochs: 2 },
    objective: { kind: 'noise', distribution: 'uniform', epsilon: 0.25, mixing: 'alpha-mix', alpha: 0.5 },
    parameters: '47ae852608ea39aea71e68a0cb4dc00238a0bb8ee3a5e059255ce8ad550bcc31',
    history: 'a191b95af430723da2ff975d2ae11229ad9c717ec53896ec04c61dcecd107a78',
  },
  {
    name: 'noise sign replace, no validation',
    training: { epochs: 2, earlyStopping: { metric: 'none' } },
    objective: { kind: 'noise', distribution: 'sign', epsilon: 0.25, mixing: 'replace', alpha: 0.5 },
    parameters: 'af4b4421983142f022c63fdb5f370636bde149c3bb269ae74cab13b3fcc4b550',
    history: 'e53ec6853a8f48e2866b8b0a8150ee5981cf6a4df914098dcf60e8623f385a5c',
  },
];

const trainingConfig = (patch: Record<string, unknown>) =>
  TrainingSchema.parse({ batchSize: 16, momentum: { endEpoch: 3 }, earlyStopping: { patience: 10 }, ...patch });

describe('the training loop reproduces its recorded numbers bit for bit', () => {
  before(useWasm);
  const trainSplit = split('train', 200, 31, 10);
  const validation = split('validation', 60, 32, 10);

  for (const c of CASES) {
    test(c.name, async () => {
      const m = model('maxout', 0.05, 7);
      const before = tf.memory().numTensors;
      const summary = await train({
        model: m,
        train: trainSplit,
        validation,
        config: trainingConfig(c.training),
        seed: 4,
        perturbation: c.objective ? trainingPerturbation(c.objective) : null,
        checkpointDir: tempDir(),
        progress: quiet,
      });
      assert.equal(tf.memory().numTensors, before);
      assert.deepEqual(fingerprint(m, summary), { parameters: c.parameters, history: c.history });
      m.dispose();
    });
  }

  /**
   * test/fixtures/checkpoint-v1: a logistic regression's checkpoint written by the loop before it was restructured
   * (format fgsm-checkpoint/1, interrupted after stage 1 epoch 2 of a run with stage 2 continue). Resuming it must
   * end where the uninterrupted run ends, as runs in progress resume their checkpoints.
   */
  test('a checkpoint written before the restructuring resumes to the recorded result', async () => {
    const binary = (s: Split): Split => ({ ...s, y: s.y.map((label) => label % 2) });
    const dir = tempDir();
    cpSync('test/fixtures/checkpoint-v1', dir, { recursive: true });
    const m = model('logistic', 0.5, 99);
    const summary = await train({
      model: m,
      train: binary(trainSplit),
      validation: binary(validation),
      config: trainingConfig({ epochs: 4, stage2: { mode: 'continue', maxEpochs: 3 } }),
      seed: 4,
      checkpointDir: dir,
      progress: quiet,
    });
    assert.deepEqual(summary.resumedFromEpoch, { stage: 1, epoch: 2 });
    assert.deepEqual(fingerprint(m, { ...summary, resumedFromEpoch: null }), {
      parameters: '29a9219926bcc0cf86a45299a8ee0285c39a591641a8a91bdc6489c8359e8b5c',
      history: 'd912ef4664f15f8e73c84561a2c96a3412d562f9e3c9b7851683a383ac8c5919',
    });
    m.dispose();
  });
});
