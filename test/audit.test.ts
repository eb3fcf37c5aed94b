import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { makeSplits, type Split } from '../src/data/dataset.js';
import { resolveMnist } from '../src/data/source.js';
import { createProgress } from '../src/core/progress.js';
import { labelLeakProbe } from '../src/eval/label-leak.js';
import { maskingChecks } from '../src/eval/masking.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier } from '../src/models/classifier.js';
import { assignParameters, saveModel } from '../src/models/weights-io.js';
import { attackMeasures, checksOf } from '../src/pipeline/audit.js';
import type { AttackFigure, AuditRecord } from '../src/results/audit-record.js';
import { staleGradientFigures, type ResultRecord } from '../src/results/record.js';
import { fgsmCli, realDataDir, SMALL_MAXOUT, tempDir, tinySoftmaxYaml, useWasm } from './helpers.js';

const quiet = createProgress('quiet');

/** A 3-vs-7 logistic regression that looks at one pixel: P(7 | x) = σ(x[0] − 0.5). */
function onePixelModel(): Classifier {
  const model = buildModel({ kind: 'logistic', inputSize: 784, classes: [3, 7], maxColumnNorm: null }, 0, 1);
  const w = new Float32Array(784);
  w[0] = 1;
  const values = { W: tf.tensor2d(w, [784, 1]), b: tf.tensor1d([-0.5]) };
  assignParameters(model, values, 'test');
  tf.dispose(Object.values(values));
  return model;
}

/**
 * Softmax regression on class templates: W's column k is `scale` × (the mean image of digit k − the mean image) over
 * the first 2,000 training digits. At scale 1 an ordinary linear classifier; at scale 10⁴ its logits lie hundreds
 * apart, every softmax rounds to one-hot in float32 and ∇ₓJ is exactly 0 with either gradient: masked.
 */
function templateModel(train: Split, scale: number): Classifier {
  const model = buildModel({ kind: 'softmax', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: null }, 0, 1);
  const sums = new Float64Array(10 * 784);
  const counts = new Float64Array(10);
  const all = new Float64Array(784);
  const n = Math.min(train.n, 2000);
  for (let i = 0; i < n; i++) {
    const digit = train.y[i]!;
    counts[digit]!++;
    for (let j = 0; j < 784; j++) {
      sums[digit * 784 + j]! += train.x[i * 784 + j]!;
      all[j]! += train.x[i * 784 + j]! / n;
    }
  }
  const w = new Float32Array(784 * 10);
  for (let j = 0; j < 784; j++) for (let k = 0; k < 10; k++) w[j * 10 + k] = scale * (sums[k * 784 + j]! / counts[k]! - all[j]!);
  const values = { W: tf.tensor2d(w, [784, 10]), b: tf.zeros([10]) };
  assignParameters(model, values, 'test');
  tf.dispose(Object.values(values));
  return model;
}

describe('audit', () => {
  before(useWasm);

  test('label-leaking probe: hand-worked on a one-pixel model; true and predicted labels differ only where the model errs', async () => {
    // a 7 at x0 = .7 (right) and a 3 at x0 = .6 (wrong: it reads 7). FGSM ε = .25, x̃ = x − ε·y·sign(w) with y = ±1.
    // True labels: the 7 goes to .45 (reads 3), the 3 to .85 (reads 7): 2 of 2 wrong. Predicted labels: the 7 the
    // same; the 3 is taken for a 7 and pushed away from 7, to .35: it reads 3, right. 1 of 2 wrong.
    const x = new Float32Array(2 * 784);
    x[0] = 0.7;
    x[784] = 0.6;
    const test: Split = { name: 'test', x, y: Int32Array.from([1, 0]), n: 2 };
    const model = onePixelModel();
    const before = tf.memory().numTensors;
    const leak = await labelLeakProbe(model, test, { epsilons: [0.25], gradient: 'standard', clip: null, batchSize: 1 });
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    assert.deepEqual(leak, [{ epsilon: 0.25, trueLabels: 1, predictedLabels: 0.5, leaks: false }]);
    // where the model is right on every example the two are the same attack
    const right: Split = { name: 'test', x: x.slice(0, 784), y: Int32Array.from([1]), n: 1 };
    const same = await labelLeakProbe(model, right, { epsilons: [0.1, 0.25], gradient: 'standard', clip: [0, 1], batchSize: 1 });
    for (const l of same) assert.equal(l.trueLabels, l.predictedLabels);
    model.dispose();
  });

  test('masking checks: each one fails on figures that break it and holds on ones that do not', () => {
    const ordinary = maskingChecks({
      bounded: [
        { epsilon: 0.1, singleStep: 0.3, iterative: 0.5, singleStepStable: 0.4, whiteBox: 0.5, transfer: 0.1 },
        { epsilon: 0.25, singleStep: 0.8, iterative: 0.99, singleStepStable: 0.9, whiteBox: 0.99, transfer: 0.4 },
      ],
      unbounded: { epsilon: 1, error: 1 },
    });
    assert.deepEqual(
      ordinary.map((c) => c.holds),
      [true, true, true, true, true],
    );
    const masked = maskingChecks({
      bounded: [
        { epsilon: 0.1, singleStep: 0.3, iterative: 0.2, singleStepStable: 0.3, whiteBox: 0.3, transfer: 0.4 },
        { epsilon: 0.25, singleStep: 0.3, iterative: 0.2, singleStepStable: 0.3, whiteBox: 0.3, transfer: 0.5 },
      ],
      unbounded: { epsilon: 1, error: 0.3 },
    });
    assert.deepEqual(
      masked.map((c) => [c.id, c.holds]),
      [
        ['iterative-at-least-single-step', false],
        ['iterative-at-least-stable-single-step', false],
        ['rising-with-epsilon', false],
        ['near-total-unbounded', false],
        ['white-box-at-least-transfer', false],
      ],
    );
  });

  test('the masking checks flag a model whose softmax saturates (∇ₓJ = 0) and pass the same model unsaturated', async () => {
    const raw = await resolveMnist({ source: 'dir', explicit: { dir: realDataDir(), origin: 'test' }, cache: tempDir(), progress: quiet });
    const splits = makeSplits(raw, {
      source: 'dir',
      dir: null,
      train: 'train',
      validation: false,
      digits: null,
      limit: { train: 2000, validation: null, test: 200 },
    });
    const figuresOf = async (model: Classifier) => {
      const attacks: Record<string, AttackFigure[]> = {};
      for (const [key, { figures }] of Object.entries(attackMeasures(model, splits.test, 100))) attacks[key] = await figures();
      return attacks;
    };
    const ordinary = templateModel(splits.train, 1);
    const masked = templateModel(splits.train, 1e4);
    const before = tf.memory().numTensors;
    const ordinaryAttacks = await figuresOf(ordinary);
    const maskedAttacks = await figuresOf(masked);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    // the masked model: ∇ₓJ is exactly zero on every example it gets right (p_y = 1, every other p_k = 0), so FGSM
    // changes nothing there however large ε is, and its error stays the clean error
    const flat = maskedAttacks['fgsm-standard']!;
    assert.deepEqual(
      flat.map((f) => f.error),
      [flat[0]!.error, flat[0]!.error, flat[0]!.error],
    );
    assert.equal(flat[0]!.zeroGradient, Math.round(200 * (1 - flat[0]!.error)));
    const holds = (attacks: typeof ordinaryAttacks) => Object.fromEntries(checksOf({ attacks, transfer: null }).map((c) => [c.id, c.holds]));
    assert.deepEqual(holds(ordinaryAttacks), {
      'iterative-at-least-single-step': true,
      'iterative-at-least-stable-single-step': true,
      'rising-with-epsilon': true,
      'near-total-unbounded': true,
      'white-box-at-least-transfer': null,
    });
    const flagged = holds(maskedAttacks);
    assert.equal(flagged['rising-with-epsilon'], false);
    assert.equal(flagged['near-total-unbounded'], false);
    ordinary.dispose();
    masked.dispose();
  });

  test('a sigmoid-top record measured before the stable sigmoid gradient is stale until re-evaluated', () => {
    const record = {
      config: { model: { kind: 'maxout', top: 'sigmoid' } },
      metrics: { fgsm: {}, fgsmOtherGradient: {} },
      provenance: {},
      finishedAt: '2026-11-26T15:41:57.202Z',
    } as unknown as ResultRecord;
    assert.match(staleGradientFigures(record)!, /gradient forms 1, before the independent-sigmoid top had a stable form/);
    // a record without the field that finished after the fix was committed was measured with it
    assert.equal(staleGradientFigures({ ...record, finishedAt: '2026-11-26T16:00:00.000Z' }), null);
    assert.equal(staleGradientFigures({ ...record, provenance: { ...record.provenance, gradientForms: 2 } }), null);
    const reevaluated = { at: '', replaced: ['fgsm', 'fgsmOtherGradient'], why: '', provenance: { gradientForms: 2 } } as unknown as NonNullable<
      ResultRecord['reevaluations']
    >[number];
    assert.equal(staleGradientFigures({ ...record, reevaluations: [reevaluated] }), null);
    // a softmax top had its stable form from the start
    assert.equal(staleGradientFigures({ ...record, config: { model: { kind: 'maxout', top: 'softmax' } } } as unknown as ResultRecord), null);
  });

  test('fgsm audit DIR end to end: the table, resumable, --check; a stale sigmoid record is refused by report and rewritten by --repair', async () => {
    const dir = tempDir();
    const env = { FGSM_DATA_DIR: realDataDir() };
    writeFileSync(join(dir, 'tiny.yaml'), tinySoftmaxYaml('tiny', 'seed: 1'));
    const results = join(dir, 'results');
    const trained = fgsmCli(['run', join(dir, 'tiny.yaml'), '--results-dir', results, '-q'], env);
    assert.equal(trained.status, 0, trained.stderr);

    // a sigmoid-top maxout run as one written before the fix: its stable figures are the standard ones, no gradientForms
    const tinyRun = join(results, 'tiny', readdirSync(join(results, 'tiny'))[0]!);
    const sigmoidRun = join(results, 'tiny-sigmoid', '20260101-000000-000000');
    mkdirSync(sigmoidRun, { recursive: true });
    cpSync(join(tinyRun, 'status.json'), join(sigmoidRun, 'status.json'));
    const sigmoid = buildModel(
      { kind: 'maxout', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: null, ...SMALL_MAXOUT, top: 'sigmoid' },
      0.05,
      3,
    );
    await saveModel(join(sigmoidRun, 'model'), sigmoid);
    const base = JSON.parse(readFileSync(join(tinyRun, 'result.json'), 'utf8')) as ResultRecord;
    const raw = await resolveMnist({ source: 'dir', explicit: { dir: realDataDir(), origin: 'test' }, cache: tempDir(), progress: quiet });
    const { evaluate } = await import('../src/eval/evaluate.js');
    const test300 = makeSplits(raw, base.config.data).test;
    const measured = await evaluate(sigmoid, test300, {
      attack: base.config.attack,
      rubbishSamples: null,
      figureExamples: 0,
      seed: 1,
      progress: quiet,
    });
    sigmoid.dispose();
    const relabelled = Object.fromEntries(Object.entries(measured.fgsm).map(([eps, m]) => [eps, { ...m, gradient: 'stable' }]));
    const { gradientForms: _forms, ...oldProvenance } = base.provenance;
    const stale = {
      ...base,
      experiment: 'tiny-sigmoid',
      runId: '20260101-000000-000000',
      config: {
        ...base.config,
        name: 'tiny-sigmoid',
        model: { kind: 'maxout', ...SMALL_MAXOUT, top: 'sigmoid', init: { range: 0.05 }, maxColumnNorm: null },
      },
      metrics: { ...base.metrics, clean: measured.clean, fgsm: measured.fgsm, fgsmOtherGradient: relabelled },
      provenance: oldProvenance,
      finishedAt: '2026-11-26T15:41:57.202Z',
    };
    writeFileSync(join(sigmoidRun, 'result.json'), JSON.stringify(stale));
    const refused = fgsmCli(['report', results], env);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /tiny-sigmoid\/20260101-000000-000000\/result\.json: its stable-gradient FGSM figures were measured with gradient forms 1/,
    );
    assert.match(refused.stderr, /--repair/);

    const out = join(dir, 'audit');
    const audited = fgsmCli(['audit', results, '--out', out, '--limit', '100', '--transfer-from', 'tiny', '--check', '--repair'], env);
    assert.equal(audited.status, 0, audited.stderr);
    assert.match(audited.stderr, /audit on the first 100 test examples of each model, not the whole test set/);
    assert.match(audited.stdout, /\*\*the first 100 test examples of each only\*\*/);
    assert.match(audited.stdout, /check: the must-hold checks \(iterative-at-least-single-step\) hold on all 2 models/);
    for (const file of ['audit.json', 'audit.md', 'audit.csv']) assert.ok(existsSync(join(out, file)), file);
    const record = JSON.parse(readFileSync(join(out, 'audit.json'), 'utf8')) as AuditRecord;
    assert.equal(record.limit, 100);
    assert.deepEqual(
      record.models.map((m) => [m.name, m.test.n, Object.keys(m.attacks).length, m.transfer?.source ?? null]),
      [
        ['tiny', 100, 9, null],
        ['tiny-sigmoid', 100, 9, 'tiny'],
      ],
    );
    const tiny = record.models[0]!;
    const pgd = tiny.attacks['pgd-40']!;
    const fgsm = tiny.attacks['fgsm-standard-clipped']!;
    for (const [e, figure] of pgd.entries()) assert.ok(figure.error >= fgsm[e]!.error, `PGD ≥ FGSM at ε = ${figure.epsilon}`);
    assert.deepEqual(
      record.staleRecords.map((s) => [s.run, s.repaired]),
      [[join('tiny-sigmoid', '20260101-000000-000000'), true]],
    );

    // the repaired record: stable figures measured with the stable form, the re-evaluation named; report reads it again
    const repaired = JSON.parse(readFileSync(join(sigmoidRun, 'result.json'), 'utf8')) as ResultRecord;
    assert.equal(staleGradientFigures(repaired), null);
    assert.deepEqual(
      repaired.reevaluations!.map((r) => r.replaced),
      [['fgsm', 'fgsmOtherGradient']],
    );
    assert.deepEqual(repaired.metrics.fgsm, JSON.parse(JSON.stringify(measured.fgsm)));
    assert.equal(repaired.metrics.fgsmOtherGradient!['0.25']!.gradient, 'stable');
    assert.match(
      readFileSync(join(sigmoidRun, 'report.md'), 'utf8'),
      /re-evaluated \d{4}-\d\d-\d\d from the saved model \(metrics fgsm, fgsmOtherGradient replaced/,
    );
    assert.equal(fgsmCli(['report', results], env).status, 0);

    // a second audit resumes: nothing is attacked again, the table is the same
    const again = fgsmCli(['audit', results, '--out', out, '--limit', '100', '--transfer-from', 'tiny'], env);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /on 100 test examples/);
    const second = JSON.parse(readFileSync(join(out, 'audit.json'), 'utf8')) as AuditRecord;
    assert.deepEqual(second.models, record.models);
    // --table-only attacks nothing: the models measured in full for this subset are tabled, the others named
    const tableOnly = fgsmCli(['audit', results, '--out', out, '--limit', '50', '--table-only', '--backend', 'cpu'], env);
    assert.equal(tableOnly.status, 0, tableOnly.stderr);
    const none = JSON.parse(readFileSync(join(out, 'audit.json'), 'utf8')) as AuditRecord;
    assert.deepEqual([none.models.length, none.leftOut], [0, ['tiny', 'tiny-sigmoid']]);
    // it records where the tabled figures were measured, not the backend of the invocation that tabled them
    assert.deepEqual(none.provenance.backend, second.provenance.backend);
    assert.match(tableOnly.stdout, /Not audited here \(left out with --only, or not yet measured\): tiny, tiny-sigmoid/);

    // on webgpu every attack the engine takes runs there, the label-leaking probe and the transfer check included
    const onGpu = join(dir, 'audit-webgpu');
    const gpu = fgsmCli(['audit', results, '--out', onGpu, '--limit', '100', '--transfer-from', 'tiny', '--backend', 'webgpu'], env);
    assert.equal(gpu.status, 0, gpu.stderr);
    assert.match(gpu.stderr, /tiny-sigmoid: label-leaking probe \(WebGPU engine\)/);
    assert.match(gpu.stderr, /tiny-sigmoid: FGSM made on tiny \(WebGPU engine\)/);
    const engine = JSON.parse(readFileSync(join(onGpu, 'audit.json'), 'utf8')) as AuditRecord;
    for (const [m, model] of engine.models.entries()) {
      const onWasm = second.models[m]!;
      const tfjsOnly = ['fgsm-softmax-minus-onehot', 'fgsm-exp-log-softmax-minus-onehot'];
      assert.deepEqual(
        [...model.onEngine!].sort(),
        [...Object.keys(model.attacks).filter((key) => !tfjsOnly.includes(key)), 'label-leak', ...(model.transfer ? ['transfer'] : [])].sort(),
        `${model.name}: measured on the engine`,
      );
      // wasm and webgpu round differently: within two examples of the 100
      const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 0.02, `${model.name}, ${what}: webgpu ${a}, wasm ${b}`);
      for (const [key, figures] of Object.entries(model.attacks))
        figures.forEach((figure, e) => close(figure.error, onWasm.attacks[key]![e]!.error, `${key} at ε = ${figure.epsilon}`));
      model.labelLeak!.forEach((leak, e) => close(leak.predictedLabels, onWasm.labelLeak![e]!.predictedLabels, `label leak at ε = ${leak.epsilon}`));
      model.transfer?.figures.forEach((figure, e) => close(figure.error, onWasm.transfer!.figures[e]!.error, `transfer at ε = ${figure.epsilon}`));
    }
  });
});
