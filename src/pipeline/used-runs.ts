import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { initBackend } from '../backend/select.js';
import type { UseConfig } from '../config/cross-run.js';
import type { LoadedCrossRun, LoadedExperiment } from '../config/load.js';
import type { AttackConfig } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { makeSplits, type Split } from '../data/dataset.js';
import { countsOf, dataIdentity, type DataIdentity } from '../data/identity.js';
import { cacheDir, explicitDataDir, resolveMnist } from '../data/source.js';
import { digest } from '../data/verify.js';
import type { Engines, NamedModel } from '../eval/transfer.js';
import { engineAttacks } from './engine-attack.js';
import { otherGradient, type SoftmaxGradient } from '../models/classifier.js';
import { loadModel } from '../models/weights-io.js';
import { collectProvenance } from '../results/provenance.js';
import { invocationTimes, type CrossRunResult, type ResultRecord, type UsedRun } from '../results/record.js';
import { latestCompleteRun, latestUnfinishedRun, openRun, readStatus, writeStatus } from '../results/run-dir.js';
import { loadForRun, runExperiment, type RunOptions } from './experiment.js';

/**
 * What every experiment over runs (transfer, agreement, ensemble) does around its own measurement: find the trained
 * run of each experiment it uses (the one pinned, or the newest complete one on this data; unfinished runs and runs
 * on other data are refused, or trained with --train-missing), check that they share one test set, load their
 * models, and write a run folder of its own whose result.json records exactly which runs it used.
 */

export interface CrossRunOptions extends Pick<RunOptions, 'backend' | 'threads' | 'dataDir' | 'resultsDir' | 'progress' | 'signal'> {
  /** Train the experiments that have no complete run on this data instead of refusing. */
  trainMissing: boolean;
}

/** One trained run an experiment over runs needs: an experiment file, the overrides that make its config, a pin. */
export interface WantedRun {
  name: string;
  file: string;
  /** As `fgsm run` makes a seed's config: seed=N, seeds=null. */
  overrides: string[];
  /** A run id to use instead of the newest complete run. */
  run: string | null;
}

/** The runs of a `uses:` map, one per name. */
export function wantedRuns(uses: Record<string, UseConfig>): WantedRun[] {
  return Object.entries(uses).map(([name, use]) =>
    typeof use === 'string' ? { name, file: use, overrides: [], run: null } : { name, file: use.config, overrides: [], run: use.run },
  );
}

/** The experiment as `fgsm run` resolved it for this run: the file, --backend, the run's overrides. */
const loadWanted = (wanted: WantedRun, options: CrossRunOptions): LoadedExperiment =>
  loadForRun(wanted.file, { backend: options.backend, overrides: wanted.overrides });

/** The run used for `wanted`: the one pinned, or the newest complete one on this data. */
async function findRun(wanted: WantedRun, loaded: LoadedExperiment, data: DataIdentity, options: CrossRunOptions): Promise<string> {
  const { config, configHash } = loaded;
  const { name } = wanted;
  const experimentDir = join(options.resultsDir, config.name);
  if (wanted.run) {
    const dir = join(experimentDir, wanted.run);
    const status = readStatus(dir);
    if (!existsSync(join(dir, 'result.json')) || (status && status.state !== 'complete')) {
      throw new FgsmError(
        `${name}: run ${dir} is not a complete run (${status ? status.state : 'no result.json'})`,
        'name a finished run, or leave run: out to take the newest complete one',
      );
    }
    const recorded = (JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as ResultRecord).data;
    const id = recorded.identity?.id ?? dataIdentity(recorded, recorded.counts).id;
    if (id !== data.id) {
      throw new FgsmError(
        `${name}: run ${dir} was trained on other data than this invocation reads (${data.description})`,
        'point --data-dir / FGSM_DATA_DIR at the data it was trained on',
      );
    }
    return dir;
  }
  const complete = latestCompleteRun(options.resultsDir, config.name, configHash, data.id);
  if (complete) return complete;
  const command = `fgsm run ${wanted.file}${wanted.overrides.map((o) => ` --set ${o}`).join('')}`;
  if (options.trainMissing) {
    options.progress.line(`${name}: no complete run of ${config.name} on this data; training it (--train-missing)`);
    return (await runExperiment(wanted.file, { ...options, overrides: wanted.overrides, fresh: false })).dir;
  }
  const unfinished = latestUnfinishedRun(options.resultsDir, config.name, configHash);
  throw new FgsmError(
    `${name}: no complete run of ${config.name} (config hash ${configHash}) on ${data.description} under ${options.resultsDir}${unfinished ? `; ${join(experimentDir, unfinished)} has not finished` : ''}`,
    `run \`${command}\` first (or finish it), pass --train-missing to train it now, or pin a run: { config: …, run: <id> }`,
  );
}

/** What a kind measures on the loaded models: its metrics and the files it writes beside result.json (name → text). */
export interface Measurement<Metrics> {
  metrics: Metrics;
  files: Record<string, string>;
}

/**
 * Runs one experiment over runs: `measure` gets the used models (in the order of `wanted`), the shared test set and
 * the WebGPU engine of each model it runs on (none off webgpu); the record is `format` with its metrics. The models
 * and engines are disposed when it returns.
 */
export async function runOverRuns<R extends CrossRunResult>(
  loaded: LoadedCrossRun<R['config']>,
  wanted: readonly WantedRun[],
  format: R['format'],
  options: CrossRunOptions,
  measure: (models: NamedModel[], test: Split, engines: Engines) => Promise<Measurement<R['metrics']>>,
): Promise<{ record: R; dir: string }> {
  const started = new Date();
  const { config } = loaded;
  const progress = options.progress;
  const experiments = wanted.map((w) => ({ wanted: w, loaded: loadWanted(w, options) }));
  const first = experiments[0]!.loaded.config;
  const raw = await resolveMnist({
    source: first.data.source,
    explicit: explicitDataDir(options.dataDir, first.data.dir),
    cache: cacheDir(),
    progress,
  });
  // only the test split and the data identity are kept: an ensemble's twelve sets of training splits would not fit
  const withData = experiments.map((experiment) => {
    const splits = makeSplits(raw, experiment.loaded.config.data);
    const counts = countsOf(splits);
    return { ...experiment, test: splits.test, classes: splits.classes, counts, data: dataIdentity(raw.provenance, counts) };
  });
  const reference = withData[0]!;
  for (const other of withData) {
    if (other.test.n !== reference.test.n || other.classes.join() !== reference.classes.join()) {
      throw new FgsmError(
        `${other.wanted.name} (${other.loaded.config.name}) is evaluated on ${other.test.n} test examples of digits [${other.classes}], ${reference.wanted.name} on ${reference.test.n} of [${reference.classes}]`,
        `${config.kind} compares models on one test set: use experiments with the same data.digits and data.limit.test`,
      );
    }
  }
  const backend = await initBackend(options.backend ?? config.backend, { wasmThreads: options.threads });
  progress.line(`backend: ${backend.name} — ${backend.reason}; ${backend.detail}`);

  const used: UsedRun[] = [];
  const models: NamedModel[] = [];
  try {
    for (const experiment of withData) {
      const dir = await findRun(experiment.wanted, experiment.loaded, experiment.data, options);
      const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as ResultRecord;
      used.push({
        name: experiment.wanted.name,
        configFile: experiment.wanted.file,
        overrides: experiment.wanted.overrides,
        experiment: experiment.loaded.config.name,
        configHash: experiment.loaded.configHash,
        runId: basename(dir),
        dir,
        commit: result.provenance.git.commit,
        weightsSha256: digest('sha256', readFileSync(join(dir, 'model', 'weights.bin'))),
      });
      models.push({ name: experiment.wanted.name, model: loadModel(join(dir, 'model')) });
      progress.line(`${experiment.wanted.name}: ${dir}`);
    }
    const test = reference.test;
    const onEngine = await engineAttacks(models, config.attack, test, progress, config.kind);
    let measured: Measurement<R['metrics']>;
    try {
      measured = await measure(models, test, onEngine.engines);
    } finally {
      onEngine.release();
    }

    const data = reference.data;
    const hash = createHash('sha256')
      .update(JSON.stringify({ config, runs: used.map((u) => u.weightsSha256) }))
      .digest('hex')
      .slice(0, 12);
    const run = await openRun(options.resultsDir, config.name, hash, { fresh: true, seed: 0, identity: { data, backend: backend.name } });
    try {
      for (const [file, text] of Object.entries(measured.files)) writeFileAtomic(join(run.dir, file), text);
      const record = {
        format,
        experiment: config.name,
        runId: run.runId,
        ...invocationTimes(started),
        config,
        configFiles: loaded.files,
        overrides: loaded.overrides,
        claims: config.claims,
        uses: used,
        metrics: measured.metrics,
        data: { ...raw.provenance, counts: reference.counts, classes: reference.classes, identity: data },
        provenance: collectProvenance(backend),
        seed: null,
        files: ['result.json', ...Object.keys(measured.files)],
      } as R;
      run.lock.assertHeld();
      writeJsonAtomic(join(run.dir, 'result.json'), record);
      writeStatus(run.dir, 'complete');
      return { record, dir: run.dir };
    } catch (error) {
      writeStatus(run.dir, 'failed', (error as Error).message);
      throw error;
    } finally {
      await run.lock.release();
    }
  } finally {
    for (const { model } of models) model.dispose();
  }
}

/** The entry of `perEpsilon` at ε = .25, the paper's, or the first when .25 was not attacked. */
export function atPaperEpsilon<T extends { epsilon: number }>(perEpsilon: readonly T[]): T {
  return perEpsilon.find((m) => m.epsilon === 0.25) ?? perEpsilon[0]!;
}

/** What a measurement gave with one softmax gradient. */
export interface ByGradient<T> {
  gradient: SoftmaxGradient;
  measured: T;
}

/** `measure` with the configured softmax gradient, then with the other: every FGSM figure is reported both ways. */
export async function bothGradients<T>(attack: AttackConfig, measure: (attack: AttackConfig) => Promise<T>): Promise<[ByGradient<T>, ByGradient<T>]> {
  const other = otherGradient(attack.gradient);
  return [
    { gradient: attack.gradient, measured: await measure(attack) },
    { gradient: other, measured: await measure({ ...attack, gradient: other }) },
  ];
}
