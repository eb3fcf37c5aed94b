/**
 * node dist/scripts/webgpu-parity.js [OUT [CONFIG...]]: every paper config (or the CONFIGs given) that trains a model (configs/*.yaml but the experiments over runs), cut
 * to the same small size by overrides (PARITY_OVERRIDES: the first 5,000 training and 1,000 test examples, four
 * epochs, no early stopping or stage 2, 1,000 rubbish inputs, one seed), trained and evaluated with `fgsm run` on wasm and on
 * webgpu (lavapipe without a GPU), then a Markdown table of their figures side by side: which path trained and
 * attacked on webgpu, the clean test error, FGSM at ε = .25 with both softmax gradients, and the rubbish inputs'
 * error. Runs go under OUT (default ../runs/webgpu-parity), one folder per backend; a rerun reuses finished runs.
 *
 * The configs whose dropout comes from the counter-based stream train on the WebGPU engine, which draws wasm's
 * masks: their figures must be equal. The others train on tfjs's webgpu ops, whose float32 sums differ from
 * wasm's in order, so the two trainings drift apart within rounding and their figures by a little. The experiments
 * over runs (transfer, agreement, ensemble) train nothing of their own and are left out.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { documentKind, loadExperiment } from '../src/config/load.js';
import type { ResultRecord } from '../src/results/record.js';

const PARITY_OVERRIDES = [
  'data.limit.train=5000',
  'data.limit.validation=500',
  'data.limit.test=1000',
  'training.epochs=4',
  'training.earlyStopping.metric=none',
  'training.stage2.mode=none',
  'evaluation.rubbish.samples=1000',
  'seeds=null',
];

const BACKENDS = ['wasm', 'webgpu'] as const;

/** The newest complete result.json of `experiment` under `dir`, or null. */
function resultOf(dir: string, experiment: string): ResultRecord | null {
  const runs = join(dir, experiment);
  if (!existsSync(runs)) return null;
  const finished = readdirSync(runs)
    .sort()
    .reverse()
    .map((run) => join(runs, run, 'result.json'))
    .find((file) => existsSync(file));
  return finished ? (JSON.parse(readFileSync(finished, 'utf8')) as ResultRecord) : null;
}

const percent = (value: number | null | undefined): string => (value == null ? '—' : `${(value * 100).toFixed(2)}%`);

function main(): void {
  const out = resolve(process.argv[2] ?? '../runs/webgpu-parity');
  const chosen = process.argv.slice(3);
  const configs = (
    chosen.length > 0
      ? chosen
      : readdirSync('configs')
          .filter((file) => file.endsWith('.yaml'))
          .map((file) => join('configs', file))
  ).filter((file) => documentKind(file) === 'experiment');
  const rows: string[] = [];
  for (const file of configs) {
    const { config } = loadExperiment(file, PARITY_OVERRIDES);
    const records = BACKENDS.map((backend) => {
      const dir = join(out, backend);
      const done = resultOf(dir, config.name);
      if (done) return done;
      const started = Date.now();
      const args = [
        'bin/fgsm.js',
        'run',
        file,
        '--backend',
        backend,
        '--results-dir',
        dir,
        '--quiet',
        ...PARITY_OVERRIDES.flatMap((o) => ['--set', o]),
      ];
      const run = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, FGSM_THREADS: '1' } });
      console.error(`${file} on ${backend}: exit ${run.status} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      if (run.status !== 0) console.error(run.stderr.slice(-2000));
      return resultOf(dir, config.name);
    });
    const [wasm, webgpu] = records;
    const figures = (record: ResultRecord | null) =>
      record
        ? [
            record.metrics.clean.error,
            record.metrics.fgsm['0.25']?.error,
            record.metrics.fgsmOtherGradient?.['0.25']?.error,
            record.metrics.rubbish?.error,
          ]
        : [null, null, null, null];
    const [ours, theirs] = [figures(wasm!), figures(webgpu!)];
    const cells = ours.map((value, i) => {
      const other = theirs[i];
      if (value == null || other == null) return `${percent(value)} / ${percent(other)}`;
      const delta = (other - value) * 100;
      return `${percent(value)} / ${percent(other)}${delta === 0 ? ' (=)' : ` (${delta > 0 ? '+' : '−'}${Math.abs(delta).toFixed(2)})`}`;
    });
    const paths = webgpu ? `${webgpu.provenance.trainer ?? 'tfjs'}, ${webgpu.provenance.attacker ?? 'tfjs'}` : 'did not finish';
    rows.push(`| ${config.name} | ${paths} | ${cells.join(' | ')} |`);
  }
  console.log(
    [
      `Every paper config that trains a model, with ${PARITY_OVERRIDES.map((o) => `\`${o}\``).join(', ')}: wasm / webgpu (Δ in points).`,
      '',
      '| config | webgpu trained, attacked on | clean error | FGSM ε=.25 | FGSM ε=.25, other gradient | rubbish inputs |',
      '|---|---|---:|---:|---:|---:|',
      ...rows,
    ].join('\n'),
  );
}

main();
