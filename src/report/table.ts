import chalk from 'chalk';
import Table from 'cli-table3';
import { stripVTControlCharacters } from 'node:util';

/**
 * Tables and text fitted to a terminal's width. The cells are wrapped here, before cli-table3 draws them, since
 * cli-table3 cuts a word longer than its column ("20261126-11…") where a reader needs all of it (a run id).
 * A width of Infinity draws everything at its full width (output to a file or pipe, or --wide).
 */

/** A cell: its text, and the colour each of its lines is drawn in. */
export interface Cell {
  text: string;
  colour?: (text: string) => string;
}

export interface TableOptions {
  /** The widest a line may be, borders included; Infinity for no limit. */
  width: number;
  /** Columns whose words are never broken (run ids): as wide as their longest word at least. */
  unbroken?: number[];
}

/** Visible width: ANSI escapes take none. (Every character this project prints is one column wide.) */
const visibleWidth = (text: string): number => [...stripVTControlCharacters(text)].length;

/** A column is never narrowed below this (or its content, if narrower): narrower, one word takes many lines. */
const NARROWEST = 8;
/** Per column: one padding space either side and a border; plus the table's left border. */
const overhead = (columns: number): number => 3 * columns + 1;

/**
 * `text` in lines of at most `width` columns, each after the first starting with `indent`: broken at spaces, and
 * a word longer than a line after a `/`, `-` or `.` where it has one (a path or run id stays readable), else at
 * the width.
 */
export function wrapLine(text: string, width: number, indent = ''): string[] {
  if (!Number.isFinite(width) || visibleWidth(text) <= width) return [text];
  const lines: string[] = [];
  const lead = /^ */.exec(text)![0];
  let line = lead;
  const room = () => width - (lines.length ? visibleWidth(indent) : 0);
  const push = (done: string) => lines.push(lines.length ? indent + done : done);
  for (const word of text.slice(lead.length).split(' ')) {
    const joined = line.trim() ? `${line} ${word}` : line + word;
    if (visibleWidth(joined) <= room()) {
      line = joined;
      continue;
    }
    if (line.trim()) push(line);
    let rest = word;
    while (visibleWidth(rest) > room()) {
      const chars = [...rest];
      const fits = Math.max(1, room());
      const head = chars.slice(0, fits).join('');
      const cut = Math.max(head.lastIndexOf('/'), head.lastIndexOf('-'), head.lastIndexOf('.')) + 1;
      const at = cut > fits / 3 ? cut : fits;
      push(chars.slice(0, at).join(''));
      rest = chars.slice(at).join('');
    }
    line = rest;
  }
  if (line.trim()) push(line);
  return lines;
}

/** Text wrapped to `width`, the continuation lines of each paragraph indented by `indent`. */
export function wrapText(text: string, width: number, indent = '  '): string {
  return text
    .split('\n')
    .flatMap((paragraph) => wrapLine(paragraph, width, indent))
    .join('\n');
}

const toCell = (cell: string | Cell): Cell => (typeof cell === 'string' ? { text: cell } : cell);
const textWidth = (text: string): number => Math.max(0, ...text.split('\n').map(visibleWidth));

/**
 * Content widths that fit `available` columns: every column at its natural width if they fit, else the widest
 * ones narrowed to a common cap (never below their floors), the space left over shared out. Null when even the
 * floors do not fit.
 */
function fitWidths(natural: number[], floors: number[], available: number): number[] | null {
  const total = (widths: number[]) => widths.reduce((a, b) => a + b, 0);
  if (total(natural) <= available) return natural;
  if (total(floors) > available) return null;
  const capped = (cap: number) => natural.map((w, i) => Math.min(w, Math.max(cap, floors[i]!)));
  let cap = NARROWEST;
  while (total(capped(cap + 1)) <= available) cap++;
  const widths = capped(cap);
  for (let i = 0; i < widths.length && total(widths) < available; i++) if (widths[i]! < natural[i]!) widths[i]!++;
  return widths;
}

/** Per column: its natural width (its longest line) and the narrowest it may be drawn. */
interface Columns {
  natural: number[];
  floors: number[];
}
const pick = (all: Columns, columns: number[]): Columns => ({
  natural: columns.map((c) => all.natural[c]!),
  floors: columns.map((c) => all.floors[c]!),
});
const fit = (all: Columns, columns: number[], width: number): number[] | null => {
  const { natural, floors } = pick(all, columns);
  return fitWidths(natural, floors, width - overhead(columns.length));
};

/** The columns split into parts that each fit, each part starting with the first column (what names a row). */
function parts(all: Columns, width: number): number[][] {
  const groups: number[][] = [];
  let group = [0];
  for (let c = 1; c < all.natural.length; c++) {
    const candidate = [...group, c];
    if (group.length > 1 && !fit(all, candidate, width)) {
      groups.push(group);
      group = [0, c];
    } else group = candidate;
  }
  groups.push(group);
  return groups;
}

function draw(head: string[], rows: Cell[][], widths: number[]): string {
  const table = new Table({
    head: head.map((h, i) =>
      wrapLine(h, widths[i]!)
        .map((line) => chalk.bold(line))
        .join('\n'),
    ),
    // cli-table3 colours borders and headers by itself; follow chalk's terminal detection instead
    style: chalk.level > 0 ? { head: [], border: ['grey'] } : { head: [], border: [] },
    colWidths: widths.map((w) => w + 2),
  });
  for (const row of rows) {
    table.push(
      row.map(({ text, colour = (t: string) => t }, i) =>
        text
          .split('\n')
          .flatMap((line) => wrapLine(line, widths[i]!))
          .map((line) => colour(line))
          .join('\n'),
      ),
    );
  }
  return table.toString();
}

/**
 * A table no wider than `options.width`: columns wrapped where needed, and where even narrow columns do not fit,
 * split into several tables, each repeating the first column (what names a row: a run, a claim).
 */
export function fittedTable(head: string[], rows: (string | Cell)[][], options: TableOptions): string {
  const cells = rows.map((row) => row.map(toCell));
  const texts = (c: number) => [head[c]!, ...cells.map((row) => row[c]?.text ?? '')];
  const natural = head.map((_, c) => Math.max(1, ...texts(c).map(textWidth)));
  const longestWord = (c: number) => Math.max(...texts(c).flatMap((text) => text.split(/\s/).map(visibleWidth)));
  const floors = natural.map((w, c) => Math.min(w, options.unbroken?.includes(c) ? Math.max(NARROWEST, longestWord(c)) : NARROWEST));
  const all = { natural, floors };
  const every = head.map((_, c) => c);
  if (!Number.isFinite(options.width)) return draw(head, cells, natural);
  const widths = fit(all, every, options.width);
  if (widths) return draw(head, cells, widths);
  return parts(all, options.width)
    .map((columns) =>
      draw(
        columns.map((c) => head[c]!),
        cells.map((row) => columns.map((c) => row[c] ?? { text: '' })),
        // the first column and one more that still do not fit: as narrow as they go
        fit(all, columns, options.width) ?? pick(all, columns).floors,
      ),
    )
    .join('\n');
}
