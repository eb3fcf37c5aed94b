import chalk from 'chalk';
import type { FgsmMetrics } from '../eval/evaluate.js';
import type { TransferMatrix } from '../eval/transfer.js';
import type { ReportRow, Verdict } from './compare.js';
import { fittedTable, wrapText, type Cell } from './table.js';

export const percent = (v: number | null, digits = 2): string => (v === null ? '—' : `${v.toFixed(digits)}%`);
export const signed = (v: number | null): string => (v === null ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(2)}`);
/** Ours; for a mean over seeds, with the standard deviation and range. */
export const oursText = (row: ReportRow): string =>
  row.seeds
    ? `${percent(row.ours, 3)} ± ${row.seeds.sd.toFixed(3)} (${row.seeds.min.toFixed(2)}–${row.seeds.max.toFixed(2)}, n = ${row.seeds.count})`
    : percent(row.ours);
/** The stable-gradient figure of an FGSM row, '—' where there is none. */
export const stableText = (row: ReportRow): string => percent(row.oursStableGradient, row.seeds ? 3 : 2);
/** Under a table whose rows carry a stable-gradient figure: what the two columns are. */
export const GRADIENT_NOTE =
  'ours: FGSM with the standard softmax gradient, as the paper computed it; stable ∇J: the same attack with the saturation-free gradient (docs/paper.md §3).';
const anyStable = (rows: ReportRow[]): boolean => rows.some((row) => row.oursStableGradient !== null);

/** The paper's number exactly as printed (several seeds: each, and their mean). */
export const paperText = (row: ReportRow): string =>
  row.paperValues.length > 1 ? `${row.paperValues.join(', ')} (mean ${+row.paper.toFixed(4)})%` : `${row.paper}%`;

export function verdictText(row: ReportRow): string {
  // one statement: a number on other data neither holds nor fails a condition about the paper's data
  if (row.verdict === 'not comparable') {
    return `not comparable: not the paper's data${row.mustHold === null ? '' : `, so it cannot show "${row.mustHold}" (needs full MNIST)`}`;
  }
  const base =
    row.verdict === 'reproduced' ? `reproduced (±${row.tolerance})` : row.verdict === 'off' ? `off (tolerance ±${row.tolerance})` : row.verdict;
  if (row.mustHold === null) return base;
  return `${base}; must hold ${row.mustHold}: ${row.holds === null ? 'judged by fgsm report' : row.holds ? 'holds' : 'FAILS'}`;
}

const COLOURS: Record<Verdict, (text: string) => string> = {
  reproduced: chalk.green,
  off: chalk.yellow,
  'not measured': chalk.gray,
  'out of scope': chalk.gray,
  'not comparable': chalk.red,
};

/**
 * The paper table for a terminal `width` columns wide (colour only when chalk detects a colour terminal). Fitted
 * to a width, it takes six columns instead of eight, so that a row stays one table row at 80 columns: § goes
 * under the claim (beside its experiment), the stable-gradient figure under ours.
 */
export function renderTerminal(rows: ReportRow[], width = Infinity): string {
  const firstPlain = (first: string) => (line: string) => (line === first ? line : chalk.dim(line));
  const verdict = (row: ReportRow) => ({ text: verdictText(row), colour: row.holds === false ? chalk.red : COLOURS[row.verdict] });
  const table = Number.isFinite(width)
    ? fittedTable(
        ['claim', 'quantity', 'paper', 'ours (stable ∇J)', 'Δ (pts)', 'verdict'],
        rows.map((row) => [
          { text: `${row.id}\n§${row.section} ${row.experiment}`, colour: firstPlain(row.id) },
          row.quantity,
          paperText(row),
          { text: row.oursStableGradient === null ? oursText(row) : `${oursText(row)}\n(${stableText(row)})`, colour: firstPlain(oursText(row)) },
          signed(row.delta),
          verdict(row),
        ]),
        { width },
      )
    : fittedTable(
        ['claim', '§', 'quantity', 'paper', 'ours', 'stable ∇J', 'Δ (pts)', 'verdict'],
        rows.map((row) => [
          { text: `${row.id}\n${row.experiment}`, colour: firstPlain(row.id) },
          row.section,
          row.quantity,
          paperText(row),
          oursText(row),
          { text: stableText(row), colour: chalk.dim },
          signed(row.delta),
          verdict(row),
        ]),
        { width },
      );
  return anyStable(rows) ? `${table}\n${chalk.dim(wrapText(GRADIENT_NOTE, width))}` : table;
}

export function renderMarkdown(rows: ReportRow[]): string {
  const lines = [
    '| claim | § | quantity | paper | ours | stable ∇J | Δ (points) | verdict | experiment / run |',
    '|---|---|---|---:|---:|---:|---:|---|---|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.id} | ${row.section} | ${row.quantity} | ${paperText(row)} | ${oursText(row)} | ${stableText(row)} | ${signed(row.delta)} | ${verdictText(row)} | ${row.experiment} / ${row.runId} |`,
    );
  }
  if (anyStable(rows)) lines.push('', GRADIENT_NOTE);
  return `${lines.join('\n')}\n`;
}

const csvField = (value: unknown): string => {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

export function renderCsv(rows: ReportRow[]): string {
  const header = [
    'id',
    'section',
    'quantity',
    'paper',
    'ours',
    'ours_stable_gradient',
    'delta',
    'tolerance',
    'verdict',
    'must_hold',
    'holds',
    'experiment',
    'run_id',
  ];
  const body = rows.map((r) =>
    [
      r.id,
      r.section,
      r.quantity,
      r.paper,
      r.ours === null ? null : +r.ours.toFixed(4),
      r.oursStableGradient === null ? null : +r.oursStableGradient.toFixed(4),
      r.delta === null ? null : +r.delta.toFixed(4),
      r.tolerance,
      r.verdict,
      r.mustHold,
      r.holds,
      r.experiment,
      r.runId,
    ]
      .map(csvField)
      .join(','),
  );
  return `${[header.join(','), ...body].join('\n')}\n`;
}

/** The rows as JSON for other programs: id, section, paper value, measured value, Δ, verdict and the rest. */
export function renderJson(rows: ReportRow[]): string {
  return `${JSON.stringify(rows, null, 2)}\n`;
}

/** A transfer matrix for a terminal: FGSM error of the column model on examples made on the row model. */
export function renderTransferTable(matrix: TransferMatrix, width = Infinity): string {
  return fittedTable(
    [`made on ↓ / scored by →  (ε=${matrix.epsilon})`, ...matrix.names],
    matrix.names.map((row, r) => [
      row,
      ...matrix.cells[r]!.map((cell, c): Cell => ({ text: `${(100 * cell.error).toFixed(2)}%`, colour: r === c ? chalk.bold : undefined })),
    ]),
    { width },
  );
}

/** A sweep for a terminal: per ε, the error with either softmax gradient and the confidences (sweep.csv has it all). */
export function renderSweepTable(points: FgsmMetrics[], others: FgsmMetrics[], width = Infinity): string {
  const rate = (v: number | null) => percent(v === null ? null : 100 * v);
  const gradient = points[0]?.gradient ?? 'standard';
  const other = others[0]?.gradient ?? 'stable';
  return fittedTable(
    ['ε', `error (${gradient} ∇J)`, `error (${other} ∇J)`, 'mean confidence', 'confidence on mistakes', 'zero gradient'],
    points.map((p, i) => [
      String(p.epsilon),
      rate(p.error),
      { text: rate(others[i]?.error ?? null), colour: chalk.dim },
      rate(p.meanConfidence),
      rate(p.meanConfidenceOnMistakes),
      `${p.zeroGradient} of ${p.n}`,
    ]),
    { width },
  );
}
