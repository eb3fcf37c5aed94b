import type { AgreementConfig } from '../config/cross-run.js';
import type { LoadedCrossRun } from '../config/load.js';
import { agreementOf, type Agreement } from '../eval/agreement.js';
import type { AgreementRecord } from '../results/record.js';
import { atPaperEpsilon, bothGradients, runOverRuns, wantedRuns, type ByGradient, type CrossRunOptions } from './used-runs.js';

function agreementCsv(byGradient: readonly ByGradient<Agreement[]>[]): string {
  const rows = ['gradient,epsilon,source,rate,agree,of'];
  for (const { gradient, measured } of byGradient)
    for (const a of measured)
      for (const [key, c] of Object.entries(a.counts)) rows.push([gradient, a.epsilon, a.source, key, c.agree, c.of].join(','));
  return `${rows.join('\n')}\n`;
}

/** The rates at ε = .25 (or the first ε), keyed as the claims read them. */
const claimedRates = (perEpsilon: Agreement[]): Record<string, number | null> =>
  Object.fromEntries(Object.entries(atPaperEpsilon(perEpsilon).counts).map(([key, c]) => [key, c.rate]));

/**
 * An agreement experiment (§8): FGSM examples made on the source model, scored by it and by the models compared
 * with it; records every rate of eval/agreement.ts with its numerator and denominator, and agreement.csv, with the
 * configured softmax gradient and with the other.
 */
export async function runAgreement(
  loaded: LoadedCrossRun<AgreementConfig>,
  options: CrossRunOptions,
): Promise<{ record: AgreementRecord; dir: string }> {
  const { config } = loaded;
  // the source first: runOverRuns hands the models over in this order
  const wanted = wantedRuns(config.uses).sort((a, b) => Number(b.name === config.source) - Number(a.name === config.source));
  return runOverRuns<AgreementRecord>(loaded, wanted, 'fgsm-agreement/1', options, async ([source, ...compared], test, engines) => {
    const both = await bothGradients(config.attack, (attack) => agreementOf(source!, compared, test, attack, options.progress, engines));
    const [configured, other] = both;
    return {
      metrics: {
        agreement: claimedRates(configured.measured),
        byEpsilon: configured.measured,
        otherGradient: { gradient: other.gradient, agreement: claimedRates(other.measured), byEpsilon: other.measured },
      },
      files: { 'agreement.csv': agreementCsv(both) },
    };
  });
}
