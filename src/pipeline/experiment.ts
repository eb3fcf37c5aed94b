import { join } from 'node:path';
import { initBackend, type BackendChoice as ChosenBackend, type BackendRequest } from '../backend/select.js';
import { hashConfig, loadExperiment, type LoadedExperiment } from '../config/load.js';
import { BackendChoice, type Experiment } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError, InterruptedError } from '../core/errors.js';
import { stopIfAborted } from '../core/event-loop.js';
import type { Progress } from '../core/progress.js';
import { makeSplits, type Splits } from '../data/dataset.js';
import { countsOf, dataIdentity, type DataIdentity } from '../data/identity.js';
import { cacheDir, explicitDataDir, resolveMnist, type RawMnist } from '../data/source.js';
import { trainingPerturbation } from '../attacks/training-perturbations.js';
import { engineSupport, TrainingEngine } from '../engine/training-engine.js';
import { stackedParametersTooLarge } from '../engine/network.js';
import { GpuRuntime } from '../engine/runtime.js';
import { engineAttack } from './engine-attack.js';
import { cleanMetrics, EVALUATION_INTERRUPTED, evaluate, fgsmErrorRate, type Evaluation } from '../eval/evaluate.js';
import { modelFromConfig, specFromConfig, stackedModelFromConfig } from '../models/build.js';
import type { Classifier, ModelSpec } from '../models/classifier.js';
import { saveModel } from '../models/weights-io.js';
import { compareClaims } from '../report/compare.js';
import { renderRunReport } from '../report/run-report.js';
import { examplesFigure, weightsFigure } from '../results/figures.js';
import { trainingCurveSvg } from '../results/plots.js';
import { collectProvenance } from '../results/provenance.js';
import { invocationTimes, openChoicesOf, type ResultRecord } from '../results/record.js';
import { latestUnfinishedRun, openRun, writeStatus } from '../results/run-dir.js';
import type { RunLock } from '../results/run-lock.js';
import { train, trainingSoFar, trainStacked, type EpochRecord, type TrainingSummary, type TrainOptions } from '../train/loop.js';

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

/** A run ready to train: its resolved config, data, backend, folder (claimed and locked) and fresh model. */
interface PreparedRun {
  started: Date;
  loaded: LoadedExperiment;
  input: RunInput;
  run: RunFolder;
  /** The run folder, or its provisional/ folder for a peek. */
  outDir: string;
  model: Classifier;
  /** What trains its minibatches: the WebGPU engine, or tfjs's ops (null). Shared by the seeds of a stack. */
  engine: TrainingEngine | null;
  /** Marks the run interrupted should the process exit at once (a second Ctrl-C) while it holds the run. */
  onExit: () => void;
}

/** The data and backend of a run: several runs of one experiment (its seeds) share them. */
interface RunInput {
  raw: RawMnist;
  splits: Splits;
  data: DataIdentity;
  backend: ChosenBackend;
}

async function runInput(config: Experiment, options: RunOptions): Promise<RunInput> {
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
  return { raw, splits, data: dataIdentity(raw.provenance, countsOf(splits)), backend };
}

async function prepareRun(loaded: LoadedExperiment, input: RunInput, options: RunOptions): Promise<PreparedRun> {
  const started = new Date();
  const { config } = loaded;
  const { raw, splits, data, backend } = input;
  const run = options.peek ? peekRun(options.resultsDir, config, loaded.configHash) : await openRunFor(options, loaded, data, backend.name, splits);
  const outDir = options.peek ? join(run.dir, 'provisional') : run.dir;
  options.progress.line(`${options.peek ? 'peeking at' : run.resumed ? 'resuming' : 'starting'} ${config.name} → ${run.dir}`);
  options.progress.line(`data: ${raw.provenance.kind} (${raw.provenance.reason}); ${data.description}`);
  try {
    const model = modelFromConfig(config.model, splits.classes, config.seed, splits.train);
    const onExit = () => {
      try {
        if (run.lock && !lockLost(run.lock)) writeStatus(run.dir, 'interrupted', QUIT_AT_ONCE);
      } catch {
        // a status that cannot be written (a full disk) leaves it "running": `fgsm status` tells it is dead
      }
    };
    process.on('exit', onExit);
    return { started, loaded, input, run, outDir, model, engine: null, onExit };
  } catch (error) {
    await run.lock?.release();
    throw error;
  }
}

/** The training of a prepared run, as `train` takes it. */
function trainingOptions(prepared: PreparedRun, options: RunOptions): TrainOptions {
  const { config } = prepared.loaded;
  const { run, model, input } = prepared;
  const writing = (): void => run.lock?.assertHeld();
  return {
    model,
    train: input.splits.train,
    validation: input.splits.validation,
    config: config.training,
    seed: config.seed,
    perturbation: trainingPerturbation(config.training.objective),
    adversarialError: async (m, split) => {
      const { epsilon } = config.training.earlyStopping;
      const onDevice = await prepared.engine?.fgsmErrorRate(m, split, epsilon, config.attack.gradient);
      return onDevice ?? fgsmErrorRate(m, split, epsilon, config.attack.gradient);
    },
    checkpointDir: join(run.dir, 'checkpoints'),
    engine: prepared.engine,
    beforeCheckpoint: writing,
    progress: options.progress,
    signal: options.signal,
    onEpoch: (_record, state) => {
      writing();
      writeFileAtomic(join(run.dir, 'epochs.csv'), epochsCsv(state.history));
    },
  };
}

/** After training: the model saved, the attacks and evaluation, the result, report and figures written. */
async function finishRun(prepared: PreparedRun, summary: TrainingSummary, options: RunOptions): Promise<RunOutcome> {
  const { loaded, input, run, outDir, model, started } = prepared;
  const { config } = loaded;
  const { raw, splits, data, backend } = input;
  const writing = (): void => run.lock?.assertHeld();
  writing();
  await saveModel(join(outDir, 'model'), model);

  const attack = options.peek && options.peekEpsilons ? { ...config.attack, epsilons: options.peekEpsilons } : config.attack;
  const onEngine = await engineAttack(model.spec, attack, splits.test, options.progress, { trainingEngine: prepared.engine });
  let evaluation: Evaluation;
  try {
    evaluation = await evaluate(model, splits.test, {
      attack,
      rubbishSamples: config.evaluation.rubbish?.samples ?? null,
      figureExamples: config.evaluation.figureExamples,
      seed: config.seed,
      progress: options.progress,
      signal: options.signal,
      onDevice: onEngine?.attack,
    });
  } finally {
    onEngine?.release();
  }
  await stopIfAborted(options.signal, EVALUATION_INTERRUPTED);
  const trainingSet = await cleanMetrics(model, splits.train, config.attack.batchSize);

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
      trainingSet,
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
    provenance: { ...collectProvenance(backend), trainer: prepared.engine ? 'webgpu-engine' : 'tfjs', attacker: onEngine ? 'webgpu-engine' : 'tfjs' },
    seed: config.seed,
    files,
    ...(options.peek
      ? {
          provisional: `training unfinished: evaluated at stage ${history.at(-1)!.stage} epoch ${history.at(-1)!.epoch}, with the parameters of epoch ${summary.chosenEpoch}`,
        }
      : {}),
  };
  writing();
  writeFileAtomic(join(outDir, 'epochs.csv'), epochsCsv(history)); // from the checkpoint's history: whole again if it was damaged
  writeJsonAtomic(join(outDir, 'result.json'), result);
  writeFileAtomic(join(outDir, 'report.md'), renderRunReport(result, compareClaims(result)));
  if (!options.peek) writeStatus(run.dir, 'complete');
  return { result, dir: outDir, splits };
}

const QUIT_AT_ONCE =
  'quit at once (a second signal): every epoch up to the last checkpoint is kept, nothing half-written; rerun the same command to resume';

/** Records in the run's status why it stopped (interrupted, or failed), where the lock still allows. */
function recordStop(prepared: PreparedRun, error: unknown): void {
  const lock = prepared.run.lock;
  try {
    if (lock && !lockLost(lock))
      writeStatus(prepared.run.dir, error instanceof InterruptedError ? 'interrupted' : 'failed', (error as Error).message);
  } catch (statusError) {
    // on a full disk the status cannot be written either: report the first failure (the run resumes all the same)
    if (!(statusError instanceof FgsmError)) throw statusError;
  }
}

async function releaseRun(prepared: PreparedRun): Promise<void> {
  process.off('exit', prepared.onExit);
  prepared.engine?.dispose();
  prepared.model.dispose();
  await prepared.run.lock?.release();
}

/**
 * One experiment along the straight line: config → data → backend → model → train → attacks/eval →
 * results → report. Resumes the newest unfinished run of the same resolved config unless `fresh`.
 */
export async function runExperiment(file: string, options: RunOptions): Promise<RunOutcome> {
  const loaded = loadForRun(file, options);
  const prepared = await prepareRun(loaded, await runInput(loaded.config, options), options);
  try {
    if (!options.peek) prepared.engine = trainingEngine(prepared.model.spec, loaded.config, prepared.input, 1, options.progress);
    const summary = options.peek
      ? provisionalSummary(prepared.model, prepared.run.dir, loaded.config)
      : await train(trainingOptions(prepared, options));
    return await finishRun(prepared, summary, options);
  } catch (error) {
    recordStop(prepared, error);
    throw error;
  } finally {
    await releaseRun(prepared);
  }
}

/**
 * The WebGPU engine where the webgpu backend runs and the engine trains this network and objective (`lanes` seeds
 * at once); otherwise null, tfjs's ops train it, and a line says why.
 */
function trainingEngine(spec: ModelSpec, config: Experiment, input: RunInput, lanes: number, progress: Progress): TrainingEngine | null {
  if (input.backend.name !== 'webgpu') return null;
  const why = engineSupport(spec, config.training, lanes);
  if (why) {
    progress.line(`training: tfjs's webgpu ops (the WebGPU engine does not run this: ${why})`);
    return null;
  }
  const engine = TrainingEngine.onTfjsDevice(spec, config.training);
  const { train, validation } = input.splits;
  const stage2 = config.training.stage2.mode !== 'none' && validation ? [{ ...train, n: train.n + validation.n }] : [];
  const tooLarge = engine.cannotHold([train, ...stage2], lanes);
  if (tooLarge) {
    engine.dispose();
    progress.line(`training: tfjs's webgpu ops (the WebGPU engine does not run this: ${tooLarge})`);
    return null;
  }
  progress.line('training: the WebGPU engine (data resident, fused kernels, dropout drawn on the device)');
  return engine;
}

/**
 * Whether `fgsm run` trains an experiment's seeds together as one stacked network (trainStacked): auto where
 * the backend gains from fewer, larger dispatches (webgpu, tensorflow); always (any backend: for tests and
 * measurements); never. Only maxout networks stack, and only on splits of whole minibatches.
 */
export type StackSeeds = 'auto' | 'always' | 'never';

const STACKING_BACKENDS = new Set(['webgpu', 'tensorflow']);

/** Why these seeds cannot stack, or null when they can. */
function whyNotStacked(config: Experiment, splits: Splits): string | null {
  if (config.model.kind !== 'maxout') return `the ${config.model.kind} model does not stack (only maxout networks do)`;
  const sizes = [splits.train.n, splits.train.n + (splits.validation?.n ?? 0)];
  const ragged = sizes.find((n) => n % config.training.batchSize !== 0);
  if (ragged !== undefined) return `a split of ${ragged} examples is not whole minibatches of ${config.training.batchSize}`;
  return null;
}

/** On webgpu, why the adapter cannot bind the stacked seeds' parameters, or null. */
function stackTooLarge(config: Experiment, input: RunInput, lanes: number): string | null {
  if (input.backend.name !== 'webgpu') return null;
  const limit = GpuRuntime.ofTfjsBackend().device.limits.maxStorageBufferBindingSize;
  return stackedParametersTooLarge(specFromConfig(config.model, input.splits.classes), lanes, limit);
}

/**
 * The runs of an experiment's seeds (`seeds`, each run as `fgsm run` makes it: seed=N, seeds=null): one after
 * another, or trained together as one stacked network (see StackSeeds), each seed still its own run folder,
 * checkpoint and result. Returns each seed's outcome in order.
 */
export async function runSeeds(file: string, seeds: readonly number[], mode: StackSeeds, options: RunOptions): Promise<RunOutcome[]> {
  const seedRun = (seed: number): RunOptions => ({ ...options, overrides: [...options.overrides, `seed=${seed}`, 'seeds=null'] });
  const loaded = seeds.map((seed) => loadForRun(file, seedRun(seed)));
  const one = loaded[0]!.config;
  let input: RunInput | null = null;
  if (mode !== 'never' && seeds.length > 1) {
    input = await runInput(one, options);
    const why =
      whyNotStacked(one, input.splits) ??
      (mode === 'auto' && !STACKING_BACKENDS.has(input.backend.name) ? `the ${input.backend.name} backend trains them one by one as fast` : null) ??
      stackTooLarge(one, input, seeds.length);
    if (why && mode === 'always') throw new FgsmError(`${file}: --stack-seeds always, but ${why}`, 'use --stack-seeds auto or never');
    if (why) options.progress.line(`${one.name}: seeds ${seeds.join(', ')} one after another (${why})`);
    else return runStacked(seeds, loaded, input, options);
  }
  const outcomes: RunOutcome[] = [];
  for (const seed of seeds) outcomes.push(await runExperiment(file, seedRun(seed)));
  return outcomes;
}

async function runStacked(seeds: readonly number[], loaded: LoadedExperiment[], input: RunInput, options: RunOptions): Promise<RunOutcome[]> {
  const one = loaded[0]!.config;
  options.progress.line(`${one.name}: seeds ${seeds.join(', ')} trained together as one stacked network on ${input.backend.name}`);
  const prepared: PreparedRun[] = [];
  const complete = new Set<PreparedRun>();
  const labelledSeed = (seed: number): RunOptions => ({ ...options, progress: labelled(options.progress, `seed ${seed}`) });
  try {
    for (const [i, seed] of seeds.entries()) prepared.push(await prepareRun(loaded[i]!, input, labelledSeed(seed)));
    const engine = trainingEngine(prepared[0]!.model.spec, one, input, seeds.length, options.progress);
    for (const run of prepared) run.engine = engine;
    const summaries = await trainStacked(
      prepared.map((run, i) => trainingOptions(run, labelledSeed(seeds[i]!))),
      (stack) => stackedModelFromConfig(one.model, input.splits.classes, stack),
    );
    const outcomes: RunOutcome[] = [];
    for (const [i, run] of prepared.entries()) {
      outcomes.push(await finishRun(run, summaries[i]!, labelledSeed(seeds[i]!)));
      complete.add(run);
    }
    return outcomes;
  } catch (error) {
    for (const run of prepared) if (!complete.has(run)) recordStop(run, error);
    throw error;
  } finally {
    for (const run of prepared) await releaseRun(run);
  }
}

/** The same progress with every line labelled (the seeds of a stack report in turn). */
function labelled(progress: Progress, label: string): Progress {
  return {
    ...progress,
    start: progress.start.bind(progress),
    update: progress.update.bind(progress),
    stop: progress.stop.bind(progress),
    line: (message) => progress.line(`[${label}] ${message}`),
  };
}
