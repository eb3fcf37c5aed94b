import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FgsmError } from '../src/core/errors.js';
import { dataIdentity } from '../src/data/identity.js';
import { openRun, type RunIdentity } from '../src/results/run-dir.js';
import { acquireRunLock, inspectLock, type LockTiming } from '../src/results/run-lock.js';
import { listRuns } from '../src/results/runs.js';
import { BIN, fgsmCli, realDataDir, tempDir } from './helpers.js';

const fgsm = fgsmCli;
const FAST: LockTiming = { staleMs: 2000, updateMs: 1000 };
const LOCK_MODULE = join(process.cwd(), 'dist', 'src', 'results', 'run-lock.js');

/** Neither a data directory nor a cache nor a reachable mirror: `source: auto` falls back to the embedded subset. */
function offline(dir: string): NodeJS.ProcessEnv {
  return { FGSM_DATA_DIR: '', FGSM_CACHE_DIR: join(dir, 'empty-cache'), FGSM_MNIST_MIRRORS: 'http://127.0.0.1:9/' };
}

const SOFTMAX = (limits: string) => `name: tiny
seed: 5
backend: wasm
data:
  source: auto
${limits}
model:
  kind: softmax
training:
  epochs: 2
  earlyStopping: { metric: validation-error, patience: 5 }
attack:
  epsilons: [0.25]
evaluation:
  figureExamples: 0
claims: []
`;

function onlyRun(results: string): string {
  const runs = readdirSync(join(results, 'tiny'));
  assert.equal(runs.length, 1, `runs: ${runs}`);
  return join(results, 'tiny', runs[0]!);
}

/** Marks a finished run unfinished, as a run interrupted after its last epoch's checkpoint would be. */
function markInterrupted(folder: string): Record<string, unknown> {
  const status = JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8'));
  status.state = 'interrupted';
  writeFileSync(join(folder, 'status.json'), JSON.stringify(status));
  return status;
}

/** A process that takes the lock on `dir`, says "locked", and holds it until killed, saying so if it loses it. */
function holder(dir: string) {
  const script = `const { acquireRunLock } = await import(${JSON.stringify(LOCK_MODULE)});
const lock = await acquireRunLock(${JSON.stringify(dir)}, ${JSON.stringify(FAST)});
console.log('locked');
const poll = setInterval(() => {
  try { lock.assertHeld(); } catch (error) { console.log(error.message); clearInterval(poll); }
}, 100);`;
  const file = join(tempDir(), 'holder.mjs');
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  const locked = new Promise<void>((resolve) =>
    child.stdout.on('data', (chunk) => {
      text += chunk;
      resolve();
    }),
  );
  return { child, locked, output: () => text };
}

/** A tiny softmax run on the embedded subset, trained to the end offline, then marked interrupted. */
function interruptedTinyRun(): { dir: string; config: string; results: string; folder: string; status: Record<string, unknown> } {
  const dir = tempDir();
  const config = join(dir, 'tiny.yaml');
  writeFileSync(config, SOFTMAX('  limit: { train: 500, validation: 200, test: 200 }'));
  const results = join(dir, 'results');
  const first = fgsm(['run', config, '--results-dir', results, '-q'], offline(dir));
  assert.equal(first.status, 0, first.stderr);
  const folder = onlyRun(results);
  return { dir, config, results, folder, status: markInterrupted(folder) };
}

const IDENTITY: RunIdentity = { data: dataIdentity({ kind: 'dir', files: [] }, { train: 1, validation: 1, test: 1 }), backend: 'wasm' };

describe('run integrity', () => {
  test('a run begun on the embedded subset is not resumed on full MNIST (nor the reverse): refused, saying why', () => {
    const { config, results, folder } = interruptedTinyRun();
    const before = readFileSync(join(folder, 'epochs.csv'), 'utf8');

    const full = fgsm(['run', config, '--results-dir', results, '-q'], { FGSM_DATA_DIR: realDataDir() });
    assert.equal(full.status, 2, full.stderr + full.stdout);
    assert.match(
      full.stderr,
      /cannot resume .*: it was begun on the embedded 10k subset; train 500, validation 200, test 200; this invocation reads the MNIST files/,
    );
    assert.match(full.stderr, /--fresh/);
    assert.equal(readFileSync(join(folder, 'epochs.csv'), 'utf8'), before, 'nothing was written into the run');

    const fresh = fgsm(['run', config, '--results-dir', results, '-q', '--fresh'], { FGSM_DATA_DIR: realDataDir() });
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.equal(readdirSync(join(results, 'tiny')).length, 2);
  });

  test('an unfinished run copied without its checkpoints is refused, not retrained over its recorded epochs', () => {
    const { dir, config, results, folder } = interruptedTinyRun();
    rmSync(join(folder, 'checkpoints'), { recursive: true });
    const before = readFileSync(join(folder, 'epochs.csv'), 'utf8');
    const again = fgsm(['run', config, '--results-dir', results, '-q'], offline(dir));
    assert.equal(again.status, 2, again.stderr + again.stdout);
    assert.match(again.stderr, /cannot resume .*: its epochs\.csv records \d+ trained epochs?, but checkpoints\/ holds no checkpoint to go on from/);
    assert.match(again.stderr, /--fresh/);
    assert.equal(readFileSync(join(folder, 'epochs.csv'), 'utf8'), before, 'the recorded epochs are kept');
    const fresh = fgsm(['run', config, '--results-dir', results, '-q', '--fresh'], offline(dir));
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.equal(readdirSync(join(results, 'tiny')).length, 2);
  });

  test('a run begun before runs recorded their data is checked by its checkpoint: other data is refused', () => {
    const dir = tempDir();
    const config = join(dir, 'tiny.yaml');
    writeFileSync(config, SOFTMAX('  limit: { test: 200 }'));
    const results = join(dir, 'results');
    assert.equal(fgsm(['run', config, '--results-dir', results, '-q', '--set', 'training.epochs=1'], offline(dir)).status, 0);
    const folder = onlyRun(results);
    const { identity: _identity, pid: _pid, host: _host, experiment: _experiment, seed: _seed, ...legacy } = markInterrupted(folder);
    writeFileSync(join(folder, 'status.json'), JSON.stringify(legacy));
    const full = fgsm(['run', config, '--results-dir', results, '-q', '--set', 'training.epochs=1'], { FGSM_DATA_DIR: realDataDir() });
    assert.equal(full.status, 2, full.stderr + full.stdout);
    assert.match(full.stderr, /its checkpoint made \d+ minibatches per epoch in stage 1, this data makes 500 \(the MNIST files/);
    assert.deepEqual(JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')), legacy, 'a refusal writes nothing into the run');
    const again = fgsm(['run', config, '--results-dir', results, '-q', '--set', 'training.epochs=1'], { FGSM_DATA_DIR: realDataDir() });
    assert.equal(again.status, 2, "refused again: the refusal did not record the other data as the run's own");
  });

  test('the same data resumes: a legacy run (no recorded identity) adopts this one', () => {
    const { dir, config, results, folder, status } = interruptedTinyRun();
    const { identity: _identity, ...legacy } = status;
    writeFileSync(join(folder, 'status.json'), JSON.stringify(legacy));
    const again = fgsm(['run', config, '--results-dir', results], offline(dir));
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /resuming from the checkpoint after stage 1 epoch 2/);
    assert.equal(
      JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')).identity.data.id,
      JSON.parse(readFileSync(join(folder, 'result.json'), 'utf8')).data.identity.id,
    );
  });

  test('--backend naming another backend than the unfinished run was begun with says which run it leaves and how to resume it', () => {
    const dir = tempDir();
    const config = join(dir, 'tiny.yaml');
    writeFileSync(config, SOFTMAX('  limit: { train: 500, validation: 200, test: 200 }'));
    const results = join(dir, 'results');
    assert.equal(fgsm(['run', config, '--results-dir', results, '-q'], offline(dir)).status, 0);
    const begun = onlyRun(results).split('/').at(-1)!;
    markInterrupted(join(results, 'tiny', begun));

    const peek = fgsm(['peek', config, '--results-dir', results, '--backend', 'cpu'], offline(dir));
    assert.equal(peek.status, 2, peek.stderr);
    assert.match(
      peek.stderr,
      new RegExp(`the unfinished run ${begun} of tiny was begun with backend wasm, this invocation asks for cpu; --backend wasm finds it`),
    );

    const other = fgsm(['run', config, '--results-dir', results, '--backend', 'cpu'], offline(dir));
    assert.equal(other.status, 0, other.stderr);
    assert.match(other.stderr, new RegExp(`note: starting a new run: the unfinished run ${begun} of tiny was begun with backend wasm`));
    assert.equal(readdirSync(join(results, 'tiny')).length, 2, 'the run begun on wasm is left as it was');
    const same = fgsm(['run', config, '--results-dir', results, '--backend', 'wasm'], offline(dir));
    assert.match(same.stderr, new RegExp(`resuming tiny → .*${begun}`));
  });

  test('a sweep is a result of its own: other data or another grid never overwrites it', () => {
    const dir = tempDir();
    const config = join(dir, 'tiny.yaml');
    writeFileSync(config, SOFTMAX('  limit: { train: 500, validation: 200, test: 200 }'));
    const results = join(dir, 'results');
    const sweep = (eps: string, env: NodeJS.ProcessEnv) => {
      const out = fgsm(['sweep', config, '--eps', eps, '--results-dir', results, '--train-missing', '-q'], env);
      assert.equal(out.status, 0, out.stderr);
      return /→ (.*)\/sweep\.csv/.exec(out.stdout)![1]!;
    };
    const full = sweep('0:0.2:0.1', { FGSM_DATA_DIR: realDataDir() });
    const fullCsv = readFileSync(join(full, 'sweep.csv'), 'utf8');
    const subset = sweep('0:0.2:0.1', offline(dir));
    const otherGrid = sweep('0.1,0.3', { FGSM_DATA_DIR: realDataDir() });
    assert.equal(new Set([full, subset, otherGrid]).size, 3);
    assert.equal(readFileSync(join(full, 'sweep.csv'), 'utf8'), fullCsv, 'the full-data sweep is untouched');
    const record = JSON.parse(readFileSync(join(subset, 'sweep.json'), 'utf8'));
    assert.equal(record.data.kind, 'embedded');
    assert.notEqual(
      record.runId,
      JSON.parse(readFileSync(join(full, 'sweep.json'), 'utf8')).runId,
      'the subset sweep attacks a model trained on the subset',
    );
    assert.equal(sweep('0:0.2:0.1', { FGSM_DATA_DIR: realDataDir() }), full, 'the same sweep again lands in the same place');
  });

  test('two processes on one run: the second is refused naming the first; a lock left by a killed process is taken over', async () => {
    const dir = tempDir();
    const { child, locked } = holder(dir);
    await locked.catch((error) => {
      child.kill('SIGKILL');
      throw error;
    });
    await assert.rejects(acquireRunLock(dir, FAST), (error: Error) => {
      assert.ok(error instanceof FgsmError);
      assert.match(error.message, new RegExp(`is in use by pid ${child.pid} on `));
      return true;
    });
    assert.equal(inspectLock(dir, FAST).state, 'live');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(inspectLock(dir, FAST).state, 'dead', 'its pid is gone: dead at once on this host');
    const lock = await acquireRunLock(dir, FAST);
    assert.equal(JSON.parse(readFileSync(join(dir, 'lock-owner.json'), 'utf8')).pid, process.pid);
    lock.assertHeld();
    await lock.release();
    assert.equal(inspectLock(dir, FAST).state, 'free');
  });

  test("another host's lock is respected while it beats and taken over once stale", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'run.lock'));
    writeFileSync(join(dir, 'lock-owner.json'), JSON.stringify({ pid: 1, host: 'node-elsewhere', since: new Date().toISOString() }));
    await assert.rejects(acquireRunLock(dir, FAST), /in use by pid 1 on node-elsewhere/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'run.lock'), old, old);
    assert.equal(inspectLock(dir, FAST).state, 'dead');
    const lock = await acquireRunLock(dir, FAST);
    await lock.release();
  });

  test('the heartbeat beats while the main thread is busy for longer than the stale time', async () => {
    const dir = tempDir();
    const lock = await acquireRunLock(dir, FAST);
    const busyUntil = Date.now() + 2.5 * FAST.staleMs;
    while (Date.now() < busyUntil); // a long synchronous epoch
    assert.ok(Date.now() - statSync(join(dir, 'run.lock')).mtimeMs < FAST.staleMs, 'the lock stayed fresh');
    lock.assertHeld();
    await lock.release();
  });

  test('a process suspended past the stale time loses the run to another and knows it before writing', async () => {
    const dir = tempDir();
    const { child, locked, output } = holder(dir);
    try {
      await locked;
      child.kill('SIGSTOP'); // its heartbeat stops, as on a suspended machine
      await sleep(FAST.staleMs + 1500); // (proper-lockfile may round a heartbeat up to the next second)
      assert.equal(inspectLock(dir, FAST).state, 'dead');
      const second = await acquireRunLock(dir, FAST);
      child.kill('SIGCONT');
      for (let i = 0; i < 50 && !/lost/.test(output()); i++) await sleep(100);
      assert.match(output(), /lost the run folder's lock/);
      second.assertHeld();
      await second.release();
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('run folders are claimed atomically: runs opened in the same second get their own folders', async () => {
    const results = tempDir();
    const runs = await Promise.all(
      [1, 2, 3].map(() => openRun(results, 'tiny', 'abcdef123456', { fresh: true, seed: 1, identity: IDENTITY, lockTiming: FAST })),
    );
    assert.equal(new Set(runs.map((run) => run.dir)).size, 3);
    for (const run of runs) await run.lock.release();
  });

  test('kill -9: fgsm status says dead, not running; report --check fails on nothing', async () => {
    const dir = tempDir();
    const config = join(dir, 'tiny.yaml');
    writeFileSync(
      config,
      SOFTMAX('  limit: { train: 5000, validation: 200, test: 200 }').replace('epochs: 2', 'epochs: 200').replace('patience: 5', 'patience: 200'),
    );
    const results = join(dir, 'results');
    const child = spawn(process.execPath, [BIN, 'run', config, '--results-dir', results, '-q'], {
      stdio: 'ignore',
      env: { ...process.env, ...offline(dir) },
    });
    for (let i = 0; i < 600 && !existsSync(join(results, 'tiny')); i++) await sleep(50);
    let folder = '';
    for (let i = 0; i < 600; i++) {
      const runs = existsSync(join(results, 'tiny')) ? readdirSync(join(results, 'tiny')) : [];
      if (runs.length && existsSync(join(results, 'tiny', runs[0]!, 'epochs.csv'))) {
        folder = join(results, 'tiny', runs[0]!);
        break;
      }
      await sleep(50);
    }
    assert.ok(folder, 'the run wrote its first epoch');
    const live = listRuns(results);
    assert.equal(live.length, 1);
    assert.equal(live[0]!.state, 'running');
    const busy = fgsm(['run', config, '--results-dir', results, '-q'], offline(dir));
    assert.equal(busy.status, 2, busy.stderr);
    assert.match(busy.stderr, new RegExp(`is in use by pid ${child.pid}`));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));

    const status = fgsm(['status', results]);
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /tiny .*│ 5 .*│ dead: no live process .*│ stage 1 epoch \d+ /);
    const [run] = JSON.parse(fgsm(['status', results, '--json']).stdout);
    assert.equal(run.state, 'dead');
    assert.equal(JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')).state, 'running', 'status.json cannot know');

    const empty = tempDir();
    const check = fgsm(['report', empty, '--check']);
    assert.equal(check.status, 2);
    assert.match(check.stderr, /no complete run under .*, so nothing holds/);
    assert.deepEqual(readdirSync(empty), [], 'report writes nothing where it reads');
  });
});
