import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { initBackend } from '../backend/select.js';
import { TransferSchema, type UseConfig } from '../config/cross-run.js';
import { loadExperiment, type LoadedExperiment, type LoadedTransfer } from '../config/load.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { makeSplits, type Splits } from '../data/dataset.js';
import { countsOf, dataIdentity, type DataIdentity } from '../data/identity.js';
import { cacheDir, explicitDataDir, resolveMnist, type RawMnist } from '../data/source.js';
import { digest } from '../data/verify.js';
import { transferMatrices, type TransferMatrix } from '../eval/transfer.js';
import type { Classifier } from '../models/classifier.js';
import { loadModel } from '../models/weights-io.js';
import { transferHeatmapSvg } from '../results/plots.js';
import { collectProvenance } from '../results/provenance.js';
import type { ResultRecord, TransferPair, TransferRecord, UsedRun } from '../results/record.js';
import { latestCompleteRun, latestUnfinishedRun, openRun, readStatus, writeStatus } from '../results/run-dir.js';
import { runExperiment, type RunOptions } from './experiment.js';

export interface TransferOptions extends Pick<RunOptions, 'backend' | 'threads' | 'dataDir' | 'resultsDir' | 'progress'> {
  /** Train the experiments that have no complete run on this data instead of refusing. */
  trainMissing: boolean;
}

/** The ad-hoc transfer of `fgsm transfer A.yaml B.yaml …`: every model against every other, ε = .25 unless asked. */
export function adHocTransfer(files: string[], epsilons: number[] | null): LoadedTransfer {
  const uses: Record<string, string> = {};
  for (const file of files) {
    const camel = loadExperiment(file).config.name.replace(/[^A-Za-z0-9]+(.)?/g, (_, next: string | undefined) => (next ?? '').toUpperCase());
    const base = /^[a-z]/.test(camel) ? camel : `m${camel}`;
    let name = base;
    for (let n = 2; name in uses; n++) name = `${base}${n}`;
    uses[name] = file;
  }
  const config = TransferSchema.parse({ kind: 'transfer', name: 'transfer', uses, attack: epsilons ? { epsilons } : {} });
  return { config, files, overrides: [] };
}

const fileOf = (use: UseConfig) => (typeof use === 'string' ? use : use.config);

/** The run a transfer uses for one experiment: the one named, or the newest complete one on this data. */
async function findRun(name: string, use: UseConfig, loaded: LoadedExperiment, data: DataIdentity, options: TransferOptions): Promise<string> {
  const { config, configHash } = loaded;
  const experimentDir = join(options.resultsDir, config.name);
  if (typeof use !== 'string' && use.run) {
    const dir = join(experimentDir, use.run);
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
  if (options.trainMissing) {
    options.progress.line(`${name}: no complete run of ${config.name} on this data; training it (--train-missing)`);
    return (await runExperiment(fileOf(use), { ...options, overrides: [], fresh: false })).dir;
  }
  const unfinished = latestUnfinishedRun(options.resultsDir, config.name, configHash);
  throw new FgsmError(
    `${name}: no complete run of ${config.name} (config hash ${configHash}) on ${data.description} under ${options.resultsDir}${unfinished ? `; ${join(experimentDir, unfinished)} has not finished` : ''}`,
    `run \`fgsm run ${fileOf(use)}\` first (or finish it), pass --train-missing to train it now, or pin a run: { config: …, run: <id> }`,
  );
}

function pairsOf(matrix: TransferMatrix): Record<string, TransferPair> {
  const pairs: Record<string, TransferPair> = {};
  matrix.names.forEach((row, r) =>
    matrix.names.forEach((column, c) => {
      if (r === c) return;
      const cell = matrix.cells[r]![c]!;
      pairs[`${row}To${column[0]!.toUpperCase()}${column.slice(1)}`] = {
        epsilon: matrix.epsilon,
        error: cell.error,
        meanConfidenceOnMistakes: cell.meanConfidenceOnMistakes,
      };
    }),
  );
  return pairs;
}

function matricesCsv(matrices: TransferMatrix[]): string {
  const rows = ['epsilon,made_on,scored_by,error,mean_confidence_on_mistakes,n'];
  for (const m of matrices)
    m.names.forEach((row, r) =>
      m.names.forEach((column, c) => {
        const cell = m.cells[r]![c]!;
        rows.push([m.epsilon, row, column, cell.error, cell.meanConfidenceOnMistakes ?? '', cell.n].join(','));
      }),
    );
  return `${rows.join('\n')}\n`;
}

/**
 * A transfer experiment (§6): finds the trained run of every experiment it uses (refusing unfinished runs and
 * runs on other data), makes FGSM examples on each model and scores them with every model, and writes a run
 * folder of its own: result.json (with exactly which runs it used), transfer.csv and a heat map per ε.
 */
export async function runTransfer(loaded: LoadedTransfer, options: TransferOptions): Promise<{ record: TransferRecord; dir: string }> {
  const started = new Date();
  const { config } = loaded;
  const progress = options.progress;
  const experiments = Object.entries(config.uses).map(([name, use]) => ({ name, use, loaded: loadExperiment(fileOf(use)) }));
  const first = experiments[0]!.loaded.config;
  const raw: RawMnist = await resolveMnist({
    source: first.data.source,
    explicit: explicitDataDir(options.dataDir, first.data.dir),
    cache: cacheDir(),
    progress,
  });
  const withData = experiments.map((experiment) => {
    const splits = makeSplits(raw, experiment.loaded.config.data);
    return { ...experiment, splits, data: dataIdentity(raw.provenance, countsOf(splits)) };
  });
  const test: Splits = withData[0]!.splits;
  for (const other of withData) {
    if (other.splits.test.n !== test.test.n || other.splits.classes.join() !== test.classes.join()) {
      throw new FgsmError(
        `${other.name} (${other.loaded.config.name}) is evaluated on ${other.splits.test.n} test examples of digits [${other.splits.classes}], ${withData[0]!.name} on ${test.test.n} of [${test.classes}]`,
        'a transfer matrix compares models on one test set: use experiments with the same data.digits and data.limit.test',
      );
    }
  }
  const backend = await initBackend(options.backend ?? config.backend, { wasmThreads: options.threads });
  progress.line(`backend: ${backend.name} — ${backend.reason}; ${backend.detail}`);

  const used: UsedRun[] = [];
  const models: { name: string; model: Classifier }[] = [];
  try {
    for (const experiment of withData) {
      const dir = await findRun(experiment.name, experiment.use, experiment.loaded, experiment.data, options);
      const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as ResultRecord;
      used.push({
        name: experiment.name,
        configFile: fileOf(experiment.use),
        experiment: experiment.loaded.config.name,
        configHash: experiment.loaded.configHash,
        runId: basename(dir),
        dir,
        commit: result.provenance.git.commit,
        weightsSha256: digest('sha256', readFileSync(join(dir, 'model', 'weights.bin'))),
      });
      models.push({ name: experiment.name, model: loadModel(join(dir, 'model')) });
      progress.line(`${experiment.name}: ${dir}`);
    }
    const matrices = transferMatrices(models, test.test, config.attack, progress);

    const data = withData[0]!.data;
    const hash = createHash('sha256')
      .update(JSON.stringify({ config, runs: used.map((u) => u.weightsSha256) }))
      .digest('hex')
      .slice(0, 12);
    const run = await openRun(options.resultsDir, config.name, hash, { fresh: true, seed: 0, identity: { data, backend: backend.name } });
    try {
      const files = ['result.json', 'transfer.csv'];
      writeFileAtomic(join(run.dir, 'transfer.csv'), matricesCsv(matrices));
      for (const m of matrices) {
        const file = `transfer-eps${m.epsilon}.svg`;
        const errors = m.cells.map((row) => row.map((cell) => cell.error));
        writeFileAtomic(
          join(run.dir, file),
          await transferHeatmapSvg(m.names, errors, `${config.name}: FGSM ε=${m.epsilon} error, made on row, scored by column`),
        );
        files.push(file);
      }
      const claimed = matrices.find((m) => m.epsilon === 0.25) ?? matrices[0]!;
      const finished = new Date();
      const record: TransferRecord = {
        format: 'fgsm-transfer/1',
        experiment: config.name,
        runId: run.runId,
        startedAt: started.toISOString(),
        finishedAt: finished.toISOString(),
        wallSeconds: (finished.getTime() - started.getTime()) / 1000,
        config,
        configFiles: loaded.files,
        overrides: loaded.overrides,
        claims: config.claims,
        uses: used,
        metrics: { transfer: pairsOf(claimed), matrices },
        data: { ...raw.provenance, counts: countsOf(test), classes: test.classes, identity: data },
        provenance: collectProvenance(backend),
        seed: null,
        files,
      };
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
