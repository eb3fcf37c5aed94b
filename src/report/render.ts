import chalk from 'chalk';
import Table from 'cli-table3';
import type { TransferMatrix } from '../eval/transfer.js';
import type { ReportRow, Verdict } from './compare.js';

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

/** The paper table for a terminal (colour only when chalk detects a colour terminal). */
export function renderTerminal(rows: ReportRow[]): string {
  const table = new Table({
    head: ['claim', '§', 'quantity', 'paper', 'ours', 'stable ∇J', 'Δ (pts)', 'verdict'].map((h) => chalk.bold(h)),
    wordWrap: true,
    // cli-table3 colours borders and headers by itself; follow chalk's terminal detection instead
    style: chalk.level > 0 ? { head: [], border: ['grey'] } : { head: [], border: [] },
    colWidths: [26, 8, 22, 14, 9, 11, 9, 30],
  });
  for (const row of rows) {
    const colour = row.holds === false ? chalk.red : COLOURS[row.verdict];
    table.push([
      `${row.id}\n${chalk.dim(row.experiment)}`,
      row.section,
      row.quantity,
      paperText(row),
      oursText(row),
      chalk.dim(stableText(row)),
      signed(row.delta),
      colour(verdictText(row)),
    ]);
  }
  return anyStable(rows) ? `${table.toString()}\n${chalk.dim(GRADIENT_NOTE)}` : table.toString();
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
export function renderTransferTable(matrix: TransferMatrix): string {
  const table = new Table({
    head: [`made on ↓ / scored by →  (ε=${matrix.epsilon})`, ...matrix.names].map((h) => chalk.bold(h)),
    style: chalk.level > 0 ? { head: [], border: ['grey'] } : { head: [], border: [] },
  });
  matrix.names.forEach((row, r) => {
    table.push([row, ...matrix.cells[r]!.map((cell, c) => (r === c ? chalk.bold : (text: string) => text)(`${(100 * cell.error).toFixed(2)}%`))]);
  });
  return table.toString();
}
