import { type TransferConfig } from '../config/cross-run.js';
import { loadCommandLineCrossRun, loadExperiment, type LoadedCrossRun } from '../config/load.js';
import { FgsmError } from '../core/errors.js';
import { transferMatrices, type TransferMatrix } from '../eval/transfer.js';
import { transferHeatmapSvg } from '../results/plots.js';
import type { TransferPair, TransferRecord } from '../results/record.js';
import { atPaperEpsilon, bothGradients, runOverRuns, wantedRuns, type ByGradient, type CrossRunOptions } from './used-runs.js';

/**
 * The ad-hoc transfer of `fgsm transfer A.yaml B.yaml …`: every model against every other, ε = .25 unless asked;
 * --set overrides its keys (attack.gradient, attack.clip, …) as they would a transfer YAML's.
 */
export function adHocTransfer(files: string[], epsilons: number[] | null, overrides: string[]): LoadedCrossRun<TransferConfig> {
  const uses: Record<string, string> = {};
  for (const file of files) {
    const camel = loadExperiment(file).config.name.replace(/[^A-Za-z0-9]+(.)?/g, (_, next: string | undefined) => (next ?? '').toUpperCase());
    const base = /^[a-z]/.test(camel) ? camel : `m${camel}`;
    let name = base;
    for (let n = 2; name in uses; n++) name = `${base}${n}`;
    uses[name] = file;
  }
  const document = { kind: 'transfer', name: 'transfer', uses, ...(epsilons ? { attack: { epsilons } } : {}) };
  const loaded = loadCommandLineCrossRun(document, files, overrides);
  if (loaded.config.kind !== 'transfer')
    throw new FgsmError(`--set kind=${loaded.config.kind}: fgsm transfer makes a transfer experiment`, 'leave kind unset');
  return { ...loaded, config: loaded.config };
}

function pairsOf(matrix: TransferMatrix): Record<string, TransferPair> {
  const pairs: Record<string, TransferPair> = {};
  matrix.names.forEach((row, r) =>
    matrix.names.forEach((column, c) => {
      if (r === c) return;
      const cell = matrix.cells[r]![c]!;
      pairs[`${row}To${column[0]!.toUpperCase()}${column.slice(1)}`] = {
        epsilon: matrix.epsilon,
        error: cell.error,
        meanConfidenceOnMistakes: cell.meanConfidenceOnMistakes,
      };
    }),
  );
  return pairs;
}

function matricesCsv(byGradient: readonly ByGradient<TransferMatrix[]>[]): string {
  const rows = ['gradient,epsilon,made_on,scored_by,error,mean_confidence_on_mistakes,n'];
  for (const { gradient, measured } of byGradient)
    for (const m of measured)
      m.names.forEach((row, r) =>
        m.names.forEach((column, c) => {
          const cell = m.cells[r]![c]!;
          rows.push([gradient, m.epsilon, row, column, cell.error, cell.meanConfidenceOnMistakes ?? '', cell.n].join(','));
        }),
      );
  return `${rows.join('\n')}\n`;
}

/**
 * A transfer experiment (§6): makes FGSM examples on each model it uses and scores them with every model, with the
 * configured softmax gradient and with the other; its run folder (see runOverRuns) holds transfer.csv (both) and a
 * heat map per ε (the configured gradient's).
 */
export async function runTransfer(
  loaded: LoadedCrossRun<TransferConfig>,
  options: CrossRunOptions,
): Promise<{ record: TransferRecord; dir: string }> {
  const { config } = loaded;
  return runOverRuns<TransferRecord>(loaded, wantedRuns(config.uses), 'fgsm-transfer/1', options, async (models, test, engines) => {
    const both = await bothGradients(config.attack, (attack) => transferMatrices(models, test, attack, options.progress, engines));
    const [configured, other] = both;
    const files: Record<string, string> = { 'transfer.csv': matricesCsv(both) };
    for (const m of configured.measured) {
      const errors = m.cells.map((row) => row.map((cell) => cell.error));
      files[`transfer-eps${m.epsilon}.svg`] = await transferHeatmapSvg(
        m.names,
        errors,
        `${config.name}: FGSM ε=${m.epsilon} error, made on row, scored by column`,
      );
    }
    return {
      metrics: {
        transfer: pairsOf(atPaperEpsilon(configured.measured)),
        matrices: configured.measured,
        otherGradient: { gradient: other.gradient, transfer: pairsOf(atPaperEpsilon(other.measured)), matrices: other.measured },
      },
      files,
    };
  });
}
