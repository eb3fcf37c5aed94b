import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { resumeCommand } from '../src/cli/resume-command.js';
import { BIN, fgsmCli, realDataDir, tempDir } from './helpers.js';

/**
 * The short maxout networks over 8,000 full-MNIST digits: epochs of 80 minibatches, tens of seconds each on wasm,
 * long beside the bounds below (a run that stopped only at the end of its epoch would not meet them).
 */
const SHORT = (epochs: number) => [
  '--backend',
  'wasm',
  '--set',
  'data.limit.train=8000',
  '--set',
  'data.limit.test=500',
  '--set',
  `training.epochs=${epochs}`,
];

/** Generous: a few minibatches, the status and the lock, on a machine shared with other work. */
const STOPS_WITHIN_MS = 20_000;
const ACKNOWLEDGED_WITHIN_MS = 5_000;

interface Interrupted {
  code: number | null;
  stderr: string;
  acknowledgedMs: number;
  exitedMs: number;
}

/**
 * `fgsm ARGS` in a child process, sent SIGINT `delayMs` after its stderr first matches `when`; how it ended, how
 * soon its stderr acknowledged the signal and how soon it exited.
 */
async function interruptWhen(args: string[], when: RegExp, delayMs: number): Promise<Interrupted> {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, FGSM_DATA_DIR: realDataDir(), FORCE_COLOR: '0' },
  });
  let stderr = '';
  let sentAt = 0;
  let acknowledgedAt = 0;
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
    if (sentAt && !acknowledgedAt && /SIGINT: stopping within a few minibatches/.test(stderr)) acknowledgedAt = Date.now();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  while (!when.test(stderr) && child.exitCode === null) await sleep(50);
  await sleep(delayMs);
  assert.equal(child.exitCode, null, `it ended before the signal:\n${stderr}`);
  sentAt = Date.now();
  child.kill('SIGINT');
  const code = await exited;
  return { code, stderr, acknowledgedMs: (acknowledgedAt || Infinity) - sentAt, exitedMs: Date.now() - sentAt };
}

/** The run folders under `results`, each with its status.json. */
function runFolders(results: string): { dir: string; status: { state: string; message?: string } }[] {
  return readdirSync(results).flatMap((experiment) =>
    readdirSync(join(results, experiment)).map((id) => {
      const dir = join(results, experiment, id);
      return { dir, status: JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')) };
    }),
  );
}

/** Stopped promptly, said so, every run it trained marked interrupted with its lock released. */
function assertStopped(outcome: Interrupted, results: string, runs: number): void {
  assert.equal(outcome.code, 130, outcome.stderr);
  assert.ok(outcome.acknowledgedMs <= ACKNOWLEDGED_WITHIN_MS, `acknowledged after ${outcome.acknowledgedMs} ms:\n${outcome.stderr}`);
  assert.ok(outcome.exitedMs <= STOPS_WITHIN_MS, `exited ${outcome.exitedMs} ms after the signal:\n${outcome.stderr}`);
  assert.match(outcome.stderr, /interrupted during (seed \d+ )?stage 1 epoch \d+/);
  assert.match(outcome.stderr, /resume with: /);
  const folders = runFolders(results);
  assert.equal(folders.length, runs, outcome.stderr);
  for (const { dir, status } of folders) {
    assert.equal(status.state, 'interrupted', `${dir}: ${JSON.stringify(status)}`);
    assert.ok(!existsSync(join(dir, 'run.lock')), `${dir}: the lock is released`);
  }
}

describe('Ctrl-C (SIGINT) stops a training run within a few minibatches', () => {
  test('in process: acknowledged at once, finished epochs kept, and the printed command resumes it to the end', async () => {
    const results = join(tempDir(), 'results');
    const args = ['run', 'configs/short/maxout.yaml', '--results-dir', results, ...SHORT(2)];
    const outcome = await interruptWhen(args, /stage 1 epoch 1\/2 \|/, 1000);
    assertStopped(outcome, results, 1);
    assert.match(outcome.stderr, /interrupted during stage 1 epoch 2 \(kept: up to stage 1 epoch 1\); the unfinished epoch is discarded/);
    const [{ dir, status }] = runFolders(results);
    assert.match(status.message!, /^interrupted during stage 1 epoch 2/);
    assert.ok(existsSync(join(dir!, 'checkpoints', 'checkpoint.json')));

    const command = /resume with: (.*)/.exec(outcome.stderr)![1]!;
    assert.equal(command, `node bin/fgsm.js ${args.join(' ')}`);
    const resumed = fgsmCli(command.split(' ').slice(2), { FGSM_DATA_DIR: realDataDir() });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming from the checkpoint after stage 1 epoch 1 /);
    assert.equal(runFolders(results)[0]!.status.state, 'complete');
  });

  test('a second signal quits at once: the run marked interrupted, its lock released, its checkpoint whole', async () => {
    const results = join(tempDir(), 'results');
    const child = spawn(process.execPath, [BIN, 'run', 'configs/short/maxout.yaml', '--results-dir', results, ...SHORT(3)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, FGSM_DATA_DIR: realDataDir(), FORCE_COLOR: '0' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    while (!/stage 1 epoch 1\/3 \|/.test(stderr) && child.exitCode === null) await sleep(50);
    await sleep(1000);
    // both signals pending together (stopped, then continued), so that the second does not find the run stopped
    // already by the first at its next minibatch; two of one kind would merge into one while pending
    child.kill('SIGSTOP');
    child.kill('SIGINT');
    child.kill('SIGTERM');
    child.kill('SIGCONT');
    assert.equal(await exited, 130, stderr);
    assert.doesNotMatch(stderr, /interrupted during/, 'it did not wait for the minibatch');
    const [{ dir, status }] = runFolders(results);
    assert.equal(status.state, 'interrupted');
    assert.match(status.message!, /^quit at once \(a second signal\)/);
    assert.ok(!existsSync(join(dir!, 'run.lock')), 'the lock is released');
    const pointer = JSON.parse(readFileSync(join(dir!, 'checkpoints', 'checkpoint.json'), 'utf8'));
    assert.equal(pointer.state.epoch, 1);
    assert.ok(existsSync(join(dir!, 'checkpoints', pointer.file)));
  });

  test('--jobs 2: every child process stops, is marked interrupted and releases its lock; no further run starts', async () => {
    const results = join(tempDir(), 'results');
    const args = ['run', 'configs/short/maxout.yaml', 'configs/short/maxout-adv.yaml', '--jobs', '2', '--results-dir', results, ...SHORT(2)];
    const outcome = await interruptWhen(args, /\[maxout-adv\] data: /, 2000);
    assertStopped(outcome, results, 2);
    for (const label of ['maxout', 'maxout-adv']) assert.match(outcome.stderr, new RegExp(`^\\[${label}\\] interrupted during stage 1 epoch`, 'm'));
    assert.match(outcome.stderr, /^interrupted; rerun the same command to resume the unfinished runs/m);
  });

  test('sweep and transfer that train a missing model stop the same way, not at once with the run left "running"', async () => {
    const sweep = join(tempDir(), 'results');
    assertStopped(
      await interruptWhen(
        ['sweep', 'configs/short/maxout.yaml', '--eps', '0.25', '--train-missing', '--results-dir', sweep, ...SHORT(2)],
        /^data: /m,
        2000,
      ),
      sweep,
      1,
    );

    const transfer = join(tempDir(), 'results');
    // --set would set keys of the transfer: the networks train on all 50,000 digits (stopped in their first epoch)
    const args = [
      'transfer',
      'configs/short/maxout.yaml',
      'configs/short/maxout-adv.yaml',
      '--train-missing',
      '--results-dir',
      transfer,
      '--backend',
      'wasm',
    ];
    assertStopped(await interruptWhen(args, /^data: /m, 2000), transfer, 1);
  });
});

describe('the command that resumes', () => {
  test('is the command as given, without --fresh, its arguments quoted for the shell', () => {
    const node = process.execPath;
    assert.equal(
      resumeCommand([node, '/repo/node_modules/.bin/fgsm', 'run', 'a b.yaml', '--fresh', '--set', "name=it's"], '/repo'),
      `npx fgsm run 'a b.yaml' --set 'name=it'\\''s'`,
    );
    assert.equal(resumeCommand([node, '/usr/local/bin/fgsm', 'sweep', 'c.yaml', '--eps', '0:0.3:0.1'], '/home'), 'fgsm sweep c.yaml --eps 0:0.3:0.1');
    assert.equal(resumeCommand([node, '/repo/bin/fgsm.js', 'run', 'c.yaml'], '/repo'), 'node bin/fgsm.js run c.yaml');
  });
});
