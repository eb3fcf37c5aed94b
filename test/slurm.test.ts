import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArrayOverview, TaskOverview } from '../src/cli/executors/slurm-state.js';
import type { TaskOutcome } from '../src/cli/executors/slurm-submission.js';
import type { RunOverview } from '../src/results/runs.js';
import { realDataDir, tempDir } from './helpers.js';

/**
 * The Slurm executor against a real one-node Slurm (test/slurm/start-cluster.sh: munge, slurmctld and slurmd on
 * 127.0.0.1, everything under a temporary folder), started before these tests and stopped after them.
 */
const BIN = join(process.cwd(), 'bin', 'fgsm.js');
const CLUSTER_SCRIPTS = join(process.cwd(), 'test', 'slurm');
const NEEDED = ['sbatch', 'squeue', 'scontrol', 'scancel', 'slurmctld', 'slurmd', 'munged'];
const missing = NEEDED.filter((command) => spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0);
const notRoot = process.getuid?.() !== 0;
const skip = missing.length
  ? `Slurm is not installed (missing ${missing.join(', ')}): apt-get install slurmctld slurmd slurm-client munge`
  : notRoot
    ? 'the test Slurm runs as root (SlurmUser=root)'
    : false;

let clusterDir = '';
let env: NodeJS.ProcessEnv = {};

function fgsm(args: string[]) {
  const out = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

/** A small softmax experiment on the full MNIST files: a few seconds a run. */
function experiment(dir: string, name: string, extra: { train?: number; epochs?: number; seeds?: string; data?: string } = {}): string {
  const epochs = extra.epochs ?? 2;
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
${extra.seeds ? `seeds: ${extra.seeds}` : 'seed: 1'}
backend: wasm
data:
  source: dir
${extra.data ?? ''}
  limit: { train: ${extra.train ?? 1000}, validation: 300, test: 300 }
model:
  kind: softmax
training:
  epochs: ${epochs}
  earlyStopping: { metric: validation-error, patience: ${epochs} }
attack:
  epsilons: [0.1, 0.25]
evaluation:
  figureExamples: 0
claims: [s4.softmax.fgsm]
`,
  );
  return file;
}

function arrays(results: string): ArrayOverview[] {
  const out = fgsm(['status', results, '--json']);
  assert.equal(out.status, 0, out.stderr);
  const parsed = JSON.parse(out.stdout) as { slurm?: ArrayOverview[] } | RunOverview[];
  return Array.isArray(parsed) ? [] : (parsed.slurm ?? []);
}

/** Polls the tasks of the results folder's only array until `done` holds for them (or fails after `seconds`). */
async function waitForTasks(results: string, done: (tasks: TaskOverview[]) => boolean, seconds: number): Promise<TaskOverview[]> {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const [array] = arrays(results);
    if (array && done(array.tasks)) return array.tasks;
    if (Date.now() > until)
      assert.fail(`tasks not there after ${seconds} s: ${JSON.stringify(array?.tasks.map((t) => [t.task.label, t.state, t.detail]))}`);
    await sleep(250);
  }
}

/** Polls `done` every 50 ms (reading files, not starting processes: a run's epochs take a fraction of a second). */
async function until(done: () => boolean, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!done()) {
    if (Date.now() > end) assert.fail(`not so after ${seconds} s`);
    await sleep(50);
  }
}

/** The epochs the only run of an experiment folder has written so far. */
function epochsWritten(experimentDir: string): number {
  try {
    const [run] = readdirSync(experimentDir);
    return (
      readFileSync(join(experimentDir, run!, 'epochs.csv'), 'utf8')
        .trim()
        .split('\n').length - 1
    );
  } catch {
    return 0;
  }
}

const resultOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8'));

describe('Slurm executor (a real one-node Slurm)', { skip }, () => {
  before(() => {
    clusterDir = tempDir('fgsm-slurm-');
    const out = execFileSync(join(CLUSTER_SCRIPTS, 'start-cluster.sh'), [clusterDir], { encoding: 'utf8' });
    const conf = out
      .trim()
      .split('\n')
      .at(-1)!
      .replace(/^SLURM_CONF=/, '');
    env = { ...process.env, SLURM_CONF: conf, FGSM_DATA_DIR: realDataDir(), FORCE_COLOR: '0', NO_COLOR: '1' };
  });
  after(() => {
    if (clusterDir) execFileSync(join(CLUSTER_SCRIPTS, 'stop-cluster.sh'), [clusterDir]);
  });

  test('--dry-run prints the batch script (requeue, warning signal to the shell, pass-through options) and submits nothing', () => {
    const dir = tempDir();
    const config = experiment(dir, 'dry', { seeds: '[1, 2, 3]' });
    const results = join(dir, 'results');
    const out = fgsm(
      ['run', config, '--executor', 'slurm', '--results-dir', results, '--dry-run', '--slurm-partition', 'debug'].concat([
        '--slurm-time',
        '00:30:00',
        '--slurm-grace',
        '90',
        '--slurm-arg=--comment=fgsm test',
        '--slurm-arg=--mem=1G',
      ]),
    );
    assert.equal(out.status, 0, out.stderr);
    for (const line of [
      '#!/bin/bash',
      '#SBATCH --array=0-2',
      '#SBATCH --requeue',
      '#SBATCH --open-mode=append',
      '#SBATCH --signal=B:TERM@90',
      '#SBATCH --partition=debug',
      '#SBATCH --time=00:30:00',
      '#SBATCH --comment=fgsm test',
      '#SBATCH --mem=1G',
    ]) {
      assert.ok(out.stdout.split('\n').includes(line), `${line} in:\n${out.stdout}`);
    }
    assert.match(out.stdout, /task \S+\/tasks\.json "\$SLURM_ARRAY_TASK_ID" &/);
    assert.match(out.stdout, /trap 'stop=1; \[ -n "\$fgsm" \] && kill -TERM "\$fgsm" 2>\/dev\/null' TERM\n.* task /);
    assert.match(out.stdout, /if \[ "\$status" -eq 130 \] \|\| \[ "\$status" -eq 143 \]; then\n\s+if \[ "\$\{SLURM_RESTART_COUNT:-0\}" -lt 20 \]/);
    assert.match(out.stdout, /scontrol requeue "\$SLURM_JOB_ID"/);
    assert.match(out.stderr, /\[2\] dry seed 3: submit \(not submitted\)/);
    assert.match(out.stderr, /would run: sbatch --parsable --array=0-2 /);
    assert.ok(!existsSync(results), 'a dry run writes nothing');
    const bad = fgsm(['run', config, '--executor', 'slurm', '--results-dir', results, '--fresh']);
    assert.equal(bad.status, 2);
  });

  test('2 configs × 2 seeds run as one array; report sees all four; the same command again submits nothing', async () => {
    const dir = tempDir();
    const configs = [experiment(dir, 'tiny-a', { seeds: '[1, 2]' }), experiment(dir, 'tiny-b', { seeds: '[1, 2]', train: 1500 })];
    const results = join(dir, 'results');
    const submit = fgsm(['run', ...configs, '--executor', 'slurm', '--results-dir', results]);
    assert.equal(submit.status, 0, submit.stderr);
    assert.match(submit.stderr, /submitted job array \d+ \(tasks 0-3\)/);
    const tasks = await waitForTasks(results, (all) => all.every((t) => t.state === 'done' || t.state === 'failed'), 90);
    assert.deepEqual(
      tasks.map((t) => [t.task.label, t.state]),
      [
        ['tiny-a seed 1', 'done'],
        ['tiny-a seed 2', 'done'],
        ['tiny-b seed 1', 'done'],
        ['tiny-b seed 2', 'done'],
      ],
    );
    const report = fgsm(['report', results]);
    assert.equal(report.status, 0, report.stderr);
    assert.match(report.stdout, /^4 complete run\(s\) under .*: tiny-a \(2 seeds\), tiny-b \(2 seeds\)\n/);
    const again = fgsm(['run', ...configs, '--executor', 'slurm', '--results-dir', results]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /nothing to submit/);
    assert.equal(readdirSync(join(results, 'slurm')).length, 1, 'the same task list, the same submission folder');
  });

  test('a task sent the warning signal mid-run checkpoints, requeues itself and resumes to the numbers of an uninterrupted run', async () => {
    const dir = tempDir();
    // long enough that the signal lands mid-run on a loaded machine too (scancel is slower there)
    const config = experiment(dir, 'preempted', { train: 30000, epochs: 24 });
    const results = join(dir, 'results');
    // the same run, uninterrupted, in a process of its own meanwhile
    const reference = spawn(process.execPath, [BIN, 'run', config, '--results-dir', join(dir, 'reference'), '-q'], { env, stdio: 'ignore' });
    const referenceDone = new Promise<number | null>((resolve) => reference.on('close', resolve));

    assert.equal(fgsm(['run', config, '--executor', 'slurm', '--results-dir', results]).status, 0);
    await until(() => epochsWritten(join(results, 'preempted')) >= 2, 60);
    const epochs = epochsWritten(join(results, 'preempted'));
    const jobId = (
      JSON.parse(readFileSync(join(results, 'slurm', readdirSync(join(results, 'slurm'))[0]!, 'tasks', '0.json'), 'utf8')) as TaskOutcome
    ).jobId!;
    const beforeStatus = fgsm(['status', results]).stdout;
    // what Slurm does --slurm-grace seconds before the time limit (--signal=B:TERM@…): TERM to the batch shell
    // the signal is delivered at once, but scancel may hear "try again later" and retry every 5 s until it
    // reaches the requeued task too: it is given 3 s
    const elementId = execFileSync('squeue', ['--noheader', '--format=%A', `--jobs=${jobId}`], { env, encoding: 'utf8' }).trim();
    spawnSync('scancel', ['--batch', '--signal=TERM', elementId], { env, timeout: 3000 });
    const [requeued] = await waitForTasks(results, ([t]) => t!.state !== 'running', 60);
    assert.equal(requeued!.state, 'pending', `signalled after epoch ${epochs}: ${requeued!.state}`);
    const afterStatus = fgsm(['status', results]).stdout;
    assert.match(requeued!.detail ?? '', /requeued after a checkpoint \(restart 1\)/);
    const stoppedAt = requeued!.run!.epoch!;
    assert.ok(stoppedAt < 24, `stopped at epoch ${stoppedAt}, before the end`);
    const [done] = await waitForTasks(results, ([t]) => t!.state === 'done' || t!.state === 'failed', 90);
    assert.equal(done!.state, 'done', done!.detail ?? '');
    assert.equal(done!.outcome!.restarts, 1);
    assert.equal(await referenceDone, 0);

    const resumed = resultOf(done!.run!.dir);
    const [referenceRun] = readdirSync(join(dir, 'reference', 'preempted'));
    const uninterrupted = resultOf(join(dir, 'reference', 'preempted', referenceRun!));
    assert.deepEqual(resumed.metrics.clean, uninterrupted.metrics.clean);
    assert.deepEqual(resumed.metrics.fgsm, uninterrupted.metrics.fgsm);
    assert.equal(resumed.metrics.training.epochs, uninterrupted.metrics.training.epochs);
    const log = readFileSync(join(results, 'slurm', readdirSync(join(results, 'slurm'))[0]!, 'logs', 'task-0.log'), 'utf8');
    assert.match(log, /interrupted at a checkpoint: requeued, to resume \(restart 0 of at most 20\)/);
    assert.match(log, /resuming preempted/);
    console.log(`fgsm status before the signal:\n${beforeStatus}\nafter it:\n${afterStatus}`);
    const numbers = (r: typeof resumed) =>
      `clean error ${r.metrics.clean.error}, confidence ${r.metrics.clean.meanConfidence}; FGSM error ${Object.values(
        r.metrics.fgsm as Record<string, { epsilon: number; error: number; meanConfidenceOnMistakes: number }>,
      )
        .map((f) => `ε=${f.epsilon}: ${f.error} (confidence on mistakes ${f.meanConfidenceOnMistakes})`)
        .join(', ')}`;
    console.log(`stopped after epoch ${stoppedAt}, resumed:\n  ${numbers(resumed)}\nuninterrupted:\n  ${numbers(uninterrupted)}`);
  });

  test('a task whose config names data that is not there fails once, is not requeued, and fgsm status says why', async () => {
    const dir = tempDir();
    const config = experiment(dir, 'no-data', { data: `  dir: ${join(dir, 'no-such-folder')}` });
    const results = join(dir, 'results');
    assert.equal(fgsm(['run', config, '--executor', 'slurm', '--results-dir', results]).status, 0);
    const [failed] = await waitForTasks(results, ([t]) => t!.state === 'failed', 60);
    assert.match(failed!.detail!, /no-such-folder/);
    assert.equal(failed!.outcome!.exitStatus, 2);
    await sleep(3000); // time enough for a requeue to show
    const [still] = arrays(results)[0]!.tasks;
    assert.equal(still!.state, 'failed', 'not requeued');
    assert.equal(still!.outcome!.restarts, 0);
    const log = readFileSync(join(results, 'slurm', readdirSync(join(results, 'slurm'))[0]!, 'logs', 'task-0.log'), 'utf8');
    assert.equal(log.match(/^== .* array task 0/gm)?.length, 1, log);
    const status = fgsm(['status', results]);
    assert.match(status.stdout, /^task 0 \(no-data\) failed: .*no-such-folder/m);
    const plan = fgsm(['run', config, '--executor', 'slurm', '--results-dir', results, '--dry-run']);
    assert.match(plan.stderr, /\[0\] no-data: submit \(failed\)/, 'the same command resubmits it, once fixed');
  });
});
