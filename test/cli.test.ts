import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { BIN, fgsmCli, tempDir } from './helpers.js';

const fgsm = (args: string[], cwd = process.cwd(), env: NodeJS.ProcessEnv = {}, options: SpawnSyncOptions = {}) =>
  fgsmCli(args, env, { ...options, cwd });

const SMALL = (name: string, extra = '') => `name: ${name}
seed: 3
backend: wasm
data:
  source: embedded
  limit: { train: 1000, validation: 300, test: 300 }
model:
  kind: softmax
  maxColumnNorm: 1.9365
training:
  epochs: 3
  earlyStopping: { metric: validation-error, patience: 5 }
attack:
  epsilons: [0.1, 0.25]
evaluation:
  rubbish: { samples: 500 }
  figureExamples: 4
claims: [s4.softmax.fgsm, s5.logreg37.clean]
${extra}`;

/** A run long enough to be interrupted: 7,000 training examples for `epochs` epochs, no early stop before. */
function longRun(name: string, epochs: number): { dir: string; config: string; results: string } {
  const dir = tempDir();
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    SMALL(name).replace('train: 1000', 'train: 7000').replace('epochs: 3', `epochs: ${epochs}`).replace('patience: 5', `patience: ${epochs}`),
  );
  return { dir, config, results: join(dir, 'results') };
}

function onlyRun(results: string, experiment: string): string {
  const runs = readdirSync(join(results, experiment));
  assert.equal(runs.length, 1, `runs: ${runs}`);
  return join(results, experiment, runs[0]!);
}

describe('fgsm CLI end to end', () => {
  test('run writes the whole run folder and prints the paper table; report --json and --check read it', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'small.yaml'), SMALL('small'));
    const run = fgsm(['run', join(dir, 'small.yaml'), '--results-dir', join(dir, 'results'), '--set', 'training.epochs=2']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /s4\.softmax\.fgsm/);
    assert.match(run.stdout, /NOT comparable to the paper/);
    assert.match(run.stderr, /backend: wasm — wasm was requested/);

    const folder = onlyRun(join(dir, 'results'), 'small');
    for (const file of [
      'result.json',
      'report.md',
      'epochs.csv',
      'examples.png',
      'training-curve.svg',
      'model/model.json',
      'model/weights.bin',
      'checkpoints/checkpoint.json',
      'status.json',
    ]) {
      assert.ok(existsSync(join(folder, file)), `missing ${file}`);
    }
    assert.ok(!readdirSync(folder).some((f) => f.endsWith('.tmp')), 'no temporary files are left');
    const result = JSON.parse(readFileSync(join(folder, 'result.json'), 'utf8'));
    assert.equal(result.config.training.epochs, 2);
    assert.deepEqual(result.overrides, ['training.epochs=2']);
    assert.equal(result.metrics.training.epochs, 2);
    assert.equal(result.metrics.clean.n, 300);
    assert.equal(result.metrics.trainingSet.n, 1000, 'the training-set error is measured on the training split');
    assert.ok(result.metrics.trainingSet.error >= 0 && result.metrics.trainingSet.error < 0.9);
    assert.match(readFileSync(join(folder, 'report.md'), 'utf8'), /error on the 1000 training examples without dropout \d+\.\d+%/);
    assert.deepEqual(Object.keys(result.metrics.fgsm), ['0.1', '0.25']);
    assert.ok(result.metrics.fgsm['0.25'].error > result.metrics.clean.error);
    assert.equal(result.metrics.fgsm['0.25'].maxPerturbation.toFixed(4), '0.2500');
    assert.equal(result.metrics.fgsm['0.25'].gradient, 'standard');
    assert.equal(result.metrics.fgsmOtherGradient['0.25'].gradient, 'stable');
    assert.equal(result.metrics.fgsmOtherGradient['0.25'].n, 300);
    assert.ok(Number.isInteger(result.metrics.fgsm['0.25'].saturated));
    assert.equal(result.openChoices.attackSoftmaxGradient, 'standard');
    assert.equal(result.metrics.rubbish.samples, 500);
    assert.equal(result.data.kind, 'embedded');
    assert.deepEqual(result.data.counts, { train: 1000, validation: 300, test: 300 });
    assert.equal(result.provenance.backend.name, 'wasm');
    assert.equal(result.openChoices.clip, 'none');
    assert.equal(result.openChoices.fgsmLabels, 'true');
    assert.match(result.provenance.tfjs['@tensorflow/tfjs-core'], /^\d+\.\d+\.\d+$/);
    assert.equal(JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')).state, 'complete');
    assert.equal(readFileSync(join(folder, 'epochs.csv'), 'utf8').trim().split('\n').length, 3);
    assert.deepEqual([...readFileSync(join(folder, 'examples.png')).subarray(1, 4)], [...Buffer.from('PNG')]);
    assert.match(readFileSync(join(folder, 'training-curve.svg'), 'utf8'), /^<svg/);
    assert.match(readFileSync(join(folder, 'report.md'), 'utf8'), /## Paper vs ours[\s\S]*s4\.softmax\.fgsm/);
    assert.match(readFileSync(join(folder, 'report.md'), 'utf8'), /\| FGSM ε=0\.25 \| stable \| 300 \|[\s\S]*Saturated: \d+ of 300/);

    const json = fgsm(['report', join(dir, 'results'), '--json']);
    assert.equal(json.status, 0, json.stderr);
    const rows = JSON.parse(json.stdout);
    const fgsmRow = rows.find((r: { id: string; quantity: string }) => r.id === 's4.softmax.fgsm' && r.quantity === 'FGSM ε=.25 error');
    assert.equal(fgsmRow.paper, 99.9);
    assert.ok(Math.abs(fgsmRow.ours - 100 * result.metrics.fgsm['0.25'].error) < 1e-9);
    assert.ok(Math.abs(fgsmRow.oursStableGradient - 100 * result.metrics.fgsmOtherGradient['0.25'].error) < 1e-9);
    assert.ok(!existsSync(join(dir, 'results', 'report.md')), 'report never writes into the folder it reads');
    const out = join(dir, 'report-out');
    assert.equal(fgsm(['report', join(dir, 'results'), '--out', out]).status, 0);
    assert.ok(existsSync(join(out, 'report.md')) && existsSync(join(out, 'report.csv')));

    const sweep = fgsm(['sweep', join(dir, 'small.yaml'), '--eps', '0:0.2:0.1', '--results-dir', join(dir, 'results'), '--set', 'training.epochs=2']);
    assert.equal(sweep.status, 0, sweep.stderr);
    assert.match(sweep.stderr, /using the trained model of/);
    const sweepDir = /→ (.*)\/sweep\.csv/.exec(sweep.stdout)![1]!;
    assert.equal(dirname(dirname(sweepDir)), folder, 'a sweep is kept under the run whose model it attacks');
    const lines = readFileSync(join(sweepDir, 'sweep.csv'), 'utf8').trim().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(',')[0]),
      ['epsilon', '0', '0.1', '0.2'],
    );
    assert.equal(Number(lines[1]!.split(',')[1]), result.metrics.clean.error, 'FGSM at ε = 0 is the clean error');
    assert.equal(Number(lines[2]!.split(',')[1]), result.metrics.fgsm['0.1'].error, 'the sweep agrees with the run');
    const other = lines[0]!.split(',').indexOf('other_gradient_error');
    assert.equal(Number(lines[2]!.split(',')[other]), result.metrics.fgsmOtherGradient['0.1'].error, 'and so does its other gradient');
    assert.ok(existsSync(join(sweepDir, 'sweep.svg')));
    assert.deepEqual(JSON.parse(readFileSync(join(sweepDir, 'sweep.json'), 'utf8')).epsilons, [0, 0.1, 0.2]);

    const pgdArgs = ['sweep', join(dir, 'small.yaml'), '--eps', '0.1', '--results-dir', join(dir, 'results'), '--set', 'training.epochs=2'];
    const pgd = fgsm([...pgdArgs, '--attack', 'pgd', '--steps', '5', '--step-size', '0.05']);
    assert.equal(pgd.status, 0, pgd.stderr);
    const pgdDir = /→ (.*)\/sweep\.csv/.exec(pgd.stdout)![1]!;
    assert.equal(dirname(dirname(pgdDir)), folder, 'the same trained model, attacked by PGD');
    assert.notEqual(pgdDir, sweepDir);
    const { attack } = JSON.parse(readFileSync(join(pgdDir, 'sweep.json'), 'utf8'));
    assert.deepEqual([attack.method, attack.steps, attack.stepSize, attack.randomStart, attack.restarts], ['pgd', 5, 0.05, true, 1]);
    const refused = fgsm([...pgdArgs, '--restarts', '2']);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /sweep with fgsm: .*restarts/);
    assert.equal(fgsm(['sweep', join(dir, 'small.yaml'), '--eps', '0.3:0.1:0.1']).status, 2);

    // numbers on the embedded subset are never evidence for the paper: --check must fail on every must-hold claim
    const check = fgsm(['report', join(dir, 'results'), '--check']);
    assert.equal(check.status, 2);
    assert.match(check.stderr, /2 must-hold claim\(s\) failed:/);
    assert.match(
      check.stderr,
      /s5\.logreg37\.clean clean test error: ours \d+\.\d+ \(on data not comparable with the paper's\), must hold within ±1 of paper/,
    );
  });

  test('--dry-run without --executor slurm is refused before any work: it would have trained', () => {
    const { config, results } = longRun('dry', 1);
    const out = fgsm(['run', config, '--results-dir', results, '--dry-run']);
    assert.equal(out.status, 2, out.stderr);
    assert.match(out.stderr, /--dry-run shows what --executor slurm would submit; these runs would execute in-process/);
    assert.ok(!existsSync(results), 'nothing was written');
  });

  test('a bad config fails before any work with every problem and its line', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.yaml'), SMALL('bad').replace('epochs: 3', 'epochs: 0').replace('kind: softmax', 'kind: softmax\n  depth: 2'));
    const run = fgsm(['run', join(dir, 'bad.yaml'), '--results-dir', join(dir, 'results')]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /bad\.yaml:12:3: training\.epochs: Too small: expected number to be >=1; found 0/);
    assert.match(run.stderr, /bad\.yaml:9:3: model\.depth: unknown key "depth"/);
    assert.ok(!existsSync(join(dir, 'results')));
  });

  test('kill -9 during training, rerun the same command: it resumes and gives the uninterrupted numbers', async () => {
    const { dir, config, results } = longRun('long', 40);
    const child = spawn(process.execPath, [BIN, 'run', config, '--results-dir', results, '-q'], { stdio: 'ignore' });
    const killed = await new Promise<boolean>((resolve) => {
      const poll = setInterval(() => {
        const exp = join(results, 'long');
        const runs = existsSync(exp) ? readdirSync(exp) : [];
        if (runs.length && existsSync(join(exp, runs[0]!, 'checkpoints', 'checkpoint.json'))) {
          clearInterval(poll);
          resolve(child.kill('SIGKILL'));
        }
      }, 10);
      child.on('exit', () => {
        clearInterval(poll);
        resolve(false);
      });
    });
    assert.ok(killed, 'the run finished before it could be killed');
    await new Promise((resolve) => child.on('exit', resolve));
    const folder = onlyRun(results, 'long');
    assert.notEqual(JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')).state, 'complete');

    const resumed = fgsm(['run', config, '--results-dir', results]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming from the checkpoint after stage 1 epoch \d+/);
    assert.equal(onlyRun(results, 'long'), folder, 'the resumed run continues in the same folder');

    const fresh = fgsm(['run', config, '--results-dir', join(dir, 'fresh'), '-q']);
    assert.equal(fresh.status, 0, fresh.stderr);
    const a = JSON.parse(readFileSync(join(folder, 'result.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(onlyRun(join(dir, 'fresh'), 'long'), 'result.json'), 'utf8'));
    assert.ok(a.metrics.training.resumedFromEpoch.epoch >= 1);
    // the total counts the killed invocation's epochs too: every epoch of epochs.csv
    const epochSeconds = readFileSync(join(folder, 'epochs.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((row) => Number(row.split(',').at(-1)));
    assert.ok(epochSeconds.length > a.metrics.training.epochs - a.metrics.training.resumedFromEpoch.epoch);
    assert.ok(Math.abs(a.metrics.training.totalSeconds - epochSeconds.reduce((sum, s) => sum + s, 0)) < 1e-6);
    assert.match(
      readFileSync(join(folder, 'report.md'), 'utf8'),
      /Training time [\d.]+ s over all invocations \([\d.]+ s in this one, resumed after stage 1 epoch \d+\)/,
    );
    assert.deepEqual(a.metrics.clean, b.metrics.clean);
    assert.deepEqual(a.metrics.fgsm, b.metrics.fgsm);
    assert.deepEqual(a.metrics.rubbish, b.metrics.rubbish);
    assert.equal(a.metrics.training.chosenEpoch, b.metrics.training.chosenEpoch);
  });

  test('SIGINT stops the run within its epoch, keeping the epochs before it, marks the run interrupted, and exits 130', async () => {
    const { config, results } = longRun('sigint', 200);
    const child = spawn(process.execPath, [BIN, 'run', config, '--results-dir', results], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (/epoch 2\/200/.test(stderr) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /SIGINT: stopping within a few minibatches; every finished epoch is kept/);
    assert.match(stderr, /interrupted (during|after) stage 1 epoch \d+/);
    const folder = onlyRun(results, 'sigint');
    assert.equal(JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')).state, 'interrupted');

    // peek evaluates the unfinished run at its best epoch so far, without training or finishing it
    const peek = fgsm(['peek', config, '--results-dir', results, '-q', '--eps', '0.05,0.25']);
    assert.equal(peek.status, 0, peek.stderr);
    const provisional = JSON.parse(readFileSync(join(folder, 'provisional', 'result.json'), 'utf8'));
    assert.deepEqual(Object.keys(provisional.metrics.fgsm), ['0.05', '0.25'], 'peek --eps attacks at its own ε');
    assert.match(provisional.provisional, /^training unfinished: evaluated at stage 1 epoch \d+, with the parameters of epoch \d+$/);
    assert.ok(provisional.metrics.clean.error < 0.5);
    assert.ok(existsSync(join(folder, 'provisional', 'training-curve.svg')));
    assert.equal(JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')).state, 'interrupted');
  });

  test('run --jobs 2: each config and seed in its own process, output lines labelled, same numbers as in-process', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'one.yaml'), SMALL('one'));
    writeFileSync(join(dir, 'two.yaml'), SMALL('two', 'seeds: [4, 5]'));
    const results = join(dir, 'results');
    const run = fgsm(['run', join(dir, 'one.yaml'), join(dir, 'two.yaml'), '--jobs', '2', '--results-dir', results, '--set', 'training.epochs=2']);
    assert.equal(run.status, 0, run.stderr);
    for (const label of ['one', 'two seed 4', 'two seed 5']) assert.match(run.stdout, new RegExp(`^\\[${label}\\] .*s4\\.softmax\\.fgsm`, 'm'));
    assert.equal(readdirSync(join(results, 'two')).length, 2);
    const inProcess = fgsm(['run', join(dir, 'one.yaml'), '--results-dir', join(dir, 'alone'), '--set', 'training.epochs=2', '-q']);
    assert.equal(inProcess.status, 0, inProcess.stderr);
    const a = JSON.parse(readFileSync(join(onlyRun(results, 'one'), 'result.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(onlyRun(join(dir, 'alone'), 'one'), 'result.json'), 'utf8'));
    assert.equal(a.config.training.epochs, 2);
    assert.deepEqual(a.metrics.fgsm, b.metrics.fgsm);

    const broken = fgsm([
      'run',
      join(dir, 'one.yaml'),
      join(dir, 'two.yaml'),
      '--jobs',
      '2',
      '--results-dir',
      results,
      '--set',
      'data.source=dir',
      '--data-dir',
      join(dir, 'nowhere'),
      '-q',
    ]);
    assert.equal(broken.status, 2);
    assert.match(broken.stderr, /3 of 3 runs failed: one \(exit status 2\), two seed 4 \(exit status 2\), two seed 5 \(exit status 2\)/);
  });

  test('data verify and doctor report what they find', () => {
    const dataDir = process.env.FGSM_DATA_DIR;
    if (dataDir) {
      const ok = fgsm(['data', 'verify', '--data-dir', dataDir]);
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal((ok.stdout.match(/^ok /gm) ?? []).length, 4);
    }
    const empty = fgsm(['data', 'verify', '--data-dir', tempDir()]);
    assert.equal(empty.status, 2);
    assert.match(empty.stdout, /BAD .*train-images-idx3-ubyte\n\s+missing: neither train-images-idx3-ubyte\.gz nor train-images-idx3-ubyte/);
    const doctor = fgsm(['doctor']);
    assert.equal(doctor.status, 0, doctor.stderr);
    assert.match(doctor.stdout, /loads\s+wasm/);
    assert.match(doctor.stdout, /auto would use: (tensorflow|wasm)/);
  });
});

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const isRoot = process.getuid?.() === 0;

/** Mounts a tmpfs of `options` at `dir` (root only); false when this machine does not allow it. */
function mountTmpfs(dir: string, options: string): boolean {
  return isRoot && spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]).status === 0;
}

describe('user errors: one message with the path, the cause and the fix, exit 2', () => {
  test('a results folder under a file, without write permission, or on a read-only disk', (t) => {
    const dir = tempDir();
    chmodSync(dir, 0o755); // readable by the unprivileged user below
    const config = join(dir, 'small.yaml');
    writeFileSync(config, SMALL('small'));
    writeFileSync(join(dir, 'a-file'), '');
    const underFile = fgsm(['run', config, '--results-dir', join(dir, 'a-file', 'results'), '-q']);
    assert.equal(underFile.status, 2, underFile.stderr);
    const file = escape(join(dir, 'a-file'));
    assert.match(
      underFile.stderr,
      new RegExp(
        `^fgsm: cannot write ${file}/results/small(/\\S+)?: ${file} is a file, not a folder\nhint: choose another folder, or move ${file} away\n$`,
      ),
    );

    // root may write anywhere: the same failure as an unprivileged user (nobody), as any other user meets it
    const locked = join(dir, 'locked');
    mkdirSync(locked, { mode: 0o555 });
    const asUser = isRoot ? { uid: 65534, gid: 65534 } : {};
    if (fgsm(['--version'], process.cwd(), {}, asUser).status !== 0) {
      t.diagnostic('permission case skipped: user nobody cannot run fgsm from this checkout');
    } else {
      const denied = fgsm(['run', config, '--results-dir', join(locked, 'results'), '-q'], process.cwd(), {}, asUser);
      assert.equal(denied.status, 2, denied.stderr);
      assert.match(
        denied.stderr,
        new RegExp(
          `^fgsm: cannot write ${escape(locked)}/results/small(/\\S+)?: permission denied: ${escape(locked)} is not writable by this user \\(uid \\d+\\)\nhint: choose a folder you can write to, or give this user write permission on ${escape(locked)}\n$`,
        ),
      );
    }

    const readOnly = join(dir, 'read-only');
    mkdirSync(readOnly);
    if (!mountTmpfs(readOnly, 'ro,size=1m')) return t.skip('read-only case needs root to mount a tmpfs');
    try {
      const rofs = fgsm(['run', config, '--results-dir', join(readOnly, 'results'), '-q']);
      assert.equal(rofs.status, 2, rofs.stderr);
      assert.match(rofs.stderr, new RegExp(`: ${escape(readOnly)} is on a read-only file system\nhint: choose a folder on a writable disk\n$`));
    } finally {
      spawnSync('umount', [readOnly]);
    }
  });

  test('a full disk: the message, the last checkpoint kept, and the same command resumes once there is space', (t) => {
    const dir = tempDir();
    const config = join(dir, 'small.yaml');
    writeFileSync(config, SMALL('small'));
    const disk = join(dir, 'disk');
    mkdirSync(disk);
    // room for the first epoch's checkpoint (94 kB of tensors) and the small files, not for a second one beside it
    if (!mountTmpfs(disk, 'size=150k')) return t.skip('needs root to mount a small tmpfs');
    try {
      const full = fgsm(['run', config, '--results-dir', disk, '-q']);
      assert.equal(full.status, 2, full.stderr);
      assert.match(
        full.stderr,
        new RegExp(
          `^fgsm: cannot write ${escape(disk)}/small/\\S+: no space left on the disk holding it \\(\\d+ kB free\\)\nhint: free some space there or choose another folder, then rerun the same command: files already written are kept, and an unfinished run resumes from its last checkpoint\n$`,
        ),
      );
      const run = onlyRun(disk, 'small');
      const checkpoints = readdirSync(join(run, 'checkpoints'));
      assert.deepEqual(checkpoints, ['checkpoint.json', 'epoch-000001.bin'], 'the last complete checkpoint, and no temporary file');
      assert.equal(spawnSync('mount', ['-o', 'remount,size=8m', disk]).status, 0);
      const resumed = fgsm(['run', config, '--results-dir', disk]);
      assert.equal(resumed.status, 0, resumed.stderr);
      assert.match(resumed.stderr, /resuming from the checkpoint after stage 1 epoch 1 /);
      assert.equal(onlyRun(disk, 'small'), run);
    } finally {
      spawnSync('umount', [disk]);
    }
  });
});

describe('CLI conventions', () => {
  test('--version and -V; usage errors exit 2; FGSM_THREADS=x --help prints help; validate with no files is an error', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) assert.deepEqual(fgsm([flag]), { status: 0, stdout: `${version}\n`, stderr: '' });
    for (const args of [
      [],
      ['frob'],
      ['run'],
      ['run', 'x.yaml', '--frob'],
      ['run', 'x.yaml', '--backend', 'nope'],
      ['run', 'x.yaml', '--threads', 'x'],
    ]) {
      const usage = fgsm(args);
      assert.equal(usage.status, 2, `fgsm ${args.join(' ')}: ${usage.stderr}`);
      assert.match(usage.stderr, /Usage: fgsm/);
    }
    const help = fgsm(['--help'], process.cwd(), { FGSM_THREADS: 'x' });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: fgsm /);
    const threads = fgsm(['run', 'configs/ci/softmax.yaml'], process.cwd(), { FGSM_THREADS: 'x' });
    assert.equal(threads.status, 2);
    assert.match(threads.stderr, /FGSM_THREADS: expected a whole number ≥ 1 or "auto", found "x"/);
    const validate = fgsm(['validate']);
    assert.equal(validate.status, 2);
    assert.match(validate.stderr, /^fgsm: validate: no experiment files given\nhint: name them/);
  });

  test('NO_COLOR and --no-color turn colour off, even with FORCE_COLOR', () => {
    const empty = tempDir();
    const verify = (args: string[], env: NodeJS.ProcessEnv) => {
      const out = fgsm(['data', 'verify', '--data-dir', empty, ...args], process.cwd(), { FORCE_COLOR: '1', NO_COLOR: '', ...env });
      assert.equal(out.status, 2);
      return out.stdout + out.stderr;
    };
    assert.match(verify([], {}), /\x1b\[/);
    assert.doesNotMatch(verify([], { NO_COLOR: '1' }), /\x1b\[/);
    assert.doesNotMatch(verify(['--no-color'], {}), /\x1b\[/);
  });
});
