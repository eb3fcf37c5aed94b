import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { initBackend } from '../backend/select.js';
import type { Experiment } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { makeSplits } from '../data/dataset.js';
import { countsOf, dataIdentity, type DataIdentity } from '../data/identity.js';
import { cacheDir, explicitDataDir, resolveMnist } from '../data/source.js';
import { evaluate } from '../eval/evaluate.js';
import { loadModel } from '../models/weights-io.js';
import { sweepSvg } from '../results/plots.js';
import { latestCompleteRun } from '../results/run-dir.js';
import { loadForRun, runExperiment, type RunOptions } from './experiment.js';

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
function sweepKey(epsilons: number[], attack: Experiment['attack'], data: DataIdentity): string {
  const { epsilons: _configured, ...options } = attack;
  return createHash('sha256')
    .update(JSON.stringify({ epsilons, options, data: data.id }))
    .digest('hex')
    .slice(0, 10);
}

/**
 * FGSM error against ε for an experiment's model: the newest complete run of the same resolved config on the
 * same data is reused (its saved model), otherwise the experiment is run first. A sweep is a result of its own:
 * <run>/sweeps/<key>/ holds sweep.json (grid, attack, data, points), sweep.csv and sweep.svg, the key naming the
 * grid, the attack and the data, so a sweep on other data or another grid never overwrites this one.
 */
export async function sweepExperiment(file: string, epsilons: number[], options: RunOptions): Promise<{ dir: string; csv: string }> {
  const loaded = loadForRun(file, options);
  const { config } = loaded;
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
  } else {
    ({ dir: runDir, splits } = await runExperiment(file, options));
  }
  const model = loadModel(join(runDir, 'model'));
  try {
    const attack = { ...config.attack, epsilons };
    const evaluation = await evaluate(model, splits.test, {
      attack,
      rubbishSamples: null,
      figureExamples: 0,
      seed: config.seed,
      progress: options.progress,
      signal: options.signal,
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
          p.zeroGradient,
          p.n,
          p.gradient,
          p.saturated,
          others[i]!.error,
          others[i]!.meanConfidenceOnMistakes ?? '',
        ].join(','),
      ),
    ].join('\n');
    const dir = join(runDir, 'sweeps', sweepKey(epsilons, config.attack, data));
    writeJsonAtomic(join(dir, 'sweep.json'), {
      format: 'fgsm-sweep/1',
      experiment: config.name,
      runId: basename(runDir),
      createdAt: new Date().toISOString(),
      epsilons,
      attack,
      data: { ...raw.provenance, identity: data },
      points,
    });
    writeFileAtomic(join(dir, 'sweep.csv'), `${csv}\n`);
    writeFileAtomic(join(dir, 'sweep.svg'), await sweepSvg(points, `${config.name}: FGSM on ${splits.test.n} test examples`));
    return { dir, csv };
  } finally {
    model.dispose();
  }
}
