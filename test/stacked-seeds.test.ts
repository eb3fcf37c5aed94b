import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { trainingPerturbation } from '../src/attacks/training-perturbations.js';
import { TrainingSchema, type ObjectiveConfig } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import type { Split } from '../src/data/dataset.js';
import type { ModelSpec } from '../src/models/classifier.js';
import { MaxoutNetwork } from '../src/models/maxout.js';
import { train, trainStacked, type TrainingSummary, type TrainOptions } from '../src/train/loop.js';
import { fgsmCli, randomImages, randomLabels, runBySeed, SMALL_MAXOUT, tempDir, TWO_SEEDS_MAXOUT, useWasm } from './helpers.js';

/**
 * Stacked seeds (issue 12 §3): several seeds trained as one network with a leading seed axis must give each seed
 * what it gets trained alone (within float rounding), with its own early stopping, stage 2 and checkpoint.
 */

const quiet = createProgress('quiet');
const SPEC: Extract<ModelSpec, { kind: 'maxout' }> = {
  kind: 'maxout',
  inputSize: 784,
  classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  maxColumnNorm: 1.9365,
  ...SMALL_MAXOUT,
};
const SEEDS = [4, 5, 8];

function split(name: Split['name'], n: number, seed: number): Split {
  const x = randomImages(n, seed);
  const y = randomLabels(n, 10, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < 78; j++) x[i * 784 + y[i]! * 78 + j] = 1;
  return { name, x, y, n };
}
// whole minibatches of 16 in both stages
const trainSplit = split('train', 192, 31);
const validation = split('validation', 64, 32);

const config = (patch: Record<string, unknown>) => TrainingSchema.parse({ batchSize: 16, momentum: { endEpoch: 3 }, ...patch });

function options(
  seed: number,
  training: Record<string, unknown>,
  objective: ObjectiveConfig | null,
  extra: Partial<TrainOptions> = {},
): TrainOptions {
  return {
    model: new MaxoutNetwork(SPEC, 0.05, seed),
    train: trainSplit,
    validation,
    config: config(training),
    seed,
    perturbation: objective ? trainingPerturbation(objective) : null,
    checkpointDir: tempDir(),
    progress: quiet,
    ...extra,
  };
}

/** A summary's numbers: no times, and not which seeds it was stacked with. */
const withoutSeconds = ({ stackedWith: _stackedWith, ...s }: TrainingSummary) => ({
  ...s,
  seconds: 0,
  totalSeconds: 0,
  history: s.history.map(({ seconds: _s, ...rest }) => rest),
});

/** Equal in every field; numbers within `tolerance` (relative), since a batched matMul may round differently. */
function assertClose(actual: unknown, expected: unknown, tolerance: number, path = ''): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${path}: ${actual} vs ${expected}`);
  } else if (expected && typeof expected === 'object') {
    assert.equal(typeof actual, 'object', path);
    assert.deepEqual(Object.keys(actual as object).sort(), Object.keys(expected).sort(), path);
    for (const [key, value] of Object.entries(expected)) assertClose((actual as Record<string, unknown>)[key], value, tolerance, `${path}.${key}`);
  } else assert.equal(actual, expected, path);
}

function maxParameterDifference(a: MaxoutNetwork, b: MaxoutNetwork): number {
  return Math.max(...a.parameters.map((p, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(p.variable, b.parameters[i]!.variable))).dataSync()[0]!)));
}

const CASES: { name: string; training: Record<string, unknown>; objective: ObjectiveConfig | null }[] = [
  {
    name: 'clean, early stopping per seed, stage 2 continue',
    training: { epochs: 8, earlyStopping: { patience: 3 }, stage2: { mode: 'continue', maxEpochs: 3 } },
    objective: null,
  },
  {
    name: 'adversarial (clean-mask), stage 2 retrain',
    training: { epochs: 3, earlyStopping: { patience: 1 }, stage2: { mode: 'retrain' } },
    objective: { kind: 'adversarial', alpha: 0.5, epsilon: 0.25, gradientState: 'clean-mask', gradient: 'standard' },
  },
  {
    name: 'noise sign, alpha-mix, no validation',
    training: { epochs: 2, earlyStopping: { metric: 'none' } },
    objective: { kind: 'noise', distribution: 'sign', epsilon: 0.25, mixing: 'alpha-mix', alpha: 0.5 },
  },
];

describe('stacked seeds', () => {
  before(useWasm);

  test('a network of stacked seeds computes, seed by seed, the logits of each seed’s network', () => {
    const stacked = new MaxoutNetwork(SPEC, 0.05, SEEDS);
    const alone = SEEDS.map((seed) => new MaxoutNetwork(SPEC, 0.05, seed));
    tf.tidy(() => {
      const x = tf.tensor2d(randomImages(3 * 8, 9), [24, 784]);
      const state = { dropoutSeed: [11, 12, 13], gradients: 'both' } as const;
      const ours = stacked.logits(x, state);
      const theirs = tf.concat(alone.map((m, i) => m.logits(tf.slice(x, i * 8, 8), { dropoutSeed: 11 + i, gradients: 'both' })));
      assert.ok(tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]! < 1e-5);
    });
    stacked.dispose();
    for (const m of alone) m.dispose();
  });

  for (const c of CASES) {
    test(`${c.name}: each seed ends as it ends alone`, async () => {
      const alone = SEEDS.map((seed) => options(seed, c.training, c.objective));
      const aloneSummaries: TrainingSummary[] = [];
      for (const o of alone) aloneSummaries.push(await train(o));

      const together = SEEDS.map((seed) => options(seed, c.training, c.objective));
      const stacks: number[][] = [];
      const before = tf.memory().numTensors;
      const summaries = await trainStacked(together, (seeds) => (stacks.push([...seeds]), new MaxoutNetwork(SPEC, 0.05, seeds)));
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
      summaries.forEach((summary, i) => {
        assert.deepEqual(summary.stackedWith, SEEDS);
        assertClose(withoutSeconds(summary), withoutSeconds(aloneSummaries[i]!), 1e-4, `seed ${SEEDS[i]}`);
        assert.ok(maxParameterDifference(together[i]!.model as MaxoutNetwork, alone[i]!.model as MaxoutNetwork) < 1e-4);
      });
      if (c.objective === null) {
        const stage1 = summaries.map((s) => s.epochs);
        assert.ok(new Set(stage1).size > 1, `the seeds stop stage 1 at different epochs (${stage1}), so lanes idle`);
        // a seed whose training ends leaves the stack (a new, smaller one is built); the last one trains on its own network
        const rounds = summaries.map((summary) => summary.history.length);
        const alive = Array.from({ length: Math.max(...rounds) }, (_, r) => rounds.filter((n) => n > r).length);
        const expected = alive.filter((n, r) => n > 1 && n !== alive[r - 1]);
        assert.deepEqual(
          stacks.map((stack) => stack.length),
          expected,
          `rounds per seed ${rounds}`,
        );
        assert.ok(expected.length > 1, `rounds per seed ${rounds}: the stack shrinks at least once`);
      }
      for (const o of [...alone, ...together]) o.model.dispose();
    });
  }

  test('interrupted and resumed, stacked seeds end where uninterrupted ones do', async () => {
    const training = CASES[0]!.training;
    const whole = SEEDS.map((seed) => options(seed, training, null));
    const stackOf = (seeds: readonly number[]) => new MaxoutNetwork(SPEC, 0.05, seeds);
    const expected = await trainStacked(whole, stackOf);

    const controller = new AbortController();
    let epochs = 0;
    const dirs = SEEDS.map(() => tempDir());
    const first = SEEDS.map((seed, i) =>
      options(seed, training, null, { checkpointDir: dirs[i]!, signal: controller.signal, onEpoch: () => ++epochs === 6 && controller.abort() }),
    );
    await assert.rejects(trainStacked(first, stackOf), /interrupted after seed 4 stage \d epoch \d/);
    const resumed = SEEDS.map((seed, i) => options(seed, training, null, { checkpointDir: dirs[i]! }));
    const summaries = await trainStacked(resumed, stackOf);
    summaries.forEach((summary, i) => {
      assert.deepEqual(withoutSeconds({ ...summary, resumedFromEpoch: null }), withoutSeconds(expected[i]!));
      assert.equal(maxParameterDifference(resumed[i]!.model as MaxoutNetwork, whole[i]!.model as MaxoutNetwork), 0);
    });
    for (const m of [...whole, ...first, ...resumed].map((o) => o.model)) m.dispose();
  });
});

describe('fgsm run --stack-seeds', () => {
  test('always: the seeds train as one stacked network, each its own complete run, with the numbers of --stack-seeds never', () => {
    const dir = tempDir();
    const config = join(dir, 'two-seeds.yaml');
    writeFileSync(config, TWO_SEEDS_MAXOUT);
    const run = (mode: string) => runBySeed(config, join(dir, mode), ['--stack-seeds', mode]);
    const stacked = run('always');
    const alone = run('never');
    assert.match(stacked.output, /seeds 3, 4 trained together as one stacked network on wasm/);
    assert.deepEqual(stacked.bySeed.get(3)!.result.metrics.training.stackedWith, [3, 4]);
    assert.equal(alone.bySeed.get(3)!.result.metrics.training.stackedWith, undefined);
    for (const seed of [3, 4]) {
      const [a, b] = [stacked.bySeed.get(seed)!, alone.bySeed.get(seed)!];
      assert.ok(a && b, `seed ${seed} has a complete run both ways`);
      const difference = Math.max(...a.weights.map((w, i) => Math.abs(w - b.weights[i]!)));
      assert.ok(difference < 1e-4, `seed ${seed}: parameters differ by ${difference}`);
      const [x, y] = [a.result.metrics, b.result.metrics];
      assert.deepEqual(
        [x.training.epochs, x.training.bestEpoch, x.training.stage2?.epochs],
        [y.training.epochs, y.training.bestEpoch, y.training.stage2?.epochs],
      );
      assert.ok(
        Math.abs(x.clean.error - y.clean.error) <= 1 / 300 + 1e-9 && Math.abs(x.fgsm['0.25']!.error - y.fgsm['0.25']!.error) <= 1 / 300 + 1e-9,
      );
    }
  });

  test('always, on a model that cannot stack: exit 2 naming the reason', () => {
    const dir = tempDir();
    const config = join(dir, 'two-seeds.yaml');
    writeFileSync(config, TWO_SEEDS_MAXOUT.replace('limit: { train: 1000,', 'limit: { train: 950,'));
    const out = fgsmCli(['run', config, '--stack-seeds', 'always', '--results-dir', join(dir, 'results')]);
    assert.equal(out.status, 2);
    assert.match(out.stderr, /--stack-seeds always, but a split of 950 examples is not whole minibatches of 100/);
  });
});
