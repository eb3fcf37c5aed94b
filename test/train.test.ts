import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { TrainingSchema, type TrainingConfig } from '../src/config/schema.js';
import { FgsmError, InterruptedError } from '../src/core/errors.js';
import { createProgress } from '../src/core/progress.js';
import { stream } from '../src/core/rng.js';
import type { Split } from '../src/data/dataset.js';
import { applyMaxColumnNorm } from '../src/models/dense.js';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import type { TrainingPerturbation } from '../src/train/objective.js';
import { train, type EpochRecord, type TrainingState, type TrainingSummary } from '../src/train/loop.js';
import { learningRateAt, momentumAt } from '../src/train/schedule.js';
import { MomentumSgd } from '../src/train/sgd.js';
import { model, randomImages, randomLabels, tempDir, useWasm } from './helpers.js';

const quiet = createProgress('quiet');

const config = (patch: Record<string, unknown> = {}): TrainingConfig =>
  TrainingSchema.parse({ epochs: 4, batchSize: 16, momentum: { endEpoch: 3 }, earlyStopping: { patience: 10 }, ...patch });

function split(name: Split['name'], n: number, seed: number): Split {
  // learnable: the label is decided by which tenth of the image is brightest
  const x = randomImages(n, seed);
  const y = randomLabels(n, 10, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < 78; j++) x[i * 784 + y[i]! * 78 + j] = 1;
  return { name, x, y, n };
}

const weightsOf = (m: ReturnType<typeof model>) => m.parameters.map((p) => Array.from(p.variable.dataSync()));

describe('schedules and the optimiser', () => {
  before(useWasm);

  test('learning rate decays per update with a floor; momentum rises linearly over epochs', () => {
    const lr = { initial: 0.1, decay: 1.000004, floor: 1e-6 };
    assert.equal(learningRateAt(0, lr), 0.1);
    assert.ok(Math.abs(learningRateAt(100000, lr) - 0.1 / Math.pow(1.000004, 100000)) < 1e-12);
    assert.equal(learningRateAt(1e9, lr), 1e-6);
    const mu = { initial: 0.5, final: 0.7, startEpoch: 1, endEpoch: 250 };
    assert.equal(momentumAt(1, mu), 0.5);
    assert.ok(Math.abs(momentumAt(125.5, mu) - 0.6) < 1e-12);
    assert.equal(momentumAt(300, mu), 0.7);
  });

  test('classical momentum: v ← μv − ηg; θ ← θ + v, weight decay on weights only', () => {
    const w = tf.variable(tf.tensor1d([1, 2]));
    const b = tf.variable(tf.tensor1d([1]));
    const sgd = new MomentumSgd(
      [
        { name: 'W', variable: w, role: 'weight', layer: 1 },
        { name: 'b', variable: b, role: 'bias', layer: 1 },
      ],
      { weightDecay: 0.5, l1FirstLayer: 0 },
    );
    const grads = { [w.name]: tf.tensor1d([1, -1]), [b.name]: tf.tensor1d([2]) };
    sgd.apply(grads, 0.1, 0.9); // g_w = [1, -1] + 0.5·[1, 2] = [1.5, 0]; v = −0.1·g
    assert.deepEqual(
      Array.from(w.dataSync()).map((v) => +v.toFixed(6)),
      [0.85, 2],
    );
    assert.deepEqual(
      Array.from(b.dataSync()).map((v) => +v.toFixed(6)),
      [0.8],
    );
    sgd.apply(grads, 0.1, 0.9); // g_w = [1, -1] + 0.5·[0.85, 2] = [1.425, 0]; v = 0.9·[−0.15, 0] − 0.1·g
    assert.deepEqual(
      Array.from(w.dataSync()).map((v) => +v.toFixed(6)),
      [+(0.85 - 0.135 - 0.1425).toFixed(6), 2],
    );
    tf.dispose([w, b, ...Object.values(grads)]);
    sgd.dispose();
  });

  test('max column norm rescales only the columns above the limit', () => {
    const w = tf.variable(
      tf.tensor2d([
        [3, 0.3],
        [4, 0.4],
      ]),
    ); // column norms 5 and 0.5
    applyMaxColumnNorm(w, 2);
    const [a, b, c, d] = Array.from(w.dataSync());
    assert.ok(Math.abs(a! - 1.2) < 1e-6 && Math.abs(c! - 1.6) < 1e-6);
    assert.ok(Math.abs(b! - 0.3) < 1e-7 && Math.abs(d! - 0.4) < 1e-7);
    w.dispose();
  });
});

describe('training loop', () => {
  before(useWasm);
  const trainSplit = split('train', 400, 11);
  const validation = split('validation', 100, 12);

  test('learns, keeps the best epoch, and leaks no tensor', async () => {
    const m = model('softmax', 0.005);
    const tensorsBefore = tf.memory().numTensors;
    const summary = await train({ model: m, train: trainSplit, validation, config: config(), seed: 1, checkpointDir: null, progress: quiet });
    assert.equal(tf.memory().numTensors, tensorsBefore);
    assert.equal(summary.epochs, 4);
    assert.equal(summary.steps, 4 * 25);
    assert.ok(summary.history[3]!.trainLoss < summary.history[0]!.trainLoss);
    assert.ok(summary.bestValidationError! < 0.5, `validation error ${summary.bestValidationError}`);
    assert.equal(summary.chosenEpoch, summary.bestEpoch);
    m.dispose();
  });

  test('early stopping stops after `patience` epochs without a new best', async () => {
    const m = model('softmax', 0.005);
    const summary = await train({
      model: m,
      train: trainSplit,
      validation,
      config: config({
        epochs: 50,
        learningRate: { initial: 1e-30, decay: 1, floor: 0 },
        earlyStopping: { metric: 'validation-error', patience: 2, keepBest: true, epsilon: 0.25 },
      }),
      seed: 1,
      checkpointDir: null,
      progress: quiet,
    });
    // with η = 1e-30 nothing changes: epoch 1 is the best, epochs 2 and 3 are not better
    assert.equal(summary.stoppedBy, 'early-stopping');
    assert.equal(summary.epochs, 3);
    assert.equal(summary.bestEpoch, 1);
    m.dispose();
  });

  /**
   * Trains uninterrupted, then again interrupted where `stopAt` says (`during`: part-way through the next epoch,
   * after its 21st minibatch) and resumed into a model with other starting weights (everything must come from the
   * checkpoint); both must end identical.
   */
  async function assertResumeEqualsUninterrupted(
    kind: 'softmax' | 'maxout',
    trainingConfig: TrainingConfig,
    stopAt: (record: EpochRecord, state: TrainingState) => boolean,
    perturbation: TrainingPerturbation | null = null,
    when: 'after' | 'during' = 'after',
  ): Promise<TrainingSummary> {
    const common = { train: trainSplit, validation, config: trainingConfig, seed: 5, perturbation, progress: quiet };
    const uninterrupted = model(kind, 0.005, 9);
    const reference = await train({ ...common, model: uninterrupted, checkpointDir: tempDir() });

    const dir = tempDir();
    const first = model(kind, 0.005, 9);
    const controller = new AbortController();
    let armed = false;
    // the progress bar moves after minibatches 1, 21 and 25 of 25: abort after the 21st
    const progress = { ...quiet, update: (done: number) => armed && done > 1 && controller.abort() };
    await assert.rejects(
      train({
        ...common,
        model: first,
        checkpointDir: dir,
        signal: controller.signal,
        progress,
        onEpoch: (record, state) => {
          if (!stopAt(record, state)) return;
          if (when === 'after') controller.abort();
          else armed = true;
        },
      }),
      when === 'after' ? InterruptedError : /^InterruptedError: interrupted during stage \d epoch \d \(kept: up to stage \d epoch \d\)/,
    );
    first.dispose();
    const second = model(kind, 0.5, 1234);
    const resumed = await train({ ...common, model: second, checkpointDir: dir });
    assert.ok(resumed.resumedFromEpoch !== null);
    assert.deepEqual(weightsOf(second), weightsOf(uninterrupted));
    const trace = (summary: TrainingSummary) => summary.history.map((r) => [r.stage, r.epoch, r.trainLoss, r.validationError, r.heldOutLoss]);
    assert.deepEqual(trace(resumed), trace(reference));
    uninterrupted.dispose();
    second.dispose();
    return resumed;
  }

  test('an interrupted run resumed from its checkpoint ends with the same parameters as an uninterrupted one', async () => {
    const resumed = await assertResumeEqualsUninterrupted('softmax', config(), (r) => r.epoch === 2);
    assert.deepEqual(resumed.resumedFromEpoch, { stage: 1, epoch: 2 });
  });

  test('interrupted part-way through an epoch, the run keeps the epochs before it and resumes to the uninterrupted result', async () => {
    const resumed = await assertResumeEqualsUninterrupted('softmax', config(), (r) => r.epoch === 2, null, 'during');
    assert.deepEqual(resumed.resumedFromEpoch, { stage: 1, epoch: 2 });
  });

  test('resume is exact for maxout with dropout and adversarial training, interrupted as stage 1 ends (continue)', async () => {
    const adversarial = trainingPerturbation({
      kind: 'adversarial',
      alpha: 0.5,
      epsilon: 0.25,
      gradientState: 'independent-mask',
      gradient: 'standard',
    });
    const resumed = await assertResumeEqualsUninterrupted(
      'maxout',
      config({ epochs: 3, stage2: { mode: 'continue', maxEpochs: 3 } }),
      (r, state) => r.stage === 1 && state.stoppedBy !== null,
      adversarial,
    );
    assert.deepEqual(resumed.resumedFromEpoch, { stage: 1, epoch: 3 });
    assert.ok(resumed.stage2 !== null && resumed.stage2.epochs >= 1);
  });

  test('resume is exact for maxout with noise training, interrupted in stage 2 (retrain)', async () => {
    const noise = trainingPerturbation({ kind: 'noise', distribution: 'uniform', epsilon: 0.25, mixing: 'alpha-mix', alpha: 0.5 });
    const resumed = await assertResumeEqualsUninterrupted(
      'maxout',
      config({ epochs: 3, learningRate: { initial: 0.5 }, stage2: { mode: 'retrain' } }),
      (r) => r.stage === 2 && r.epoch === 1,
      noise,
    );
    assert.deepEqual(resumed.resumedFromEpoch, { stage: 2, epoch: 1 });
    assert.ok(resumed.stage2!.epochs >= 2, `stage 2 ran ${resumed.stage2!.epochs} epochs`);
  });

  describe('the last two checkpoints are kept: a damaged one costs an epoch, not the run', () => {
    const epochs = config();
    const common = { train: trainSplit, validation, config: epochs, seed: 5, progress: quiet };
    /** A run stopped after epoch 3 of 4 (its checkpoints after epochs 2 and 3), and the uninterrupted run's weights. */
    async function stoppedAfterEpoch3(): Promise<{ dir: string; expected: number[][] }> {
      const uninterrupted = model('softmax', 0.005, 9);
      await train({ ...common, model: uninterrupted, checkpointDir: null });
      const dir = tempDir();
      const first = model('softmax', 0.005, 9);
      const controller = new AbortController();
      const onEpoch = (record: EpochRecord) => record.epoch === 3 && controller.abort();
      await assert.rejects(train({ ...common, model: first, checkpointDir: dir, signal: controller.signal, onEpoch }), InterruptedError);
      const expected = weightsOf(uninterrupted);
      tf.dispose([uninterrupted, first].flatMap((m) => m.parameters.map((p) => p.variable)));
      return { dir, expected };
    }
    const damages: Record<string, (dir: string) => void> = {
      'a truncated checkpoint.json': (dir) => truncateSync(join(dir, 'checkpoint.json'), 100),
      'an empty checkpoint.json': (dir) => writeFileSync(join(dir, 'checkpoint.json'), ''),
      'garbage in its tensors file': (dir) => writeFileSync(join(dir, 'epoch-000003.bin'), randomBytes(statSync(join(dir, 'epoch-000003.bin')).size)),
      'its tensors file gone': (dir) => rmSync(join(dir, 'epoch-000003.bin')),
    };

    test('a damaged latest checkpoint: the run resumes from the one before, says so, and ends as the uninterrupted run', async () => {
      const { dir, expected } = await stoppedAfterEpoch3();
      assert.deepEqual(readdirSync(dir).sort(), ['checkpoint.json', 'checkpoint.previous.json', 'epoch-000002.bin', 'epoch-000003.bin']);
      for (const [damage, apply] of Object.entries(damages)) {
        const copy = tempDir();
        cpSync(dir, copy, { recursive: true });
        apply(copy);
        const lines: string[] = [];
        const resumed = model('softmax', 0.5, 1234);
        const summary = await train({ ...common, model: resumed, checkpointDir: copy, progress: { ...quiet, line: (l) => lines.push(l) } });
        assert.deepEqual(summary.resumedFromEpoch, { stage: 1, epoch: 2 }, damage);
        assert.match(
          lines.join('\n'),
          new RegExp(
            `^${join(copy, 'checkpoint.json')} is damaged \\(.+\\); resuming from the checkpoint before it, ${join(copy, 'checkpoint.previous.json')}$`,
            'm',
          ),
          damage,
        );
        assert.deepEqual(weightsOf(resumed), expected, damage);
        resumed.dispose();
        // the next checkpoint replaced the damaged one; the one resumed from is kept as the one before it
        assert.deepEqual(
          readdirSync(copy)
            .filter((f) => f.endsWith('.bin'))
            .sort(),
          ['epoch-000003.bin', 'epoch-000004.bin'],
          damage,
        );
      }
    });

    test('both checkpoints damaged: refused, naming both and suggesting --fresh, with nothing written', async () => {
      const { dir } = await stoppedAfterEpoch3();
      truncateSync(join(dir, 'checkpoint.json'), 10);
      writeFileSync(join(dir, 'checkpoint.previous.json'), '{"format": "fgsm-checkpoint/1"}');
      const before = readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs]);
      const m = model('softmax', 0.005, 9);
      await assert.rejects(train({ ...common, model: m, checkpointDir: dir }), (error: unknown) => {
        assert.ok(error instanceof FgsmError);
        assert.match(
          error.message,
          new RegExp(`${join(dir, 'checkpoint.json')}: not valid JSON .*; ${join(dir, 'checkpoint.previous.json')}: not a complete checkpoint`),
        );
        assert.match(error.hint!, /--fresh/);
        return true;
      });
      assert.deepEqual(
        readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs]),
        before,
      );
      m.dispose();
    });
  });

  test('a diverging loss stops with a message naming the epoch and step, and leaks no tensor', async () => {
    const m = model('softmax', 0.005);
    // a NaN pixel in the 8th minibatch of epoch 1: the loss is read only at minibatches 1 and 21, yet the message
    // names minibatch 8
    const victim = stream(1, 'shuffle', 1).permutation(trainSplit.n)[7 * 16 + 3]!;
    const bad = { ...trainSplit, x: trainSplit.x.map((v, i) => (i === victim * 784 + 5 ? Number.NaN : v)) };
    const tensorsBefore = tf.memory().numTensors;
    await assert.rejects(
      train({ model: m, train: bad, validation, config: config(), seed: 1, checkpointDir: null, progress: quiet }),
      /training diverged: the loss is NaN at stage 1 epoch 1, step 8 \(minibatch 8 of 25\)/,
    );
    assert.equal(tf.memory().numTensors, tensorsBefore);
    m.dispose();
  });
});

describe('the two stages of the pylearn2 recipe', () => {
  before(useWasm);
  const trainSplit = split('train', 300, 21);
  const validation = split('validation', 100, 22);
  const run = (m: ReturnType<typeof model>, patch: Record<string, unknown>) =>
    train({ model: m, train: trainSplit, validation, config: config(patch), seed: 2, checkpointDir: null, progress: quiet });

  test('continue: from the best stage-1 parameters on train + validation, η and μ where the best epoch left them, until the held-out loss reaches the best training loss', async () => {
    const m = model('maxout', 0.05);
    const summary = await run(m, { epochs: 6, earlyStopping: { patience: 2 }, stage2: { mode: 'continue', maxEpochs: 30 } });
    const stage2 = summary.history.filter((r) => r.stage === 2);
    assert.equal(summary.stage2?.mode, 'continue');
    assert.equal(stage2.length, summary.stage2!.epochs);
    assert.ok(summary.stage2!.targetLoss! > 0);
    const best = summary.history.find((r) => r.stage === 1 && r.epoch === summary.bestEpoch)!;
    // η continues the decay from the best epoch's last update; μ continues its ramp from the best epoch
    const stepsPerEpoch = Math.ceil((trainSplit.n + validation.n) / 16);
    const bestStep = summary.bestEpoch! * Math.ceil(trainSplit.n / 16);
    assert.ok(Math.abs(stage2[0]!.learningRate - learningRateAt(bestStep + stepsPerEpoch - 1, config().learningRate)) < 1e-12);
    assert.ok(stage2[0]!.momentum >= best.momentum);
    const last = stage2.at(-1)!;
    if (summary.stage2!.stoppedBy === 'target-loss') assert.ok(last.heldOutLoss! <= summary.stage2!.targetLoss!);
    else assert.equal(summary.stage2!.epochs, 30);
    for (const r of stage2.slice(0, -1)) assert.ok(r.heldOutLoss! > summary.stage2!.targetLoss!, 'stopped at the first epoch reaching the target');
    m.dispose();
  });

  test('retrain: from scratch on train + validation for the number of epochs stage 1 chose', async () => {
    const m = model('maxout', 0.05);
    const summary = await run(m, { epochs: 5, earlyStopping: { patience: 2 }, stage2: { mode: 'retrain' } });
    const stage2 = summary.history.filter((r) => r.stage === 2);
    assert.equal(stage2.length, summary.bestEpoch);
    assert.equal(summary.stage2?.stoppedBy, 'chosen-epochs');
    // a fresh start: stage 2's first learning rate is the schedule's first
    assert.equal(stage2[0]!.learningRate, learningRateAt(Math.ceil((trainSplit.n + validation.n) / 16) - 1, config().learningRate));
    m.dispose();
  });

  test('early stopping on adversarial validation error calls the attack every epoch and selects by it', async () => {
    const m = model('maxout', 0.05);
    const seen: number[] = [];
    const errors = [0.9, 0.5, 0.7, 0.8];
    const summary = await train({
      model: m,
      train: trainSplit,
      validation,
      config: config({ epochs: 10, earlyStopping: { metric: 'adversarial-validation-error', patience: 2 } }),
      seed: 2,
      checkpointDir: null,
      progress: quiet,
      adversarialError: async (_model, split) => {
        seen.push(split.n);
        return errors[seen.length - 1]!;
      },
    });
    assert.deepEqual(seen, [100, 100, 100, 100]);
    assert.equal(summary.bestEpoch, 2);
    assert.equal(summary.bestValidationError, 0.5);
    assert.deepEqual(
      summary.history.map((r) => r.adversarialValidationError),
      errors,
    );
    m.dispose();
  });

  test('maxout training with J̃ learns and leaks no tensor', async () => {
    const m = model('maxout', 0.05);
    const before = tf.memory().numTensors;
    const adversarial = trainingPerturbation({ kind: 'adversarial', alpha: 0.5, epsilon: 0.1, gradientState: 'deterministic', gradient: 'standard' });
    const summary = await train({
      model: m,
      train: trainSplit,
      validation,
      config: config({ epochs: 6 }),
      seed: 2,
      perturbation: adversarial,
      checkpointDir: null,
      progress: quiet,
    });
    assert.equal(tf.memory().numTensors, before);
    assert.ok(summary.history.at(-1)!.trainLoss < summary.history[0]!.trainLoss);
    m.dispose();
  });
});
