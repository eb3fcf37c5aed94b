import type { AgreementConfig } from '../config/cross-run.js';
import type { LoadedCrossRun } from '../config/load.js';
import { agreementOf, type Agreement } from '../eval/agreement.js';
import { otherGradient, type SoftmaxGradient } from '../models/classifier.js';
import type { AgreementRecord } from '../results/record.js';
import { atPaperEpsilon, runOverRuns, wantedRuns, type CrossRunOptions } from './used-runs.js';

function agreementCsv(byGradient: readonly { gradient: SoftmaxGradient; perEpsilon: Agreement[] }[]): string {
  const rows = ['gradient,epsilon,source,rate,agree,of'];
  for (const { gradient, perEpsilon } of byGradient)
    for (const a of perEpsilon) for (const [key, c] of Object.entries(a.counts)) rows.push([gradient, a.epsilon, a.source, key, c.agree, c.of].join(','));
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
  return runOverRuns<AgreementRecord>(loaded, wanted, 'fgsm-agreement/1', options, async ([source, ...compared], test) => {
    const perEpsilon = await agreementOf(source!, compared, test, config.attack, options.progress);
    const other = otherGradient(config.attack.gradient);
    const otherPerEpsilon = await agreementOf(source!, compared, test, { ...config.attack, gradient: other }, options.progress);
    return {
      metrics: {
        agreement: claimedRates(perEpsilon),
        byEpsilon: perEpsilon,
        otherGradient: { gradient: other, agreement: claimedRates(otherPerEpsilon), byEpsilon: otherPerEpsilon },
      },
      files: {
        'agreement.csv': agreementCsv([
          { gradient: config.attack.gradient, perEpsilon },
          { gradient: other, perEpsilon: otherPerEpsilon },
        ]),
      },
    };
  });
}
