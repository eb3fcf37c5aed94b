import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ResultRecord } from '../src/results/record.js';
import { fgsmCli, tempDir, tinySoftmaxYaml } from './helpers.js';

const fgsm = fgsmCli;

const pct = (v: number): string => (100 * v).toFixed(2);

describe('fgsm compare', () => {
  const dir = tempDir();
  const config = join(dir, 'tiny.yaml');
  writeFileSync(config, tinySoftmaxYaml('tiny', 'seed: 5'));
  const results = join(dir, 'results');
  for (const rate of ['0.1', '0.01']) {
    const run = fgsm([
      'run',
      config,
      '--results-dir',
      results,
      '-q',
      '--set',
      `training.learningRate.initial=${rate}`,
      '--set',
      'attack.epsilons=[0.1, 0.25]',
    ]);
    assert.equal(run.status, 0, run.stderr);
  }
  const runs = readdirSync(join(results, 'tiny')).map((id) => join(results, 'tiny', id));
  const records = runs.map((run) => JSON.parse(readFileSync(join(run, 'result.json'), 'utf8')) as ResultRecord);

  test('one row per run: the key they differ in, and each figure from its result.json, both gradients', () => {
    const out = fgsm(['compare', results, '--markdown', '--csv', join(dir, 'table.csv')]);
    assert.equal(out.status, 0, out.stderr);
    const lines = out.stdout.split('\n').filter((line) => line.startsWith('|'));
    assert.equal(
      lines[0],
      '| run | training.learningRate.initial | epoch kept (of stage 1 + 2) | training h | clean error % | FGSM ε=0.1 % | FGSM ε=0.25 % | conf. on mistakes ε=0.25 % | saturated |',
    );
    assert.equal(lines.length, 2 + records.length);
    for (const record of records) {
      const row = lines.find((line) => line.includes(record.runId))!;
      const cells = row.split('|').map((cell) => cell.trim());
      const { fgsm: standard, fgsmOtherGradient: stable } = record.metrics;
      assert.equal(cells[2], String(record.config.training.learningRate.initial));
      assert.equal(cells[3], `${record.metrics.training.chosenEpoch} of ${record.metrics.training.epochs}`);
      assert.equal(cells[5], pct(record.metrics.clean.error));
      assert.equal(cells[6], `${pct(standard['0.1']!.error)} / ${pct(stable!['0.1']!.error)}`);
      assert.equal(cells[7], `${pct(standard['0.25']!.error)} / ${pct(stable!['0.25']!.error)}`);
      assert.equal(cells[8], pct(standard['0.25']!.meanConfidenceOnMistakes!));
      assert.equal(cells[9], String(standard['0.25']!.saturated));
    }
    const csv = readFileSync(join(dir, 'table.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, 1 + records.length);
    assert.match(
      csv[0]!,
      /^run,training\.learningRate\.initial,provisional,stage1_epochs,kept_epoch,stage2_epochs,training_hours,clean_error,fgsm_0\.1_standard,fgsm_0\.1_stable,/,
    );
  });

  test('a record written before a later key existed does not differ in it (its value was the original one)', () => {
    const legacy = join(dir, 'legacy');
    mkdirSync(legacy);
    const record = structuredClone(records[0]!) as unknown as { runId: string; config: { attack: Record<string, unknown> } };
    delete record.config.attack.gradient;
    record.runId = 'legacy-run';
    writeFileSync(join(legacy, 'result.json'), JSON.stringify(record));
    const out = fgsm(['compare', runs[0]!, legacy, '--markdown']);
    assert.equal(out.status, 0, out.stderr);
    assert.doesNotMatch(out.stdout, /attack\.gradient/);
  });

  test('an ε no run measured, or a path with no result, is refused with exit 2', () => {
    const at = fgsm(['compare', results, '--at', '0.3']);
    assert.equal(at.status, 2);
    assert.match(at.stderr, /--at 0\.3: no run measured ε = 0\.3/);
    assert.match(at.stderr, /measured: 0\.1, 0\.25/);
    const empty = tempDir();
    const none = fgsm(['compare', empty]);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /no result of a trained run under/);
    assert.equal(fgsm(['compare', results, '--at', 'x']).status, 2);
  });
});
