import { join } from 'node:path';
import { initBackend, type BackendRequest } from '../backend/select.js';
import { hashConfig, loadExperiment, type LoadedExperiment } from '../config/load.js';
import { BackendChoice, type Experiment } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError, InterruptedError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { makeSplits, type Splits } from '../data/dataset.js';
import { countsOf, dataIdentity, type DataIdentity } from '../data/identity.js';
import { cacheDir, explicitDataDir, resolveMnist } from '../data/source.js';
import { trainingPerturbation } from '../attacks/training-perturbations.js';
import { evaluate, fgsmErrorRate, type Evaluation } from '../eval/evaluate.js';
import { modelFromConfig } from '../models/build.js';
import type { Classifier } from '../models/classifier.js';
import { saveModel } from '../models/weights-io.js';
import { compareClaims } from '../report/compare.js';
import { renderRunReport } from '../report/run-report.js';
import { examplesFigure, weightsFigure } from '../results/figures.js';
import { trainingCurveSvg } from '../results/plots.js';
import { collectProvenance } from '../results/provenance.js';
import { invocationTimes, openChoicesOf, type ResultRecord } from '../results/record.js';
import { latestUnfinishedRun, openRun, writeStatus } from '../results/run-dir.js';
import type { RunLock } from '../results/run-lock.js';
import { train, trainingSoFar, type EpochRecord, type TrainingSummary } from '../train/loop.js';

export interface RunOptions {
  overrides: string[];
  backend?: BackendRequest;
  /** Threads for the wasm backend (execution only: the numbers do not depend on it). */
  threads?: number;
  dataDir?: string;
  resultsDir: string;
  fresh: boolean;
  progress: Progress;
  signal?: AbortSignal;
  /**
   * Do not train: evaluate the newest unfinished run of this config at its last checkpoint (stage 1: the best
   * parameters so far) and write the results, marked provisional, into its provisional/ folder.
   */
  peek?: boolean;
  /** With peek: attack at these ε instead of the config's (the run's identity does not depend on them). */
  peekEpsilons?: number[];
}

export interface RunOutcome {
  result: ResultRecord;
  dir: string;
  splits: Splits;
}

/** The experiment as the command line resolves it: the file, then --backend, then every --set. */
export function loadForRun(file: string, options: Pick<RunOptions, 'backend' | 'overrides'>): LoadedExperiment {
  return loadExperiment(file, [...(options.backend ? [`backend=${options.backend}`] : []), ...options.overrides]);
}

function epochsCsv(history: EpochRecord[]): string {
  const header = 'stage,epoch,learning_rate,momentum,train_loss,train_error,validation_error,adversarial_validation_error,held_out_loss,seconds';
  const rows = history.map((r) =>
    [
      r.stage,
      r.epoch,
      r.learningRate,
      r.momentum,
      r.trainLoss,
      r.trainError,
      r.validationError ?? '',
      r.adversarialValidationError ?? '',
      r.heldOutLoss ?? '',
      r.seconds,
    ].join(','),
  );
  return `${[header, ...rows].join('\n')}\n`;
}

/** The run's pictures: training curve, clean / perturbation / adversarial examples, and w for logistic regression. */
async function writeFigures(dir: string, config: Experiment, model: Classifier, summary: TrainingSummary, evaluation: Evaluation): Promise<string[]> {
  const written = ['training-curve.svg'];
  writeFileAtomic(join(dir, 'training-curve.svg'), await trainingCurveSvg(summary, `${config.name}: error per epoch`));
  if (evaluation.examples.triples.length > 0) {
    writeFileAtomic(join(dir, 'examples.png'), examplesFigure(evaluation.examples.triples, model.spec.classes, evaluation.examples.epsilon));
    written.push('examples.png');
  }
  if (config.model.kind === 'logistic') {
    const w = model.parameters.find((p) => p.name === 'W')!.variable;
    writeFileAtomic(join(dir, 'weights.png'), weightsFigure((await w.data()) as Float32Array));
    written.push('weights.png');
  }
  return written;
}

function provisionalSummary(model: Classifier, runDir: string, config: Experiment): TrainingSummary {
  const summary = trainingSoFar(model, join(runDir, 'checkpoints'), config.training);
  if (!summary) throw new FgsmError(`${runDir}: no checkpoint yet (the first epoch has not finished)`);
  return summary;
}

function lockLost(lock: RunLock): boolean {
  try {
    lock.assertHeld();
    return false;
  } catch {
    return true;
  }
}

interface RunFolder {
  dir: string;
  runId: string;
  resumed: boolean;
  /** Null for a peek, which reads a run another process may be writing and writes only under provisional/. */
  lock: RunLock | null;
}

/**
 * The backend is part of the config, so `--backend wasm` does not find a run begun with `backend: auto` (even one
 * auto ran on wasm): the newest unfinished run of this config under another backend choice, to say so.
 */
function unfinishedUnderOtherBackend(resultsDir: string, config: Experiment): { backend: string; runId: string } | null {
  for (const backend of BackendChoice.unwrap().options) {
    if (backend === config.backend) continue;
    const runId = latestUnfinishedRun(resultsDir, config.name, hashConfig({ ...config, backend }));
    if (runId) return { backend, runId };
  }
  return null;
}

function otherBackendHint(resultsDir: string, config: Experiment): string {
  const other = unfinishedUnderOtherBackend(resultsDir, config);
  return other
    ? `the unfinished run ${other.runId} of ${config.name} was begun with backend ${other.backend}, this invocation asks for ${config.backend}; ` +
        `--backend ${other.backend} finds it`
    : '';
}

function peekRun(resultsDir: string, config: Experiment, configHash: string): RunFolder {
  const unfinished = latestUnfinishedRun(resultsDir, config.name, configHash);
  if (!unfinished) {
    const hint = otherBackendHint(resultsDir, config);
    throw new FgsmError(
      `no unfinished run of ${config.name} (config hash ${configHash}) under ${resultsDir}`,
      hint || 'peek looks at a run that `fgsm run` started and has not finished',
    );
  }
  return { dir: join(resultsDir, config.name, unfinished), runId: unfinished, resumed: true, lock: null };
}

/** Opens (claims and locks) the run folder of this config, data and backend. */
async function openRunFor(options: RunOptions, loaded: LoadedExperiment, data: DataIdentity, backend: string, splits: Splits): Promise<RunFolder> {
  const { config, configHash } = loaded;
  const perEpoch = (n: number) => Math.ceil(n / config.training.batchSize);
  const run = await openRun(options.resultsDir, config.name, configHash, {
    fresh: options.fresh,
    seed: config.seed,
    identity: { data, backend },
    stepsPerEpoch: { 1: perEpoch(splits.train.n), 2: perEpoch(splits.train.n + (splits.validation?.n ?? 0)) },
  });
  const hint = run.resumed || options.fresh ? '' : otherBackendHint(options.resultsDir, config);
  if (hint) options.progress.line(`note: starting a new run: ${hint} (stop this one to resume that)`);
  return run;
}

/**
 * One experiment along the straight line: config → data → backend → model → train → attacks/eval →
 * results → report. Resumes the newest unfinished run of the same resolved config unless `fresh`.
 */
export async function runExperiment(file: string, options: RunOptions): Promise<RunOutcome> {
  const started = new Date();
  const loaded = loadForRun(file, options);
  const { config } = loaded;
  const progress = options.progress;

  const raw = await resolveMnist({
    source: config.data.source,
    explicit: explicitDataDir(options.dataDir, config.data.dir),
    cache: cacheDir(),
    progress,
  });
  if (raw.provenance.warning) progress.line(`\n!!! ${raw.provenance.warning}\n`);
  const splits = makeSplits(raw, config.data);

  const backend = await initBackend(config.backend, { wasmThreads: options.threads });
  progress.line(`backend: ${backend.name} — ${backend.reason}; ${backend.detail}`);

  const data = dataIdentity(raw.provenance, countsOf(splits));
  const run = options.peek ? peekRun(options.resultsDir, config, loaded.configHash) : await openRunFor(options, loaded, data, backend.name, splits);
  const outDir = options.peek ? join(run.dir, 'provisional') : run.dir;
  const writing = (): void => run.lock?.assertHeld();
  progress.line(`${options.peek ? 'peeking at' : run.resumed ? 'resuming' : 'starting'} ${config.name} → ${run.dir}`);
  progress.line(`data: ${raw.provenance.kind} (${raw.provenance.reason}); ${data.description}`);

  const model = modelFromConfig(config.model, splits.classes, config.seed, splits.train);
  try {
    const summary = options.peek
      ? provisionalSummary(model, run.dir, config)
      : await train({
          model,
          train: splits.train,
          validation: splits.validation,
          config: config.training,
          seed: config.seed,
          perturbation: trainingPerturbation(config.training.objective),
          adversarialError: (m, split) => fgsmErrorRate(m, split, config.training.earlyStopping.epsilon, config.attack.gradient),
          checkpointDir: join(run.dir, 'checkpoints'),
          beforeCheckpoint: writing,
          progress,
          signal: options.signal,
          onEpoch: (_record, state) => {
            writing();
            writeFileAtomic(join(run.dir, 'epochs.csv'), epochsCsv(state.history));
          },
        });
    writing();
    await saveModel(join(outDir, 'model'), model);

    const evaluation = await evaluate(model, splits.test, {
      attack: options.peek && options.peekEpsilons ? { ...config.attack, epsilons: options.peekEpsilons } : config.attack,
      rubbishSamples: config.evaluation.rubbish?.samples ?? null,
      figureExamples: config.evaluation.figureExamples,
      seed: config.seed,
      progress,
    });

    const { history, ...training } = summary;
    const files = [
      'result.json',
      'report.md',
      'epochs.csv',
      'model/model.json',
      'model/weights.bin',
      ...(await writeFigures(outDir, config, model, summary, evaluation)),
    ];
    const trainingSeconds = training.totalSeconds; // over every invocation, so throughput holds across resumes
    const result: ResultRecord = {
      format: 'fgsm-result/1',
      experiment: config.name,
      runId: run.runId,
      ...invocationTimes(started),
      config,
      configHash: loaded.configHash,
      configFiles: loaded.files,
      overrides: loaded.overrides,
      openChoices: openChoicesOf(config),
      claims: config.claims,
      metrics: {
        clean: evaluation.clean,
        fgsm: evaluation.fgsm,
        fgsmOtherGradient: evaluation.fgsmOtherGradient,
        rubbish: evaluation.rubbish,
        training,
      },
      throughput: {
        fgsmImagesPerSecond: evaluation.fgsmImagesPerSecond,
        trainingExamplesPerSecond:
          trainingSeconds > 0
            ? history.reduce((sum, r) => sum + (r.stage === 1 ? splits.train.n : splits.train.n + (splits.validation?.n ?? 0)), 0) / trainingSeconds
            : 0,
      },
      data: {
        ...raw.provenance,
        identity: data,
        counts: { train: splits.train.n, validation: splits.validation?.n ?? 0, test: splits.test.n },
        classes: splits.classes,
      },
      provenance: collectProvenance(backend),
      seed: config.seed,
      files,
      ...(options.peek
        ? {
            provisional: `training unfinished: evaluated at stage ${history.at(-1)!.stage} epoch ${history.at(-1)!.epoch}, with the parameters of epoch ${summary.chosenEpoch}`,
          }
        : {}),
    };
    writing();
    if (options.peek) writeFileAtomic(join(outDir, 'epochs.csv'), epochsCsv(history));
    writeJsonAtomic(join(outDir, 'result.json'), result);
    writeFileAtomic(join(outDir, 'report.md'), renderRunReport(result, compareClaims(result)));
    if (!options.peek) writeStatus(run.dir, 'complete');
    return { result, dir: outDir, splits };
  } catch (error) {
    try {
      if (run.lock && !lockLost(run.lock))
        writeStatus(run.dir, error instanceof InterruptedError ? 'interrupted' : 'failed', (error as Error).message);
    } catch (statusError) {
      // on a full disk the status cannot be written either: report the first failure (the run resumes all the same)
      if (!(statusError instanceof FgsmError)) throw statusError;
    }
    throw error;
  } finally {
    model.dispose();
    await run.lock?.release();
  }
}
