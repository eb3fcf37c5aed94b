import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fastGradientSign, type FgsmOptions } from '../attacks/fgsm.js';
import { iterativeGradientSign, type IterativeOptions } from '../attacks/iterative.js';
import { initBackend, type BackendChoice, type BackendRequest } from '../backend/select.js';
import { AttackSchema, type DataConfig } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { makeSplits, type Split } from '../data/dataset.js';
import { countsOf, dataIdentity } from '../data/identity.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import { cacheDir, explicitDataDir, resolveMnist, type RawMnist } from '../data/source.js';
import { digest } from '../data/verify.js';
import { adversarialMetrics, type AdversarialBatch } from '../eval/adversarial-metrics.js';
import { cleanMetrics, evaluate } from '../eval/evaluate.js';
import { classificationMetrics } from '../eval/metrics.js';
import { labelLeakProbe } from '../eval/label-leak.js';
import { scoreAdversarial, type Engines } from '../eval/transfer.js';
import { maskingChecks, MUST_HOLD, type MaskingCheck } from '../eval/masking.js';
import type { EngineGradient } from '../engine/kernels/cross-entropy.js';
import { ENGINE_GRADIENTS, type ResidentFgsm } from '../engine/resident-fgsm.js';
import type { Classifier, SoftmaxGradient } from '../models/classifier.js';
import { loadModel } from '../models/weights-io.js';
import { claimById } from '../paper/claims.js';
import { collectProvenance } from '../results/provenance.js';
import {
  AUDIT_ATTACKS,
  AUDIT_EPSILONS,
  CLIPPED_ATTACKS,
  UNBOUNDED_EPSILON,
  errorAt,
  type AttackFigure,
  type AuditRecord,
  type ModelAudit,
} from '../results/audit-record.js';
import { staleGradientFigures, type ResultRecord } from '../results/record.js';
import { readStatus } from '../results/run-dir.js';
import { compareClaims } from '../report/compare.js';
import { findResultFiles } from '../report/collect.js';
import { renderRobustnessCsv, renderRobustnessMarkdown } from '../report/robustness.js';
import { renderRunReport } from '../report/run-report.js';
import { engineAttack } from './engine-attack.js';

/**
 * The audit of a results folder: every complete model in it attacked past the paper's one attack, on
 * its test set, at the bounded ε of the paper's tables: FGSM with both softmax gradients, unclipped as the paper and
 * clipped to [0, 1]; the iterative attacks; the label-leaking probe; FGSM made on another model (transfer); and an
 * unbounded FGSM at ε = 1. The gradient-masking checks of eval/masking.ts read the figures. Each model's figures are
 * written as soon as they are measured (models/<name>.json in the output folder), so an interrupted audit resumes
 * where it stopped; the table of every model is written last (audit.json, audit.md, audit.csv).
 */

export interface AuditOptions {
  backend?: BackendRequest;
  threads: number;
  dataDir?: string;
  progress: Progress;
  /** Where the audit's files go. */
  out: string;
  /** Attack only the first n test examples of each model (recorded and printed), or null for all. */
  limit: number | null;
  /** Experiments to transfer from, in order of preference: each model uses the first that is not itself and has its task. */
  transferSources: string[];
  /** Only these experiments, in this order (null: every one, by name). */
  only: string[] | null;
  /** Attack nothing: the table of the models whose figures are all measured under `out`; the others are left out. */
  tableOnly?: boolean;
  /** Re-evaluate records whose gradient provenance predates a fix (see staleGradientFigures) and rewrite them. */
  repair: boolean;
  batchSize?: number;
}

/** A complete run with a saved model under the audited folder. */
interface FoundRun {
  dir: string;
  record: ResultRecord;
  name: string;
}

/** Every complete run with a saved model under `dir`, named by experiment (and seed where an experiment has several). */
export function completeModels(dir: string): FoundRun[] {
  const runs = findResultFiles(dir, 4)
    .map((file) => ({ dir: dirname(file), record: JSON.parse(readFileSync(file, 'utf8')) as ResultRecord }))
    .filter(({ dir: run, record }) => record.format === 'fgsm-result/1' && !record.provisional && existsSync(join(run, 'model', 'model.json')))
    .filter(({ dir: run }) => (readStatus(run)?.state ?? 'complete') === 'complete')
    .sort((a, b) => a.record.experiment.localeCompare(b.record.experiment) || a.record.runId.localeCompare(b.record.runId));
  const perExperiment = new Map<string, number>();
  for (const { record } of runs) perExperiment.set(record.experiment, (perExperiment.get(record.experiment) ?? 0) + 1);
  return runs.map((run) => {
    const { experiment, seed, runId } = run.record;
    const several = perExperiment.get(experiment)! > 1;
    const sameSeed = runs.filter((r) => r.record.experiment === experiment && r.record.seed === seed).length > 1;
    return { ...run, name: !several ? experiment : sameSeed ? `${experiment}/${runId}` : `${experiment} seed ${seed}` };
  });
}

/** The paper's FGSM ε = .25 error among a record's claims. */
function paperFgsm(record: ResultRecord): ModelAudit['paper'] {
  for (const id of record.claims) {
    const quantity = claimById(id)?.quantities.find((q) => q.metric.join('/') === 'fgsm/0.25/error');
    if (quantity && typeof quantity.paper === 'number') return { claim: id, value: quantity.paper };
  }
  return null;
}

const fileName = (name: string) => `${name.replace(/[^A-Za-z0-9.-]+/g, '_')}.json`;

/** The test split a run was evaluated on, checked against the data its record names, cut to `limit`. */
function testSplitOf(raw: RawMnist, run: FoundRun, limit: number | null, cache: Map<string, Split>): Split {
  const data: DataConfig = run.record.config.data;
  const key = JSON.stringify(data);
  let test = cache.get(key);
  if (!test) {
    const splits = makeSplits(raw, data);
    const identity = dataIdentity(raw.provenance, countsOf(splits));
    const recorded = run.record.data.identity ?? dataIdentity(run.record.data, run.record.data.counts);
    if (identity.id !== recorded.id) {
      throw new FgsmError(
        `${join(run.dir, 'result.json')}: trained on ${recorded.description}; this audit reads ${identity.description}`,
        'point --data-dir / FGSM_DATA_DIR at the data it was trained on',
      );
    }
    test = splits.test;
    cache.set(key, test);
  }
  if (limit === null || limit >= test.n) return test;
  return { name: 'test', x: test.x.subarray(0, limit * IMAGE_SIZE), y: test.y.subarray(0, limit), n: limit };
}

/** Per ε, the error and confidence on mistakes `adversarialMetrics` measured (in the order of `epsilons`). */
function figuresAt(epsilons: readonly number[], metrics: Awaited<ReturnType<typeof adversarialMetrics>>): AttackFigure[] {
  return epsilons.map((epsilon, e) => ({ epsilon, error: metrics[e]!.error, meanConfidenceOnMistakes: metrics[e]!.meanConfidenceOnMistakes }));
}

/** The metrics of the probabilities an engine attack read, per ε. */
const metricsOf = (model: Classifier, test: Split, probabilities: Float32Array[]) =>
  probabilities.map((p) => classificationMetrics(p, test.y.subarray(0, test.n), model.spec.classes.length));

/** FGSM at `epsilons` as `options` says (on the engine when `onDevice` is given), its error per ε and the count of zero-gradient examples. */
async function fgsmFigures(
  model: Classifier,
  test: Split,
  batchSize: number,
  options: FgsmOptions,
  onDevice: ResidentFgsm | null,
): Promise<AttackFigure[]> {
  if (onDevice) {
    const attack = await onDevice.attack(model, options.epsilons, options.gradient as EngineGradient, options.clip);
    return figuresAt(options.epsilons, metricsOf(model, test, attack.probabilities)).map((figure) => ({
      ...figure,
      zeroGradient: attack.zeroGradient,
    }));
  }
  const zeroCounts: tf.Scalar[] = [];
  const metrics = await adversarialMetrics(model, test, batchSize, (x, y) => {
    const { adversarial, direction, zeroGradient } = fastGradientSign(model, x, y, options);
    tf.dispose(direction);
    zeroCounts.push(tf.keep(zeroGradient!));
    return adversarial;
  });
  let zeroGradient = 0;
  for (const count of zeroCounts) zeroGradient += (await count.data())[0]!;
  tf.dispose(zeroCounts);
  return figuresAt(options.epsilons, metrics).map((figure) => ({ ...figure, zeroGradient }));
}

/** The seed of PGD's random starts: one fixed stream, so an audit repeats exactly. */
const PGD_SEED = 1;

/** An iterative attack's steps, step size and start at an ε. */
type Schedule = (epsilon: number) => Pick<IterativeOptions, 'steps' | 'stepSize' | 'randomStart'>;

/** An iterative attack (true labels, standard gradient, one run) at `epsilons`, `schedule` giving its steps; on the engine when `onDevice` is given. */
async function iterativeFigures(
  model: Classifier,
  test: Split,
  batchSize: number,
  epsilons: readonly number[],
  clip: readonly [number, number] | null,
  schedule: Schedule,
  onDevice: ResidentFgsm | null,
): Promise<AttackFigure[]> {
  if (onDevice) {
    // every ε of an audit's attack has the same steps and start: only α may follow ε
    const { steps, randomStart } = schedule(epsilons[0]!);
    const attack = await onDevice.iterative(model, {
      epsilons,
      stepSizes: epsilons.map((epsilon) => schedule(epsilon).stepSize),
      steps,
      randomStart,
      restarts: 1,
      seed: PGD_SEED,
      clip,
      gradient: 'standard',
      aim: null,
    });
    return figuresAt(epsilons, metricsOf(model, test, attack.probabilities));
  }
  const metrics = await adversarialMetrics(model, test, batchSize, (x, y, firstRow) =>
    epsilons.map(
      (epsilon) =>
        iterativeGradientSign(model, x, y, {
          epsilon,
          ...schedule(epsilon),
          restarts: 1,
          seed: PGD_SEED,
          firstRow,
          clip,
          labels: 'true',
          target: null,
          gradient: 'standard',
        }).adversarial,
    ),
  );
  return figuresAt(epsilons, metrics);
}

/** The audit's widest FGSM, as the engine is asked whether it can hold the attack (its test split and ε grid). */
const ENGINE_AUDIT_ATTACK = AttackSchema.parse({ epsilons: [...AUDIT_EPSILONS, UNBOUNDED_EPSILON] });

const fgsmWith = (gradient: SoftmaxGradient, clipped: boolean, unbounded = !clipped): FgsmOptions => ({
  epsilons: unbounded ? [...AUDIT_EPSILONS, UNBOUNDED_EPSILON] : [...AUDIT_EPSILONS],
  clip: clipped ? [0, 1] : null,
  labels: 'true',
  target: null,
  gradient,
});

/** How one audit attack is measured, and whether on the WebGPU engine. */
export interface AttackMeasure {
  onEngine: boolean;
  figures: () => Promise<AttackFigure[]>;
}

/**
 * How each audit attack (AUDIT_ATTACKS) is measured on a model, by key: on the WebGPU engine where `onDevice` (the
 * test split resident) is given and the engine takes the attack's gradient form, on tfjs's ops otherwise.
 */
export function attackMeasures(
  model: Classifier,
  test: Split,
  batchSize: number,
  onDevice: ResidentFgsm | null = null,
): Record<string, AttackMeasure> {
  const fgsm = (options: FgsmOptions): AttackMeasure => {
    const engine = onDevice && ENGINE_GRADIENTS.includes(options.gradient as EngineGradient) ? onDevice : null;
    return { onEngine: engine !== null, figures: () => fgsmFigures(model, test, batchSize, options, engine) };
  };
  const iterative = (epsilons: readonly number[], clip: readonly [number, number] | null, schedule: Schedule): AttackMeasure => ({
    onEngine: onDevice !== null,
    figures: () => iterativeFigures(model, test, batchSize, epsilons, clip, schedule, onDevice),
  });
  const bim = (epsilon: number) => ({ steps: 10, stepSize: epsilon / 10, randomStart: false });
  return {
    'fgsm-standard': fgsm(fgsmWith('standard', false)),
    'fgsm-softmax-minus-onehot': fgsm(fgsmWith('softmax-minus-onehot', false, false)),
    'fgsm-exp-log-softmax-minus-onehot': fgsm(fgsmWith('exp-log-softmax-minus-onehot', false, false)),
    'fgsm-stable': fgsm(fgsmWith('stable', false)),
    'fgsm-standard-clipped': fgsm(fgsmWith('standard', true)),
    'fgsm-stable-clipped': fgsm(fgsmWith('stable', true)),
    'bim-10': iterative(AUDIT_EPSILONS, [0, 1], bim),
    'pgd-40': iterative(AUDIT_EPSILONS, [0, 1], () => ({ steps: 40, stepSize: 0.01, randomStart: true })),
    'bim-10-unbounded': iterative([UNBOUNDED_EPSILON], null, bim),
  };
}

/**
 * The engines of a transfer check where the audited model has one (`onDevice`) and the engine takes the source: the
 * source's own over the same test split, made here; null otherwise.
 */
async function transferOnEngine(
  source: { run: FoundRun; model: Classifier },
  model: Classifier,
  test: Split,
  onDevice: ResidentFgsm | null,
  progress: Progress,
  name: string,
): Promise<{ engines: Engines; release(): void } | null> {
  if (!onDevice) return null;
  const made = await engineAttack(source.model.spec, ENGINE_AUDIT_ATTACK, test, progress, { purpose: `${name}: FGSM made on ${source.run.name}` });
  if (!made) return null;
  return {
    engines: new Map([
      [source.model, made.attack],
      [model, onDevice],
    ]),
    release: () => made.release(),
  };
}

/** FGSM (standard gradient, clipped) made on `source`, scored by `model`: on their engines where `engines` holds both. */
async function transferFigures(source: Classifier, model: Classifier, test: Split, batchSize: number, engines?: Engines): Promise<AttackFigure[]> {
  const options = fgsmWith('standard', true);
  if (engines) {
    const attack = AttackSchema.parse({ epsilons: options.epsilons, clip: options.clip, gradient: options.gradient, batchSize });
    const scored = await scoreAdversarial(source, [model], test, attack, () => {}, engines);
    return figuresAt(
      options.epsilons,
      metricsOf(
        model,
        test,
        scored.map((byScorer) => byScorer[0]!),
      ),
    );
  }
  const make: AdversarialBatch = (x, y) => {
    const { adversarial, direction } = fastGradientSign(source, x, y, { ...options, countZeroGradients: false });
    tf.dispose(direction);
    return adversarial;
  };
  const metrics = await adversarialMetrics(model, test, batchSize, make);
  return figuresAt(options.epsilons, metrics);
}

/**
 * The masking checks of a model whose figures are all measured. Single-step: FGSM clipped, with the standard gradient
 * the iterative attacks take (and, apart, with the stable one); iterative: the larger of BIM-10 and PGD-40 (PGD-40's
 * 40 steps of 0.01 cannot cross the 2ε = 0.5 of the ε = .25 ball from a far random start, where BIM's ten steps of
 * ε/10 can); white-box: every clipped attack; unbounded: FGSM (both gradients) and BIM-10 at ε = 1 without clipping.
 */
export function checksOf(audit: Pick<ModelAudit, 'attacks' | 'transfer'>): MaskingCheck[] {
  const a = audit.attacks;
  const largest = (keys: readonly string[], epsilon: number) => Math.max(...keys.map((key) => errorAt(a[key], epsilon) ?? 0));
  const bounded = AUDIT_EPSILONS.map((epsilon) => ({
    epsilon,
    singleStep: largest(['fgsm-standard-clipped'], epsilon),
    iterative: largest(['bim-10', 'pgd-40'], epsilon),
    singleStepStable: errorAt(a['fgsm-stable-clipped'], epsilon),
    whiteBox: largest(CLIPPED_ATTACKS, epsilon),
    transfer: audit.transfer ? errorAt(audit.transfer.figures, epsilon) : null,
  }));
  const unbounded = largest(['fgsm-standard', 'fgsm-stable', 'bim-10-unbounded'], UNBOUNDED_EPSILON);
  return maskingChecks({ bounded, unbounded: { epsilon: UNBOUNDED_EPSILON, error: unbounded } });
}

/** Re-measures a stale record's FGSM figures with today's gradient forms and rewrites result.json and report.md. */
async function repairRecord(run: FoundRun, model: Classifier, raw: RawMnist, backend: BackendChoice, progress: Progress, why: string): Promise<void> {
  const { record } = run;
  const test = makeSplits(raw, record.config.data).test;
  const clean = await cleanMetrics(model, test, record.config.attack.batchSize);
  if (clean.error !== record.metrics.clean.error) {
    throw new FgsmError(
      `${join(run.dir, 'result.json')}: its model's clean test error is ${clean.error} here, ${record.metrics.clean.error} as recorded`,
      'the model or the data differ from the run: re-run the experiment instead',
    );
  }
  const evaluation = await evaluate(model, test, {
    attack: record.config.attack,
    rubbishSamples: null,
    figureExamples: 0,
    seed: record.seed,
    progress,
  });
  const repaired: ResultRecord = {
    ...record,
    metrics: { ...record.metrics, fgsm: evaluation.fgsm, fgsmOtherGradient: evaluation.fgsmOtherGradient },
    reevaluations: [
      ...(record.reevaluations ?? []),
      { at: new Date().toISOString(), replaced: ['fgsm', 'fgsmOtherGradient'], why, provenance: collectProvenance(backend) },
    ],
  };
  writeJsonAtomic(join(run.dir, 'result.json'), repaired);
  writeFileAtomic(join(run.dir, 'report.md'), renderRunReport(repaired, compareClaims(repaired)));
}

/** Audits every complete model under `dir` (see the module comment); returns the audit, also written to options.out. */
export async function auditResults(dir: string, options: AuditOptions): Promise<AuditRecord> {
  const started = new Date();
  const previousFile = join(options.out, 'audit.json');
  const previousRecord = existsSync(previousFile) ? (JSON.parse(readFileSync(previousFile, 'utf8')) as Partial<AuditRecord>) : null;
  const progress = options.progress;
  const batchSize = options.batchSize ?? 1000;
  const found = completeModels(dir);
  // in the order named, so that a long audit does the models that matter most first
  const chosen = options.only ? options.only.flatMap((experiment) => found.filter((run) => run.record.experiment === experiment)) : found;
  if (chosen.length === 0) {
    throw new FgsmError(
      `${dir}: no complete run with a saved model${options.only ? ` among the experiments ${options.only.join(', ')}` : ''}`,
      'audit a folder that `fgsm run` wrote, after its runs have finished',
    );
  }
  const raw = await resolveMnist({ source: 'auto', explicit: explicitDataDir(options.dataDir, null), cache: cacheDir(), progress });
  const backend = await initBackend(options.backend ?? 'auto', { wasmThreads: options.threads });
  progress.line(`backend: ${backend.name} — ${backend.reason}; ${backend.detail}`);
  if (options.limit !== null) progress.line(`audit on the first ${options.limit} test examples of each model, not the whole test set`);

  const tests = new Map<string, Split>();
  const staleRecords: AuditRecord['staleRecords'] = [];
  const sources = new Map<string, { run: FoundRun; model: Classifier }>();
  const audits: ModelAudit[] = [];
  const unmeasured: string[] = [];
  try {
    for (const name of options.transferSources) {
      const run = found.find((r) => r.record.experiment === name);
      if (run) sources.set(name, { run, model: loadModel(join(run.dir, 'model')) });
    }
    for (const run of chosen) {
      const file = join(options.out, 'models', fileName(run.name));
      const weightsSha256 = digest('sha256', readFileSync(join(run.dir, 'model', 'weights.bin')));
      const model = loadModel(join(run.dir, 'model'));
      try {
        const stale = staleGradientFigures(run.record);
        if (stale) {
          if (options.repair) {
            progress.line(`${run.name}: ${stale}; re-evaluating its FGSM figures (--repair)`);
            await repairRecord(run, model, raw, backend, progress, stale);
          } else progress.line(`${run.name}: ${stale}; \`fgsm audit ${dir} --repair\` re-evaluates it`);
          staleRecords.push({ run: relative(dir, run.dir), problem: stale, repaired: options.repair });
        }
        const test = testSplitOf(raw, run, options.limit, tests);
        const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ModelAudit) : null;
        const reusable = previous && previous.weightsSha256 === weightsSha256 && previous.test.n === test.n && previous.test.limit === options.limit;
        const measured = reusable && AUDIT_ATTACKS.every(({ key }) => previous.attacks[key]) && previous.labelLeak !== null;
        if (options.tableOnly && !measured) {
          unmeasured.push(run.name);
          continue;
        }
        const recorded = run.record.metrics.fgsm['0.25'];
        const audit: ModelAudit = reusable
          ? previous
          : {
              format: 'fgsm-audit-model/1',
              name: run.name,
              experiment: run.record.experiment,
              runId: run.record.runId,
              run: relative(dir, run.dir),
              weightsSha256,
              test: { n: test.n, limit: options.limit },
              paper: paperFgsm(run.record),
              recorded: recorded && (recorded.gradient ?? 'standard') === 'standard' ? recorded.error : null,
              clean: { error: (await cleanMetrics(model, test, batchSize)).error },
              attacks: {},
              labelLeak: null,
              transfer: null,
              checks: null,
              seconds: {},
            };
        const save = () => writeJsonAtomic(file, audit);
        const timed = async <T>(key: string, measure: () => Promise<T>): Promise<T> => {
          const t0 = performance.now();
          const value = await measure();
          audit.seconds[key] = (performance.now() - t0) / 1000;
          return value;
        };
        const source = options.transferSources
          .map((name) => sources.get(name))
          .find((s) => s && s.run.dir !== run.dir && s.model.spec.classes.join() === model.spec.classes.join());
        const transferWanted = source !== undefined && audit.transfer?.source !== source.run.name;
        const toMeasure = AUDIT_ATTACKS.some(({ key }) => !audit.attacks[key]) || !audit.labelLeak || transferWanted;
        const onDevice = toMeasure ? await engineAttack(model.spec, ENGINE_AUDIT_ATTACK, test, progress, { purpose: `${run.name}: audit` }) : null;
        const measuredOn = (key: string, onEngine: boolean) => {
          const others = (audit.onEngine ?? []).filter((done) => done !== key);
          audit.onEngine = onEngine ? [...others, key] : others;
        };
        const where = (onEngine: boolean) => (onEngine ? ' (WebGPU engine)' : '');
        try {
          for (const [key, { onEngine, figures }] of Object.entries(attackMeasures(model, test, batchSize, onDevice?.attack ?? null))) {
            if (audit.attacks[key]) continue;
            progress.line(`${run.name}: ${key} on ${test.n} test examples${where(onEngine)}`);
            audit.attacks[key] = await timed(key, figures);
            measuredOn(key, onEngine);
            save();
          }
          if (!audit.labelLeak) {
            progress.line(`${run.name}: label-leaking probe${where(onDevice !== null)}`);
            audit.labelLeak = await timed('label-leak', () =>
              labelLeakProbe(model, test, { epsilons: AUDIT_EPSILONS, gradient: 'standard', clip: null, batchSize }, onDevice?.attack ?? null),
            );
            measuredOn('label-leak', onDevice !== null);
            save();
          }
          if (source && transferWanted) {
            const onEngine = await transferOnEngine(source, model, test, onDevice?.attack ?? null, progress, run.name);
            progress.line(`${run.name}: FGSM made on ${source.run.name}${where(onEngine !== null)}`);
            try {
              const figures = await timed('transfer', () => transferFigures(source.model, model, test, batchSize, onEngine?.engines));
              audit.transfer = { source: source.run.name, figures };
            } finally {
              onEngine?.release();
            }
            measuredOn('transfer', onEngine !== null);
            save();
          }
        } finally {
          onDevice?.release();
        }
        audit.checks = checksOf(audit);
        save();
        audits.push(audit);
        const failed = audit.checks.filter((c) => c.holds === false).map((c) => c.id);
        progress.line(`${run.name}: done${failed.length ? `; flags: ${failed.join(', ')}` : ''}`);
      } finally {
        model.dispose();
      }
    }
  } finally {
    for (const { model } of sources.values()) model.dispose();
  }
  const failures = audits.flatMap((audit) =>
    audit.checks!.filter((c) => MUST_HOLD.includes(c.id) && c.holds === false).map((c) => `${audit.name}: ${c.id} (${c.detail})`),
  );
  const finished = new Date();
  const record: AuditRecord = {
    format: 'fgsm-audit/1',
    dir,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    limit: options.limit,
    epsilons: [...AUDIT_EPSILONS],
    attacks: [...AUDIT_ATTACKS],
    models: audits,
    leftOut: [...unmeasured, ...found.filter((run) => !chosen.includes(run)).map((run) => run.name)],
    staleRecords,
    mustHold: [...MUST_HOLD],
    failures,
    // --table-only measures nothing: the figures it tables were measured where the previous audit ran
    provenance: (options.tableOnly && previousRecord?.provenance) || collectProvenance(backend),
    seconds: (finished.getTime() - started.getTime()) / 1000,
  };
  writeJsonAtomic(join(options.out, 'audit.json'), record);
  writeFileAtomic(join(options.out, 'audit.md'), `# Robustness audit\n\n${renderRobustnessMarkdown(record)}`);
  writeFileAtomic(join(options.out, 'audit.csv'), renderRobustnessCsv(record));
  return record;
}
