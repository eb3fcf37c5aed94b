import { join } from 'node:path';
import { initBackend } from '../backend/select.js';
import { writeFileAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { makeSplits, type Splits } from '../data/dataset.js';
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

/**
 * FGSM error against ε for an experiment's model: the newest complete run of the same resolved config is
 * reused (its saved model), otherwise the experiment is run first. Writes sweep.csv and sweep.svg beside it.
 */
export async function sweepExperiment(file: string, epsilons: number[], options: RunOptions): Promise<{ dir: string; csv: string }> {
  const loaded = loadForRun(file, options);
  const { config } = loaded;
  const complete = options.fresh ? null : latestCompleteRun(options.resultsDir, config.name, loaded.configHash);
  let dir: string;
  let splits: Splits;
  if (complete) {
    options.progress.line(`using the trained model of ${complete}`);
    dir = complete;
    const raw = await resolveMnist({
      source: config.data.source,
      explicit: explicitDataDir(options.dataDir, config.data.dir),
      cache: cacheDir(),
      progress: options.progress,
    });
    splits = makeSplits(raw, config.data);
    await initBackend(config.backend, { wasmThreads: options.threads });
  } else {
    ({ dir, splits } = await runExperiment(file, options));
  }
  const model = loadModel(join(dir, 'model'));
  try {
    const evaluation = evaluate(model, splits.test, {
      attack: { ...config.attack, epsilons },
      rubbishSamples: null,
      figureExamples: 0,
      seed: config.seed,
      progress: options.progress,
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
    writeFileAtomic(join(dir, 'sweep.csv'), `${csv}\n`);
    writeFileAtomic(join(dir, 'sweep.svg'), await sweepSvg(points, `${config.name}: FGSM on ${splits.test.n} test examples`));
    return { dir, csv };
  } finally {
    model.dispose();
  }
}
