import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { AttackSchema } from '../src/config/schema.js';
import { createProgress } from '../src/core/progress.js';
import type { Split } from '../src/data/dataset.js';
import { transferMatrices } from '../src/eval/transfer.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier } from '../src/models/classifier.js';
import { assignParameters } from '../src/models/weights-io.js';
import { realDataDir, tempDir, useWasm, tinySoftmaxYaml } from './helpers.js';

const BIN = join(process.cwd(), 'bin', 'fgsm.js');
const quiet = createProgress('quiet');

function fgsm(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0', ...env } });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

/** A 3-vs-7 logistic regression that looks at one pixel: P(7 | x) = σ(x[pixel] − 0.5). */
function onePixelModel(pixel: number): Classifier {
  const model = buildModel({ kind: 'logistic', inputSize: 784, classes: [3, 7], maxColumnNorm: null }, 0, 1);
  const w = new Float32Array(784);
  w[pixel] = 1;
  const values = { W: tf.tensor2d(w, [784, 1]), b: tf.tensor1d([-0.5]) };
  assignParameters(model, values, 'test');
  tf.dispose(Object.values(values));
  return model;
}

describe('transfer', () => {
  before(useWasm);

  test('the matrix of two one-pixel models on two examples is the hand-worked one', async () => {
    // example 1: a 7 (y = +1), pixels 0 and 1 at 0.7: both models right. Example 2: a 3 (y = −1), pixel 0 at 0.3,
    // pixel 1 at 0.9: A right, B wrong. FGSM on logistic regression: x̃ = x − ε·y·sign(w), here ε = .25 on the
    // model's own pixel. Made on A: ex. 1 x0 = .45 (A wrong, B right), ex. 2 x0 = .55 (A wrong, B still wrong):
    // A 100%, B 50%. Made on B: ex. 1 x1 = .45 (B wrong, A right), ex. 2 x1 = 1.15 (B wrong, A right): A 0%, B 100%.
    const x = new Float32Array(2 * 784);
    x.set([0.7, 0.7], 0);
    x.set([0.3, 0.9], 784);
    const test: Split = { name: 'test', x, y: Int32Array.from([1, 0]), n: 2 };
    const a = onePixelModel(0);
    const b = onePixelModel(1);
    const before = tf.memory().numTensors;
    const [matrix] = await transferMatrices(
      [
        { name: 'a', model: a },
        { name: 'b', model: b },
      ],
      test,
      AttackSchema.parse({ epsilons: [0.25] }),
      quiet,
    );
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    assert.deepEqual(
      matrix!.cells.map((row) => row.map((cell) => cell.error)),
      [
        [1, 0.5],
        [0, 1],
      ],
    );
    a.dispose();
    b.dispose();
  });

  test('refuses models of different tasks', async () => {
    const a = onePixelModel(0);
    const softmax = buildModel({ kind: 'softmax', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: null }, 0.01, 1);
    const test: Split = { name: 'test', x: new Float32Array(784), y: Int32Array.from([0]), n: 1 };
    await assert.rejects(
      () =>
        transferMatrices(
          [
            { name: 'a', model: a },
            { name: 's', model: softmax },
          ],
          test,
          AttackSchema.parse({}),
          quiet,
        ),
      /transfer: s classifies \[0,1,2,3,4,5,6,7,8,9\].*a classifies \[3,7\]/,
    );
    a.dispose();
    softmax.dispose();
  });

  test('fgsm transfer: refuses a missing or unfinished run and other data, uses the newest complete one, records it', () => {
    const dir = tempDir();
    const small = (name: string, seed: number) => tinySoftmaxYaml(name, `seed: ${seed}`);
    writeFileSync(join(dir, 'one.yaml'), small('one', 1));
    writeFileSync(join(dir, 'two.yaml'), small('two', 2));
    writeFileSync(
      join(dir, 'pair.yaml'),
      `kind: transfer
name: pair
backend: wasm
uses:
  first: one.yaml
  second: { config: two.yaml }
attack: { epsilons: [0.1, 0.25] }
`,
    );
    const results = join(dir, 'results');
    const env = { FGSM_DATA_DIR: realDataDir() };
    const missing = fgsm(['transfer', join(dir, 'one.yaml'), join(dir, 'two.yaml'), '--results-dir', results], env);
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(missing.stderr, /no complete run of one \(config hash \w+\) on the MNIST files/);
    assert.match(missing.stderr, /--train-missing/);

    const trained = fgsm(['transfer', join(dir, 'one.yaml'), join(dir, 'two.yaml'), '--results-dir', results, '--train-missing', '-q'], env);
    assert.equal(trained.status, 0, trained.stderr);
    assert.match(trained.stdout, /made on ↓ \/ scored by → +\(ε=0\.25\)/);
    const first = JSON.parse(readFileSync(join(results, 'transfer', readdirSync(join(results, 'transfer'))[0]!, 'result.json'), 'utf8'));
    assert.deepEqual(
      first.uses.map((u: { name: string; experiment: string }) => [u.name, u.experiment]),
      [
        ['one', 'one'],
        ['two', 'two'],
      ],
    );
    assert.match(first.uses[0].weightsSha256, /^[0-9a-f]{64}$/);
    const m = first.metrics.matrices[0];
    assert.ok(m.cells[0][0].error > m.cells[0][1].error, 'a model is fooled most by its own examples');
    assert.equal(first.metrics.transfer.oneToTwo.error, m.cells[0][1].error);
    // the other softmax gradient, measured beside the configured one: the same matrix shape, in the record and the CSV
    const other = first.metrics.otherGradient;
    assert.equal(other.gradient, 'stable');
    assert.deepEqual(other.matrices[0].names, m.names);
    assert.equal(other.transfer.oneToTwo.error, other.matrices[0].cells[0][1].error);
    const csv = readFileSync(join(results, 'transfer', readdirSync(join(results, 'transfer'))[0]!, 'transfer.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv[0], 'gradient,epsilon,made_on,scored_by,error,mean_confidence_on_mistakes,n');
    assert.deepEqual(
      csv.slice(1).map((line) => line.split(',').slice(0, 4).join(',')),
      ['standard', 'stable'].flatMap((g) => ['one,one', 'one,two', 'two,one', 'two,two'].map((cell) => `${g},0.25,${cell}`)),
    );

    // a YAML transfer over the same runs: the same matrix, found without training
    const yaml = fgsm(['run', join(dir, 'pair.yaml'), '--results-dir', results, '-q'], env);
    assert.equal(yaml.status, 0, yaml.stderr);
    const pair = JSON.parse(readFileSync(join(results, 'pair', readdirSync(join(results, 'pair'))[0]!, 'result.json'), 'utf8'));
    assert.deepEqual(pair.metrics.matrices[1].cells, m.cells);
    assert.deepEqual(
      pair.metrics.matrices.map((x: { epsilon: number }) => x.epsilon),
      [0.1, 0.25],
    );

    // --set reaches the command line's transfer as it would a YAML's; a bad value names the --set
    const files = [join(dir, 'one.yaml'), join(dir, 'two.yaml')];
    const stable = fgsm(
      ['transfer', ...files, '--results-dir', results, '--set', 'attack.gradient=stable', '--set', 'attack.clip=[0, 1]', '-q'],
      env,
    );
    assert.equal(stable.status, 0, stable.stderr);
    const newest = readdirSync(join(results, 'transfer')).sort().at(-1)!;
    const overridden = JSON.parse(readFileSync(join(results, 'transfer', newest, 'result.json'), 'utf8'));
    assert.equal(overridden.config.attack.gradient, 'stable');
    assert.deepEqual(overridden.config.attack.clip, [0, 1]);
    assert.deepEqual(overridden.overrides, ['attack.gradient=stable', 'attack.clip=[0, 1]']);
    const bad = fgsm(['transfer', ...files, '--results-dir', results, '--set', 'attack.gradient=exact'], env);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /--set attack\.gradient=exact: attack\.gradient: .*expected one of "standard"\|"softmax-minus-onehot"\|"exp-log-softmax-minus-onehot"\|"stable"; found "exact"/,
    );

    // the same experiments on the embedded subset: their runs are on other data, so there is nothing to use
    const subset = fgsm(['run', join(dir, 'pair.yaml'), '--results-dir', results, '-q'], {
      FGSM_DATA_DIR: '',
      FGSM_CACHE_DIR: join(dir, 'empty'),
      FGSM_MNIST_MIRRORS: 'http://127.0.0.1:9/',
    });
    assert.equal(subset.status, 2, subset.stderr);
    assert.match(subset.stderr, /first: no complete run of one .* on the embedded 10k subset/);
  });
});
