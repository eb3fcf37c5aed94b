import { createHash } from 'node:crypto';
import { basename, join, relative } from 'node:path';
import { initBackend } from '../backend/select.js';
import { AttackSchema, type AttackConfig } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { makeSplits } from '../data/dataset.js';
import { countsOf, dataIdentity, type DataIdentity } from '../data/identity.js';
import { cacheDir, explicitDataDir, resolveMnist } from '../data/source.js';
import { evaluate, type FgsmMetrics } from '../eval/evaluate.js';
import { loadModel } from '../models/weights-io.js';
import { sweepSvg } from '../results/plots.js';
import { latestCompleteRun, latestUnfinishedRun } from '../results/run-dir.js';
import { engineAttack } from './engine-attack.js';
import { loadForRun, runExperiment, type RunOptions } from './experiment.js';

/**
 * The grid of a sweep given no --eps: the range of ε the paper discusses for MNIST, 0 (the clean error) to .3.
 * Steps of .025 include the paper's .1 and .25 and resolve the steep rise between them (the committed
 * maxout-sigmoid model goes from 17% error at .05 to 90% at .15); every ε reuses one gradient per batch, so 13
 * points cost little more than 6.
 */
export const DEFAULT_SWEEP_GRID = '0:0.3:0.025';

/** Parses "start:stop:step" (inclusive) or "a,b,c" into a list of ε. */
export function parseEpsilons(text: string): number[] {
  const fail = (why: string): never => {
    throw new FgsmError(`--eps ${text}: ${why}`, 'write --eps START:STOP:STEP (e.g. 0:0.3:0.025) or a list (e.g. 0.1,0.25)');
  };
  let list: number[];
  if (text.includes(':')) {
    const parts = text.split(':').map(Number);
    if (parts.length !== 3 || parts.some((p) => !Number.isFinite(p))) fail('expected three numbers START:STOP:STEP');
    const [start, stop, step] = parts as [number, number, number];
    if (!(step > 0) || stop < start) fail('expected STEP > 0 and STOP ≥ START');
    const count = Math.floor((stop - start) / step + 1e-9) + 1;
    if (count > 1000) fail(`${count} values; expected at most 1000`);
    list = Array.from({ length: count }, (_, i) => +(start + i * step).toFixed(10));
  } else {
    list = text.split(',').map((v) => Number(v.trim()));
  }
  for (const eps of list) if (!(Number.isFinite(eps) && eps >= 0 && eps <= 1)) fail(`expected every ε in [0, 1], found ${eps}`);
  return list;
}

/** What a sweep was: its grid, its attack and its data. Sweeps that differ in any of these never share a folder. */
/**
 * The attack a sweep draws instead of the configured one (`fgsm sweep --attack … --steps …`): absent keys keep the
 * configured values where the method is the configured one (the default), else their defaults.
 */
export interface AttackChoice {
  method?: AttackConfig['method'];
  steps?: number;
  stepSize?: number;
  randomStart?: boolean;
  restarts?: number;
}

/**
 * The attack of a sweep over `epsilons`: the configured one, or `choice` with the configured clip, labels, target,
 * batch size and gradient (and the configured steps where the configured method is the chosen one).
 */
export function sweptAttack(configured: AttackConfig, epsilons: number[], choice: AttackChoice | null): AttackConfig {
  if (!choice) return { ...configured, epsilons };
  const { epsilons: _configured, clip, labels, target, batchSize, gradient } = configured;
  const method = choice.method ?? configured.method;
  const base = method === configured.method ? configured : { method, clip, labels, target, batchSize, gradient };
  const given = Object.fromEntries(Object.entries(choice).filter(([, value]) => value !== undefined));
  const parsed = AttackSchema.safeParse({ ...base, ...given, epsilons });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'attack'}: ${issue.message}`).join('; ');
    throw new FgsmError(`sweep with ${method}: ${problems}`, 'steps, step size and restarts belong to bim and pgd; random start and restarts to pgd');
  }
  return parsed.data;
}

/** What a sweep was: its grid, its attack and its data. Sweeps that differ in any of these never share a folder. */
function sweepKey(epsilons: number[], attack: AttackConfig, data: DataIdentity): string {
  const { epsilons: _configured, ...options } = attack;
  return createHash('sha256')
    .update(JSON.stringify({ epsilons, options, data: data.id }))
    .digest('hex')
    .slice(0, 10);
}

export interface SweepOptions extends RunOptions {
  /** Train the experiment when it has no complete run on this data, instead of refusing (training takes hours). */
  trainMissing: boolean;
}

export interface Sweep {
  dir: string;
  /** Per ε: the attack with the configured softmax gradient, and with the other one. */
  points: FgsmMetrics[];
  others: FgsmMetrics[];
}

/**
 * Error against ε under the configured attack, or `choice` when given, for an experiment's model: the newest complete run of the same resolved config on the
 * same data is reused (its saved model); without one the experiment is trained first only when asked
 * (--train-missing, or --fresh for a new model). A sweep is a result of its own: <run>/sweeps/<key>/ holds
 * sweep.json (grid, attack, data, points), sweep.csv and sweep.svg, the key naming the grid, the attack and
 * the data, so a sweep on other data or another grid never overwrites this one.
 */
export async function sweepExperiment(file: string, epsilons: number[], options: SweepOptions, choice: AttackChoice | null = null): Promise<Sweep> {
  const loaded = loadForRun(file, options);
  const { config } = loaded;
  const attack = sweptAttack(config.attack, epsilons, choice);
  const raw = await resolveMnist({
    source: config.data.source,
    explicit: explicitDataDir(options.dataDir, config.data.dir),
    cache: cacheDir(),
    progress: options.progress,
  });
  let splits = makeSplits(raw, config.data);
  const data = dataIdentity(raw.provenance, countsOf(splits));
  const complete = options.fresh ? null : latestCompleteRun(options.resultsDir, config.name, loaded.configHash, data.id);
  let runDir: string;
  if (complete) {
    options.progress.line(`using the trained model of ${complete}`);
    runDir = complete;
    await initBackend(config.backend, { wasmThreads: options.threads });
  } else if (options.fresh || options.trainMissing) {
    ({ dir: runDir, splits } = await runExperiment(file, options));
  } else {
    const unfinished = latestUnfinishedRun(options.resultsDir, config.name, loaded.configHash);
    const here = relative(process.cwd(), options.resultsDir);
    const command = [
      `fgsm run ${file}`,
      ...(options.backend ? [`--backend ${options.backend}`] : []),
      ...options.overrides.map((override) => `--set ${override}`),
      ...(here === 'results' ? [] : [`--results-dir ${here && !here.startsWith('..') ? here : options.resultsDir}`]),
    ].join(' ');
    throw new FgsmError(
      `${file}: no complete run of ${config.name} (config hash ${loaded.configHash}) on ${data.description} under ${options.resultsDir}${unfinished ? `; ${join(options.resultsDir, config.name, unfinished)} has not finished` : ''}, so there is no model to sweep`,
      `train it first with \`${command}\` (it may take hours), or pass --train-missing to train it now`,
    );
  }
  const model = loadModel(join(runDir, 'model'));
  const onEngine = await engineAttack(model.spec, attack, splits.test, options.progress);
  try {
    const evaluation = await evaluate(model, splits.test, {
      attack,
      rubbishSamples: null,
      figureExamples: 0,
      seed: config.seed,
      progress: options.progress,
      signal: options.signal,
      onDevice: onEngine?.attack,
    });
    const points = epsilons.map((epsilon) => evaluation.fgsm[String(epsilon)]!);
    const others = epsilons.map((epsilon) => evaluation.fgsmOtherGradient[String(epsilon)]!);
    const csv = [
      'epsilon,error,mean_confidence,mean_confidence_on_mistakes,zero_gradient,n,gradient,saturated,other_gradient_error,other_gradient_mean_confidence_on_mistakes',
      ...points.map((p, i) =>
        [
          p.epsilon,
          p.error,
          p.meanConfidence,
          p.meanConfidenceOnMistakes ?? '',
          p.zeroGradient ?? '',
          p.n,
          p.gradient,
          p.saturated,
          others[i]!.error,
          others[i]!.meanConfidenceOnMistakes ?? '',
        ].join(','),
      ),
    ].join('\n');
    const dir = join(runDir, 'sweeps', sweepKey(epsilons, attack, data));
    writeJsonAtomic(join(dir, 'sweep.json'), {
      format: 'fgsm-sweep/1',
      experiment: config.name,
      runId: basename(runDir),
      createdAt: new Date().toISOString(),
      epsilons,
      attack,
      attacker: onEngine ? 'webgpu-engine' : 'tfjs',
      data: { ...raw.provenance, identity: data },
      points,
    });
    writeFileAtomic(join(dir, 'sweep.csv'), `${csv}\n`);
    writeFileAtomic(
      join(dir, 'sweep.svg'),
      await sweepSvg(points, `${config.name}: ${attack.method.toUpperCase()} on ${splits.test.n} test examples`),
    );
    return { dir, points, others };
  } finally {
    onEngine?.release();
    model.dispose();
  }
}
