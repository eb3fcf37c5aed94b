import type { EnsembleConfig } from '../config/cross-run.js';
import { loadExperiment, type LoadedCrossRun } from '../config/load.js';
import { FgsmError } from '../core/errors.js';
import { ensembleMetrics, type EnsembleMetrics } from '../eval/ensemble.js';
import type { EnsembleRecord } from '../results/record.js';
import { atPaperEpsilon, bothGradients, runOverRuns, type ByGradient, type CrossRunOptions, type WantedRun } from './used-runs.js';

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

function ensembleCsv(byGradient: readonly ByGradient<EnsembleMetrics[]>[]): string {
  const rows = ['gradient,epsilon,made_on,scored_by,error,mean_confidence_on_mistakes'];
  for (const { gradient, measured } of byGradient) {
    for (const m of measured) {
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
  return runOverRuns<EnsembleRecord>(loaded, memberRuns(config.uses.members), 'fgsm-ensemble/1', options, async (models, test, engines) => {
    const both = await bothGradients(config.attack, (attack) => ensembleMetrics(models, test, attack, options.progress, engines));
    const [configured, other] = both;
    return {
      metrics: {
        ensemble: atPaperEpsilon(configured.measured),
        byEpsilon: configured.measured,
        otherGradient: { gradient: other.gradient, ensemble: atPaperEpsilon(other.measured), byEpsilon: other.measured },
      },
      files: { 'ensemble.csv': ensembleCsv(both) },
    };
  });
}
