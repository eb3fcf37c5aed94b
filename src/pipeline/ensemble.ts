import type { EnsembleConfig } from '../config/cross-run.js';
import { loadExperiment, type LoadedCrossRun } from '../config/load.js';
import { FgsmError } from '../core/errors.js';
import { ensembleMetrics, type EnsembleMetrics } from '../eval/ensemble.js';
import { otherGradient, type SoftmaxGradient } from '../models/classifier.js';
import type { EnsembleRecord } from '../results/record.js';
import { atPaperEpsilon, runOverRuns, type CrossRunOptions, type WantedRun } from './used-runs.js';

/** One member per seed of the members' experiment, its run found as `fgsm run` made it (seed=N, seeds=null). */
function memberRuns(file: string): WantedRun[] {
  const seeds = loadExperiment(file).config.seeds;
  if (!seeds) {
    throw new FgsmError(
      `ensemble: ${file} has no seeds: list, so it names one run, not the members of an ensemble`,
      'give the members’ experiment seeds: [1, 2, …]',
    );
  }
  return seeds.map((seed) => ({ name: `seed${seed}`, file, overrides: [`seed=${seed}`, 'seeds=null'], run: null }));
}

function ensembleCsv(byGradient: readonly { gradient: SoftmaxGradient; perEpsilon: EnsembleMetrics[] }[]): string {
  const rows = ['gradient,epsilon,made_on,scored_by,error,mean_confidence_on_mistakes'];
  for (const { gradient, perEpsilon } of byGradient) {
    for (const m of perEpsilon) {
      rows.push([gradient, m.epsilon, 'ensemble', 'ensemble', m.whole.error, m.whole.meanConfidenceOnMistakes ?? ''].join(','));
      for (const member of m.member.perMember) {
        rows.push([gradient, m.epsilon, member.name, 'ensemble', member.error, member.meanConfidenceOnMistakes ?? ''].join(','));
        rows.push([gradient, m.epsilon, member.name, member.name, member.own.fgsmError, ''].join(','));
      }
    }
  }
  return `${rows.join('\n')}\n`;
}

/**
 * An ensemble experiment (§9): the newest complete run of every seed of one experiment, their probabilities
 * averaged; FGSM against the whole ensemble and against each member, scored by the ensemble, with the configured
 * softmax gradient and with the other; ensemble.csv.
 */
export async function runEnsemble(
  loaded: LoadedCrossRun<EnsembleConfig>,
  options: CrossRunOptions,
): Promise<{ record: EnsembleRecord; dir: string }> {
  const { config } = loaded;
  return runOverRuns<EnsembleRecord>(loaded, memberRuns(config.uses.members), 'fgsm-ensemble/1', options, async (models, test) => {
    const perEpsilon = await ensembleMetrics(models, test, config.attack, options.progress);
    const other = otherGradient(config.attack.gradient);
    const otherPerEpsilon = await ensembleMetrics(models, test, { ...config.attack, gradient: other }, options.progress);
    return {
      metrics: {
        ensemble: atPaperEpsilon(perEpsilon),
        byEpsilon: perEpsilon,
        otherGradient: { gradient: other, ensemble: atPaperEpsilon(otherPerEpsilon), byEpsilon: otherPerEpsilon },
      },
      files: {
        'ensemble.csv': ensembleCsv([
          { gradient: config.attack.gradient, perEpsilon },
          { gradient: other, perEpsilon: otherPerEpsilon },
        ]),
      },
    };
  });
}
