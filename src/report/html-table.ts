/** Text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * One column of an HTML table: what its cells print, and the row's own field it shows (`key`, `value`), which each
 * cell carries in data-key / data-value so that a program reading the page gets the numbers, not their rounding.
 */
export interface Column<Row> {
  key: string;
  title: string;
  /** The cell's content as HTML (escape any text in it). */
  html: (row: Row) => string;
  value: (row: Row) => unknown;
  numeric?: boolean;
  /** A class for the cell, e.g. from the row's verdict. */
  className?: (row: Row) => string;
}

/** A column that prints a field of the row as escaped text. */
export function textColumn<Row>(key: string, title: string, value: (row: Row) => unknown, text: (row: Row) => string, numeric = false): Column<Row> {
  return { key, title, value, html: (row) => escapeHtml(text(row)), numeric };
}

/** A table with one row per element of `rows` and the given columns: adding a column adds it to every row and the head. */
export function htmlTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[], className: string): string {
  const head = columns.map((c) => `<th${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.title)}</th>`).join('');
  const body = rows.map((row) => {
    const cells = columns.map((c) => {
      const classes = [c.numeric ? 'num' : '', c.className?.(row) ?? ''].filter(Boolean).join(' ');
      const value = escapeHtml(JSON.stringify(c.value(row)) ?? 'null');
      return `<td data-key="${escapeHtml(c.key)}" data-value="${value}"${classes ? ` class="${classes}"` : ''}>${c.html(row)}</td>`;
    });
    return `<tr>${cells.join('')}</tr>`;
  });
  return `<table class="${className}"><thead><tr>${head}</tr></thead><tbody>\n${body.join('\n')}\n</tbody></table>`;
}
