import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { describe, test } from 'node:test';
import { renderRunTable } from '../src/cli/status.js';
import { withoutDawnDiagnostics } from '../src/backend/doctor.js';
import { describeEta, epochPace, type TrainingPosition } from '../src/core/progress.js';
import { nearestExistingFile } from '../src/core/nearest-file.js';
import { DEFAULT_SWEEP_GRID, parseEpsilons } from '../src/pipeline/sweep.js';
import { fittedTable, wrapText } from '../src/report/table.js';
import type { RunOverview } from '../src/results/runs.js';
import { BIN, fgsmCli, tempDir } from './helpers.js';

/** The committed reference runs: real output, read only. */
const REFERENCE = 'results/reference';

const widest = (text: string): number => Math.max(...text.split('\n').map((line) => [...stripVTControlCharacters(line)].length));

describe('output fits the terminal', () => {
  for (const columns of [80, 100]) {
    test(`report, status, compare and doctor fit ${columns} columns, and nothing in them is cut`, () => {
      for (const args of [
        ['report', REFERENCE],
        ['status', REFERENCE],
        ['compare', join(REFERENCE, 'maxout'), join(REFERENCE, 'maxout-adv')],
        ['compare', REFERENCE],
        ['doctor'],
      ]) {
        const out = fgsmCli(args, { COLUMNS: String(columns) });
        assert.equal(out.status, 0, `fgsm ${args.join(' ')}: ${out.stderr}`);
        assert.ok(widest(out.stdout) <= columns, `fgsm ${args.join(' ')}: a line of ${widest(out.stdout)} columns in ${columns}`);
        assert.doesNotMatch(out.stdout, /…/, `fgsm ${args.join(' ')} cuts a cell`);
        // the paper table stays one table: a claim's verdict on its own row, not in a second table below
        if (args[0] === 'report') assert.equal(out.stdout.match(/^│ claim /gm)?.length, 1);
      }
    });
  }

  test('status names each run by its whole id, says "interrupted" once, and no finished run reads "not started"', () => {
    const status = fgsmCli(['status', REFERENCE], { COLUMNS: '100' });
    assert.equal(status.status, 0, status.stderr);
    for (const experiment of readdirSync(REFERENCE, { withFileTypes: true }).filter((entry) => entry.isDirectory())) {
      for (const run of readdirSync(join(REFERENCE, experiment.name))) {
        if (existsSync(join(REFERENCE, experiment.name, run, 'status.json'))) assert.ok(status.stdout.includes(run), `status shows ${run} whole`);
      }
    }
    // transfer and agreement train nothing of their own, and they are complete
    assert.doesNotMatch(status.stdout, /not started/);

    const interrupted: RunOverview = {
      dir: '/results/maxout/20261207-010203-abcdef',
      experiment: 'maxout',
      runId: '20261207-010203-abcdef',
      configHash: 'abcdef',
      seed: null,
      state: 'interrupted',
      stage: 1,
      epoch: 3,
      best: null,
      heartbeat: null,
      lock: { state: 'free', owner: null, heartbeat: null },
      message: 'interrupted after stage 1 epoch 3; rerun the same command to resume',
    };
    const table = renderRunTable([interrupted], '/results', Infinity);
    assert.equal(table.match(/interrupted/g)?.length, 1, table);
    assert.match(table, /20261207-010203-abcdef/);
  });

  test('piped output is at its full width; --wide gives the full width at a terminal width too', () => {
    const piped = fgsmCli(['status', REFERENCE]);
    const wide = fgsmCli(['status', REFERENCE, '--wide'], { COLUMNS: '80' });
    assert.equal(wide.stdout, piped.stdout);
    assert.ok(widest(piped.stdout) > 100, 'at its full width, the status table is wider than 100 columns');
  });

  test('a table too wide to fit is split into parts that each repeat the key column; words break at - / .', () => {
    const head = ['run', ...Array.from({ length: 12 }, (_, i) => `column ${i}`)];
    const row = ['maxout / 20261126-021622-905400', ...Array.from({ length: 12 }, (_, i) => `${i}.00`)];
    const table = fittedTable(head, [row], { width: 60, unbroken: [0] });
    assert.ok(widest(table) <= 60);
    const parts = table.split('\n').filter((line) => line.startsWith('│ run'));
    assert.ok(parts.length > 1, 'split into several tables');
    assert.equal((table.match(/20261126-021622-905400/g) ?? []).length, parts.length, 'each part names the run, its id unbroken');
    for (let i = 0; i < 12; i++) assert.match(table, new RegExp(`│ ${i}\\.00 `), `column ${i} is shown`);
    assert.deepEqual(wrapText('see results/reference/maxout-adv/20261126-021622-905400', 30, '  ').split('\n'), [
      'see',
      '  results/reference/maxout-',
      '  adv/20261126-021622-905400',
    ]);
  });

  test("Dawn's own warnings are left out of doctor's output", () => {
    const doctor = fgsmCli(['doctor']);
    assert.equal(doctor.status, 0, doctor.stderr);
    assert.doesNotMatch(doctor.stdout + doctor.stderr, /maxDynamic|artificially reduced/);
    assert.equal(
      withoutDawnDiagnostics(
        'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n' +
          '    at InitializeSupportedLimitsImpl (/home/runner/work/node-webgpu/node-webgpu/third_party/dawn/src/dawn/native/vulkan/PhysicalDeviceVk.cpp:700)\n' +
          'a line of ours\n',
      ),
      'a line of ours\n',
    );
  });
});

describe('the first commands of a new user', () => {
  test('--help and --version load no TensorFlow.js, Dawn or vega', () => {
    const dir = tempDir();
    const log = join(dir, 'loaded.txt');
    const hook = join(dir, 'hook.mjs');
    // a module resolution hook that logs every module the CLI loads
    const resolver = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, resolved.url + '\\n');
  return resolved;
}`;
    writeFileSync(
      hook,
      `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(resolver)}`)});\n`,
    );
    for (const flag of ['--help', '--version', 'sweep --help']) {
      writeFileSync(log, '');
      const out = spawnSync(process.execPath, ['--import', hook, BIN, ...flag.split(' ')], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const loaded = readFileSync(log, 'utf8');
      assert.match(loaded, /commander/, 'the hook sees the modules loaded');
      assert.doesNotMatch(loaded, /@tensorflow|node_modules\/webgpu|node_modules\/vega|node_modules\/zod/, `fgsm ${flag} loads:\n${loaded}`);
    }
    assert.match(fgsmCli(['sweep', '--help']).stdout, new RegExp(`default ${DEFAULT_SWEEP_GRID}`), 'the help names the default grid');
  });

  test('a config path that does not exist: exit 2 and the nearest existing file', () => {
    const moved = fgsmCli(['run', 'configs/paper/maxout-adv.yaml']);
    assert.equal(moved.status, 2, moved.stderr);
    assert.match(moved.stderr, /configs\/paper\/maxout-adv\.yaml: no such file\nhint: did you mean configs\/maxout-adv\.yaml\?/);
    const typo = fgsmCli(['sweep', 'configs/maxout-av.yaml']);
    assert.equal(typo.status, 2, typo.stderr);
    assert.match(typo.stderr, /hint: did you mean configs\/maxout-adv\.yaml\?/);
    assert.equal(nearestExistingFile('configs/short/maxot.yaml'), join('configs', 'short', 'maxout.yaml'));
    assert.equal(nearestExistingFile('configs/nothing-like-it.yaml'), null);
    assert.equal(nearestExistingFile('configs/maxout-adv.yml'), join('configs', 'maxout-adv.yaml'), '.yml finds .yaml');
    assert.equal(nearestExistingFile('configs/paper/softmx.yaml'), join('configs', 'softmax.yaml'));
    const other = tempDir();
    writeFileSync(join(other, 'a.yaml'), '');
    assert.equal(nearestExistingFile(join(other, 'x.yaml')), null, 'a one-letter name is not a typo of another');
    assert.equal(nearestExistingFile(join(other, 'no', 'such', 'folders', 'a.yaml')), null, 'it looks two folders up at most');
  });

  test('sweep: refuses to train without --train-missing, has a default grid, prints a table', () => {
    const dir = tempDir();
    const results = join(dir, 'results');
    const config = join(dir, 'tiny.yaml');
    writeFileSync(
      config,
      `name: tiny
seed: 3
backend: wasm
data:
  source: embedded
  limit: { train: 500, validation: 100, test: 200 }
model: { kind: softmax }
training: { epochs: 1 }
evaluation: { rubbish: null, figureExamples: 0 }
claims: []
`,
    );
    const refused = fgsmCli(['sweep', config, '--results-dir', results, '-q']);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /no complete run of tiny .* so there is no model to sweep/);
    assert.match(refused.stderr, /hint: train it first with `fgsm run .*tiny\.yaml --results-dir .*`.*or pass --train-missing/);
    assert.ok(!existsSync(join(results, 'tiny')), 'nothing was trained');

    const swept = fgsmCli(['sweep', config, '--results-dir', results, '--train-missing', '-q']);
    assert.equal(swept.status, 0, swept.stderr);
    const grid = parseEpsilons(DEFAULT_SWEEP_GRID);
    assert.deepEqual(grid, [0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3]);
    for (const epsilon of grid) assert.match(swept.stdout, new RegExp(`│ ${epsilon} +│ \\d+\\.\\d\\d% +│`), `a row for ε = ${epsilon}`);
    assert.doesNotMatch(swept.stdout, /epsilon,error|\d\.\d{6,}/, 'no raw CSV, no 16-digit floats');
    const [, csv] = /→ (\S+sweep\.csv),/.exec(swept.stdout)!;
    assert.equal(readFileSync(csv!, 'utf8').trim().split('\n').length, grid.length + 1, 'sweep.csv still has every point');

    const again = fgsmCli(['sweep', config, '--results-dir', results, '--eps', '0.1,0.25', '-q']);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(readdirSync(join(results, 'tiny')).length, 1, 'the trained model is reused');
  });

  test('the ETA says what it knows: an earliest end and a cap, stage 2 estimated', () => {
    const stage1: TrainingPosition = {
      stage: 1,
      epoch: 200,
      epochSeconds: 30,
      earliestEnd: 300,
      latestEnd: 1000,
      stopsOnTarget: false,
      stage2: { epochs: 80, maxEpochs: 500, estimated: true, secondsPerEpoch: 36 },
    };
    // 100 epochs of 30 s + 80 of 36 s at the earliest; 800 of 30 s + 500 of 36 s at most
    assert.equal(describeEta(stage1), 'ETA 1.6 h–11.7 h (stage 1 ends at epoch 300–1000, then stage 2 ≈ 80 epochs (≤ 500))');
    assert.equal(describeEta({ ...stage1, earliestEnd: 1000, stage2: null }), 'ETA 6.7 h');
    assert.equal(
      describeEta({ ...stage1, stage: 2, epoch: 10, earliestEnd: 500, latestEnd: 500, stopsOnTarget: true, stage2: null }),
      'ETA ≤ 4.1 h (stage 2 stops at its target loss, by epoch 500)',
    );
  });

  test("the ETA's pace is the median of the latest epochs: one suspended epoch does not swing it, a lasting change shows", () => {
    assert.equal(epochPace([19, 20, 1199]), 20, 'a process suspended for 20 minutes during one epoch');
    assert.equal(epochPace([40, 40, 40, 40, 20, 21, 1199, 22, 19]), 21, 'only the latest five count');
    assert.equal(epochPace([20, 20, 20, 44, 44, 44]), 44, 'a machine that stays busy shows within three epochs');
    assert.equal(epochPace([31]), 31);
    assert.throws(() => epochPace([]), /no epoch yet/);
  });
});
