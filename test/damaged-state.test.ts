import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fgsmCli, tempDir } from './helpers.js';

/** A softmax run of a second on 500 embedded digits: every file a run folder has, in no time. */
const TINY = (name: string) => `name: ${name}
seed: 5
backend: wasm
data:
  source: embedded
  limit: { train: 500, validation: 200, test: 200 }
model: { kind: softmax }
training:
  epochs: 2
  earlyStopping: { metric: validation-error, patience: 5 }
attack:
  epsilons: [0.25]
evaluation:
  rubbish: null
  figureExamples: 0
claims: []
`;

/** Every file and folder under `dir` with its content: what "nothing was modified" compares. */
function tree(dir: string): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (at: string, relative: string): void => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const key = join(relative, name);
      if (statSync(path).isDirectory()) {
        entries[`${key}/`] = 'folder';
        walk(path, key);
      } else entries[key] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(dir, '');
  return entries;
}

type Command = 'run' | 'status' | 'report' | 'sweep';

/** How a file is damaged: cut in half, emptied, overwritten with bytes that are no text, or replaced by a folder. */
const FILE_DAMAGES: Record<string, (path: string) => void> = {
  truncated: (path) => truncateSync(path, Math.floor(statSync(path).size / 2)),
  empty: (path) => writeFileSync(path, ''),
  garbage: (path) => writeFileSync(path, Buffer.alloc(Math.max(16, statSync(path).size), 0xa7)),
  'a folder': (path) => {
    rmSync(path);
    mkdirSync(path);
  },
};

/** A folder replaced by a file. */
const FOLDER_DAMAGE = (path: string): void => {
  rmSync(path, { recursive: true });
  writeFileSync(path, 'not a folder\n');
};

describe('damaged state: exit 2 naming the file and what to do, nothing modified', () => {
  // one results folder: a complete run of `done` and an interrupted run of `paused` (its checkpoints after epochs 1 and 2)
  const fixture = tempDir();
  const configs = { done: join(fixture, 'done.yaml'), paused: join(fixture, 'paused.yaml') };
  const fixtureResults = join(fixture, 'results');
  const runOf = (experiment: string) => join(experiment, readdirSync(join(fixtureResults, experiment))[0]!);

  before(() => {
    for (const [name, config] of Object.entries(configs)) {
      writeFileSync(config, TINY(name));
      const run = fgsmCli(['run', config, '--results-dir', fixtureResults, '-q']);
      assert.equal(run.status, 0, run.stderr);
    }
    const paused = join(fixtureResults, runOf('paused'));
    for (const finished of ['result.json', 'report.md', 'model', 'training-curve.svg']) rmSync(join(paused, finished), { recursive: true });
    const status = JSON.parse(readFileSync(join(paused, 'status.json'), 'utf8'));
    writeFileSync(join(paused, 'status.json'), JSON.stringify({ ...status, state: 'interrupted' }));
    assert.deepEqual(readdirSync(join(paused, 'checkpoints')).sort(), [
      'checkpoint.json',
      'checkpoint.previous.json',
      'epoch-000001.bin',
      'epoch-000002.bin',
    ]);
  });

  const commands = (results: string): Record<Command, string[]> => ({
    run: ['run', configs.paused, '--results-dir', results, '-q'],
    status: ['status', results],
    report: ['report', results],
    sweep: ['sweep', configs.done, '--eps', '0.1', '--results-dir', results, '-q'],
  });

  /** Damages `targets` (paths under the results folder) in a copy of the fixture; each command reading them must refuse. */
  function assertRefused(targets: string[], damage: (path: string) => void, readers: Command[], what: string): void {
    const results = join(tempDir(), 'results');
    cpSync(fixtureResults, results, { recursive: true });
    const paths = targets.map((target) => join(results, target));
    for (const path of paths) damage(path);
    const before = tree(results);
    for (const command of readers) {
      const out = fgsmCli(commands(results)[command]);
      const context = `fgsm ${command} on ${what}:\n${out.stderr}`;
      assert.equal(out.status, 2, context);
      assert.doesNotMatch(out.stderr, /^\s+at /m, `no stack trace: ${context}`);
      for (const path of paths) assert.ok(out.stderr.includes(basename(path)), `names ${path}: ${context}`);
      if (paths.length === 1) assert.ok(out.stderr.includes(paths[0]!), `names ${paths[0]}: ${context}`);
      assert.match(out.stderr, /^hint: \S/m, `says what to do: ${context}`);
      assert.deepEqual(tree(results), before, `nothing modified: ${context}`);
    }
  }

  /** The files of the two run folders and the commands that read each. */
  const files = (): [string[], Command[]][] => {
    const done = runOf('done');
    const paused = runOf('paused');
    return [
      [[join(done, 'status.json')], ['status', 'report', 'sweep']],
      [[join(done, 'result.json')], ['report']],
      [[join(done, 'epochs.csv')], ['status', 'report']],
      [[join(done, 'model', 'model.json')], ['sweep']],
      [[join(done, 'model', 'weights.bin')], ['sweep']],
      [[join(paused, 'status.json')], ['run', 'status', 'report']],
      [[join(paused, 'epochs.csv')], ['status', 'report']],
      // one damaged checkpoint costs an epoch (train.test.ts); both: nothing to resume from
      [[join(paused, 'checkpoints', 'checkpoint.json'), join(paused, 'checkpoints', 'checkpoint.previous.json')], ['run']],
      [[join(paused, 'checkpoints', 'epoch-000001.bin'), join(paused, 'checkpoints', 'epoch-000002.bin')], ['run']],
    ];
  };

  for (const [damage, apply] of Object.entries(FILE_DAMAGES)) {
    test(`each file ${damage}`, () => {
      for (const [targets, readers] of files()) assertRefused(targets, apply, readers, `${targets.join(' and ')} ${damage}`);
    });
  }

  test('a file where a folder belongs: a run folder part, or a file named like an experiment in the results folder', () => {
    const cases: [string, Command[]][] = [
      [join(runOf('done'), 'model'), ['sweep']],
      [join(runOf('paused'), 'checkpoints'), ['run']],
      ['paused', ['run']],
    ];
    for (const [target, readers] of cases) assertRefused([target], FOLDER_DAMAGE, readers, `${target} a file`);
  });

  test("an unfinished run's damaged epochs.csv does not stop it: resumed, the run writes it whole from its checkpoint", () => {
    const results = join(tempDir(), 'results');
    cpSync(fixtureResults, results, { recursive: true });
    const epochs = join(results, runOf('paused'), 'epochs.csv');
    const whole = readFileSync(epochs, 'utf8');
    truncateSync(epochs, Math.floor(whole.length / 2));
    const run = fgsmCli(commands(results).run);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(readFileSync(epochs, 'utf8'), whole);
  });
});
