import { CLAIMS, claimById, paperValue, type Claim, type ClaimQuantity } from '../paper/claims.js';
import { fgsmByGradient, type ClaimSource, type CrossRunResult } from '../results/record.js';

export type Verdict = 'reproduced' | 'off' | 'not measured' | 'out of scope' | 'not comparable';

/** One line of the paper table: a quantity of a claim, the paper's number and ours. */
export interface ReportRow {
  experiment: string;
  runId: string;
  id: string;
  section: string;
  description: string;
  quantity: string;
  /** Percent. For multi-seed claims, the mean of `paperValues`. */
  paper: number;
  paperValues: number[];
  /** Percent, or null when this run did not measure it. For FGSM quantities: with the standard softmax gradient, as the paper computed it. */
  ours: number | null;
  /** FGSM quantities only: the same with the stable softmax gradient (docs/paper.md §3); null otherwise or not measured. */
  oursStableGradient: number | null;
  delta: number | null;
  tolerance: number;
  verdict: Verdict;
  /** The CI condition, e.g. "≥ 99", or null. */
  mustHold: string | null;
  /** Whether the CI condition holds (null when there is none or nothing was measured). */
  holds: boolean | null;
  /** A row summarising several seeds of one experiment: `ours` is their mean. */
  seeds: { count: number; min: number; max: number; sd: number } | null;
}

function measured(metrics: unknown, path: string[]): number | null {
  let node: unknown = metrics;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return null;
    node = (node as Record<string, unknown>)[part];
  }
  return typeof node === 'number' ? 100 * node : null;
}

function describeMustHold(q: ClaimQuantity): string | null {
  const must = q.mustHold;
  if (!must) return null;
  if (must.op === 'below') return `≥ ${must.value} pts below ${must.claim} ${must.quantity}`;
  return must.op === 'within' ? `within ±${must.value} of paper` : `${must.op === '>=' ? '≥' : '≤'} ${must.value}`;
}

/** Whether ours meets the condition; null for a condition on another run (see resolveRelativeChecks). */
function holds(q: ClaimQuantity, ours: number, paper: number): boolean | null {
  const must = q.mustHold;
  if (!must || must.op === 'below') return null;
  if (must.op === '>=') return ours >= must.value;
  if (must.op === '<=') return ours <= must.value;
  return Math.abs(ours - paper) <= must.value + 1e-9;
}

/**
 * Settles the conditions that compare two runs (e.g. the adversarially trained network's FGSM error at least 30
 * points below the baseline's) against the other rows: fails when the other run is absent or did not measure it.
 */
export function resolveRelativeChecks(rows: ReportRow[]): ReportRow[] {
  return rows.map((row) => {
    const must = claimById(row.id)?.quantities.find((q) => q.name === row.quantity)?.mustHold;
    if (must?.op !== 'below' || row.ours === null || row.verdict === 'not comparable') return row;
    const others = rows.filter((other) => other.id === must.claim && other.quantity === must.quantity && other.ours !== null);
    const reference = others.length ? others.reduce((sum, other) => sum + other.ours!, 0) / others.length : null;
    return {
      ...row,
      mustHold: `${row.mustHold} (${reference === null ? 'not measured' : `${reference.toFixed(2)}%`})`,
      holds: reference === null ? false : row.ours <= reference - must.value,
    };
  });
}

/** Records of experiments over runs: they measure no FGSM of their own under metrics.fgsm. */
const CROSS_RUN_FORMATS: readonly string[] = ['fgsm-transfer/1', 'fgsm-agreement/1', 'fgsm-ensemble/1'] satisfies CrossRunResult['format'][];
const isCrossRun = (result: ClaimSource): result is CrossRunResult => CROSS_RUN_FORMATS.includes(result.format);

/**
 * A quantity as `result` measured it, in percent, and for an FGSM quantity also with the stable gradient: the
 * claim's own number is the standard gradient's, whichever the run configured, since that is what the paper did.
 */
function measuredBothWays(result: ClaimSource, metric: string[]): { ours: number | null; stable: number | null } {
  if (isCrossRun(result)) {
    // experiments over runs measure the other gradient too (records from before that did not)
    const mine = measured(result.metrics, metric);
    const other = 'otherGradient' in result.metrics ? result.metrics.otherGradient : undefined;
    if (!other) return { ours: mine, stable: null };
    const theirs = measured(other, metric);
    return other.gradient === 'stable' ? { ours: mine, stable: theirs } : { ours: theirs, stable: mine };
  }
  // a run whose attack is BIM or PGD measured no FGSM figure of the paper's (hand-made records may have no config)
  if (metric[0] === 'fgsm' && (result.config?.attack?.method ?? 'fgsm') !== 'fgsm') return { ours: null, stable: null };
  // (a record without FGSM metrics, as a hand-made one may be, measured neither)
  if (metric[0] !== 'fgsm' || !result.metrics.fgsm) return { ours: measured(result.metrics, metric), stable: null };
  const { standard, stable } = fgsmByGradient(result.metrics);
  return { ours: measured(standard, metric.slice(1)), stable: measured(stable, metric.slice(1)) };
}

/** The rows of one claim as `result` measured it; with no result, the claim as no run has measured it yet. */
function rowsFor(claim: Claim, result: ClaimSource | null): ReportRow[] {
  // a run on data other than the paper's (the embedded subset) measures something, but not the paper's number
  const comparable = !result?.data?.warning;
  return claim.quantities.map((q) => {
    const paper = paperValue(q);
    const both = claim.outOfScope || !result ? { ours: null, stable: null } : measuredBothWays(result, q.metric);
    const ours = both.ours;
    const delta = ours === null ? null : ours - paper;
    const verdict: Verdict = claim.outOfScope
      ? 'out of scope'
      : !comparable
        ? 'not comparable'
        : ours === null
          ? 'not measured'
          : Math.abs(delta!) <= q.tolerance + 1e-9
            ? 'reproduced'
            : 'off';
    return {
      experiment: result ? `${result.experiment}${result.provisional ? ' (provisional)' : ''}` : '—',
      runId: result?.runId ?? '—',
      id: claim.id,
      section: claim.section,
      description: claim.description,
      quantity: q.name,
      paper,
      paperValues: Array.isArray(q.paper) ? q.paper : [q.paper],
      ours,
      oursStableGradient: both.stable,
      delta,
      tolerance: q.tolerance,
      verdict,
      mustHold: describeMustHold(q),
      // a must-hold claim that a run names but did not measure fails; one that no run names is not judged
      holds: !result ? null : ours === null || !comparable ? (q.mustHold ? false : null) : holds(q, ours, paper),
      seeds: null,
    };
  });
}

/** The paper table rows for the claims a result names, in the order it names them. */
export function compareClaims(result: ClaimSource): ReportRow[] {
  return result.claims.flatMap((id) => {
    const claim = claimById(id);
    return claim ? rowsFor(claim, result) : [];
  });
}

/** Every claim of the paper that none of `rows` covers, as "not measured" (or "out of scope") rows. */
export function unmeasuredClaims(rows: ReportRow[]): ReportRow[] {
  const covered = new Set(rows.map((row) => row.id));
  return CLAIMS.filter((claim) => !covered.has(claim.id)).flatMap((claim) => rowsFor(claim, null));
}

/** Rows whose must-hold condition fails (or was not measured): what `fgsm report --check` rejects. */
export function failedChecks(rows: ReportRow[]): ReportRow[] {
  return rows.filter((row) => row.mustHold !== null && row.holds === false);
}

/**
 * For every experiment measured with several seeds, a row per quantity with the mean over the seeds (judged like
 * any row) and their spread, placed after the runs' own rows.
 */
export function withSeedMeans(rows: ReportRow[]): ReportRow[] {
  const groups = new Map<string, ReportRow[]>();
  for (const row of rows) {
    if (row.ours === null || row.experiment === '—') continue;
    const key = `${row.experiment}\u0000${row.id}\u0000${row.quantity}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const out: ReportRow[] = [];
  const done = new Set<string>();
  for (const row of rows) {
    out.push(row);
    const key = `${row.experiment}\u0000${row.id}\u0000${row.quantity}`;
    const group = groups.get(key) ?? [];
    if (group.length < 2 || group.at(-1) !== row || done.has(key)) continue;
    done.add(key);
    const values = group.map((r) => r.ours!);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const stable = group.map((r) => r.oursStableGradient);
    const sd = Math.sqrt(values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (values.length - 1));
    const claim = claimById(row.id)!;
    const q = claim.quantities.find((quantity) => quantity.name === row.quantity)!;
    const delta = mean - row.paper;
    out.push({
      ...row,
      runId: `mean of ${values.length} seeds`,
      ours: mean,
      oursStableGradient: stable.every((v) => v !== null) ? stable.reduce((a, b) => a + b!, 0) / stable.length : null,
      delta,
      verdict: group.some((r) => r.verdict === 'not comparable') ? 'not comparable' : Math.abs(delta) <= q.tolerance + 1e-9 ? 'reproduced' : 'off',
      holds: group.some((r) => r.holds === false) ? false : holds(q, mean, row.paper),
      seeds: { count: values.length, min: Math.min(...values), max: Math.max(...values), sd },
    });
  }
  return out;
}
