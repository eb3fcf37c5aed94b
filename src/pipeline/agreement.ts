import type { AgreementConfig } from '../config/cross-run.js';
import type { LoadedCrossRun } from '../config/load.js';
import { agreementOf, type Agreement } from '../eval/agreement.js';
import type { AgreementRecord } from '../results/record.js';
import { atPaperEpsilon, runOverRuns, wantedRuns, type CrossRunOptions } from './used-runs.js';

function agreementCsv(perEpsilon: Agreement[]): string {
  const rows = ['epsilon,source,rate,agree,of'];
  for (const a of perEpsilon) for (const [key, c] of Object.entries(a.counts)) rows.push([a.epsilon, a.source, key, c.agree, c.of].join(','));
  return `${rows.join('\n')}\n`;
}

/**
 * An agreement experiment (§8): FGSM examples made on the source model, scored by it and by the models compared
 * with it; records every rate of eval/agreement.ts with its numerator and denominator, and agreement.csv.
 */
export async function runAgreement(
  loaded: LoadedCrossRun<AgreementConfig>,
  options: CrossRunOptions,
): Promise<{ record: AgreementRecord; dir: string }> {
  const { config } = loaded;
  // the source first: runOverRuns hands the models over in this order
  const wanted = wantedRuns(config.uses).sort((a, b) => Number(b.name === config.source) - Number(a.name === config.source));
  return runOverRuns<AgreementRecord>(loaded, wanted, 'fgsm-agreement/1', options, async ([source, ...compared], test) => {
    const perEpsilon = await agreementOf(source!, compared, test, config.attack, options.progress);
    const claimed = atPaperEpsilon(perEpsilon);
    return {
      metrics: { agreement: Object.fromEntries(Object.entries(claimed.counts).map(([key, c]) => [key, c.rate])), byEpsilon: perEpsilon },
      files: { 'agreement.csv': agreementCsv(perEpsilon) },
    };
  });
}
