import chalk from 'chalk';
import Table from 'cli-table3';
import { existsSync, statSync } from 'node:fs';
import { withOriginalValues } from '../config/load.js';
import { FgsmError } from '../core/errors.js';
import { dataIdentity } from '../data/identity.js';
import { fgsmByGradient, type ResultRecord } from '../results/record.js';
import { findResultFiles, readRecord } from './collect.js';

/**
 * Runs side by side (`fgsm compare`): the config keys in which they differ, and what each measured (how long
 * it trained and which epoch it kept, clean error, FGSM error at every ε with both softmax gradients,
 * confidence on mistakes and saturated examples at one ε). An ablation's table made from its records, as
 * RobustBench sets its models' records side by side, never copied by hand.
 */
export interface SideBySide {
  /** The config keys (dotted paths) whose values differ between the runs; `data` when their data differ. */
  keys: string[];
  /** Every ε some run measured, ascending, as the records key them. */
  epsilons: string[];
  /** The ε of the confidence and saturation columns. */
  focus: string;
  rows: SideBySideRow[];
}

export interface SideBySideRow {
  run: string;
  /** What was evaluated when the run had not finished (`fgsm peek`), else null. */
  provisional: string | null;
  /** The run's value of each of `keys`. */
  values: string[];
  /** Stage-1 epochs trained, the epoch whose parameters were evaluated, stage-2 epochs (null: none). */
  epochs: number;
  keptEpoch: number;
  stage2Epochs: number | null;
  trainingHours: number;
  cleanError: number;
  /** Per ε of `epsilons`: the error with each softmax gradient, null where not measured. */
  fgsm: { standard: number | null; stable: number | null }[];
  confidenceOnMistakes: number | null;
  saturated: number | null;
}

/** The result records under `paths` (files, run folders, or folders holding runs; provisional results too). */
export function resultRecordsAt(paths: string[]): { file: string; record: ResultRecord }[] {
  const files = paths.flatMap((path) => {
    if (!existsSync(path)) throw new FgsmError(`${path}: no such file or folder`, 'name run folders, their result.json, or folders holding runs');
    return statSync(path).isDirectory() ? findResultFiles(path, 5) : [path];
  });
  const found = files.flatMap((file) => {
    const record = readRecord(file);
    return record.format === 'fgsm-result/1' ? [{ file, record }] : [];
  });
  if (found.length === 0) {
    throw new FgsmError(
      `no result of a trained run under ${paths.join(', ')}`,
      'fgsm run writes result.json when a run completes, fgsm peek <run>/provisional/result.json',
    );
  }
  return found;
}

type Flat = Map<string, string>;

function flatten(value: unknown, prefix: string, into: Flat): Flat {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, into);
  } else {
    into.set(prefix, JSON.stringify(value));
  }
  return into;
}

/** Keys that name or describe a run rather than make it. */
const NOT_A_DIFFERENCE = new Set(['name', 'description', 'claims']);

function differingKeys(flats: Flat[]): string[] {
  const keys = new Set(flats.flatMap((flat) => [...flat.keys()]));
  return [...keys].filter((key) => !NOT_A_DIFFERENCE.has(key) && new Set(flats.map((flat) => flat.get(key) ?? '(absent)')).size > 1).sort();
}

/** Records from before runs recorded their data identity get it from their files and counts, as a run would. */
const dataOf = (record: ResultRecord): string => (record.data.identity ?? dataIdentity(record.data, record.data.counts)).description;

export function sideBySide(records: ResultRecord[], at?: number): SideBySide {
  const flats = records.map((record) => flatten(withOriginalValues(record.config), '', new Map()));
  const keys = differingKeys(flats);
  const dataDiffer = new Set(records.map(dataOf)).size > 1;
  const epsilons = [...new Set(records.flatMap((r) => Object.keys(r.metrics.fgsm)))].sort((a, b) => Number(a) - Number(b));
  const common = epsilons.filter((e) => records.every((r) => e in r.metrics.fgsm));
  const focus = at === undefined ? (common.includes('0.25') ? '0.25' : (common.at(-1) ?? epsilons.at(-1)!)) : String(at);
  if (!epsilons.includes(focus)) throw new FgsmError(`--at ${focus}: no run measured ε = ${focus}`, `measured: ${epsilons.join(', ')}`);
  const rows = records.map((record, i): SideBySideRow => {
    const byGradient = fgsmByGradient(record.metrics);
    const training = record.metrics.training;
    const atFocus = record.metrics.fgsm[focus];
    return {
      run: `${record.experiment} / ${record.runId}`,
      provisional: record.provisional ?? null,
      values: [...keys.map((key) => flats[i]!.get(key) ?? '(absent)'), ...(dataDiffer ? [dataOf(record)] : [])],
      epochs: training.epochs,
      keptEpoch: training.chosenEpoch,
      stage2Epochs: training.stage2?.epochs ?? null,
      trainingHours: training.totalSeconds / 3600,
      cleanError: record.metrics.clean.error,
      fgsm: epsilons.map((e) => ({ standard: byGradient.standard?.[e]?.error ?? null, stable: byGradient.stable?.[e]?.error ?? null })),
      confidenceOnMistakes: atFocus?.meanConfidenceOnMistakes ?? null,
      saturated: atFocus?.saturated ?? null,
    };
  });
  return { keys: dataDiffer ? [...keys, 'data'] : keys, epsilons, focus, rows };
}

const pct = (v: number | null): string => (v === null ? '—' : (100 * v).toFixed(2));
const both = (cell: { standard: number | null; stable: number | null }): string =>
  cell.stable === null ? pct(cell.standard) : `${pct(cell.standard)} / ${pct(cell.stable)}`;
const epochsText = (row: SideBySideRow): string =>
  `${row.keptEpoch} of ${row.epochs}${row.stage2Epochs === null ? '' : ` + ${row.stage2Epochs}`}${row.provisional ? ' (provisional)' : ''}`;
const valueText = (value: string): string => value.replace(/^"(.*)"$/, '$1');

function header(table: SideBySide): string[] {
  return [
    'run',
    ...table.keys,
    'epoch kept (of stage 1 + 2)',
    'training h',
    'clean error %',
    ...table.epsilons.map((e) => `FGSM ε=${e} %`),
    `conf. on mistakes ε=${table.focus} %`,
    'saturated',
  ];
}

function cells(row: SideBySideRow): string[] {
  return [
    row.run,
    ...row.values.map(valueText),
    epochsText(row),
    row.trainingHours.toFixed(2),
    pct(row.cleanError),
    ...row.fgsm.map(both),
    pct(row.confidenceOnMistakes),
    row.saturated === null ? '—' : String(row.saturated),
  ];
}

const NOTE =
  'FGSM cells: error with the standard softmax gradient / with the stable one (docs/paper.md §3); one figure: the run measured the standard one only.';

export function renderSideBySideTerminal(table: SideBySide): string {
  const out = new Table({
    head: header(table).map((h) => chalk.bold(h)),
    wordWrap: true,
    style: chalk.level > 0 ? { head: [], border: ['grey'] } : { head: [], border: [] },
  });
  for (const row of table.rows) out.push(cells(row));
  return `${out.toString()}\n${chalk.dim(NOTE)}`;
}

export function renderSideBySideMarkdown(table: SideBySide): string {
  const head = header(table);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i <= table.keys.length + 1 ? '---' : '---:')).join('|')}|`];
  for (const row of table.rows) lines.push(`| ${cells(row).join(' | ')} |`);
  return `${lines.join('\n')}\n\n${NOTE}\n`;
}

const csvField = (text: string): string => (/[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);

export function renderSideBySideCsv(table: SideBySide): string {
  const head = [
    'run',
    ...table.keys,
    'provisional',
    'stage1_epochs',
    'kept_epoch',
    'stage2_epochs',
    'training_hours',
    'clean_error',
    ...table.epsilons.flatMap((e) => [`fgsm_${e}_standard`, `fgsm_${e}_stable`]),
    `confidence_on_mistakes_${table.focus}`,
    'saturated',
  ];
  const num = (v: number | null): string => (v === null ? '' : String(+v.toFixed(6)));
  const body = table.rows.map((row) =>
    [
      row.run,
      ...row.values.map(valueText),
      row.provisional ?? '',
      String(row.epochs),
      String(row.keptEpoch),
      row.stage2Epochs === null ? '' : String(row.stage2Epochs),
      num(row.trainingHours),
      num(row.cleanError),
      ...row.fgsm.flatMap((cell) => [num(cell.standard), num(cell.stable)]),
      num(row.confidenceOnMistakes),
      row.saturated === null ? '' : String(row.saturated),
    ]
      .map(csvField)
      .join(','),
  );
  return `${[head.map(csvField).join(','), ...body].join('\n')}\n`;
}
