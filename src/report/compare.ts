import { CLAIMS, claimById, paperValue, type Claim, type ClaimQuantity } from '../paper/claims.js';
import type { ResultRecord } from '../results/record.js';

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
  /** Percent, or null when this run did not measure it. */
  ours: number | null;
  delta: number | null;
  tolerance: number;
  verdict: Verdict;
  /** The CI condition, e.g. "≥ 99", or null. */
  mustHold: string | null;
  /** Whether the CI condition holds (null when there is none or nothing was measured). */
  holds: boolean | null;
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
  if (!q.mustHold) return null;
  const { op, value } = q.mustHold;
  return op === 'within' ? `within ±${value} of paper` : `${op === '>=' ? '≥' : '≤'} ${value}`;
}

function holds(q: ClaimQuantity, ours: number, paper: number): boolean | null {
  if (!q.mustHold) return null;
  const { op, value } = q.mustHold;
  if (op === '>=') return ours >= value;
  if (op === '<=') return ours <= value;
  return Math.abs(ours - paper) <= value + 1e-9;
}

/** The rows of one claim as `result` measured it; with no result, the claim as no run has measured it yet. */
function rowsFor(claim: Claim, result: ResultRecord | null): ReportRow[] {
  // a run on data other than the paper's (the embedded subset) measures something, but not the paper's number
  const comparable = !result?.data?.warning;
  return claim.quantities.map((q) => {
    const paper = paperValue(q);
    const ours = claim.outOfScope || !result ? null : measured(result.metrics, q.metric);
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
      experiment: result?.experiment ?? '—',
      runId: result?.runId ?? '—',
      id: claim.id,
      section: claim.section,
      description: claim.description,
      quantity: q.name,
      paper,
      paperValues: Array.isArray(q.paper) ? q.paper : [q.paper],
      ours,
      delta,
      tolerance: q.tolerance,
      verdict,
      mustHold: describeMustHold(q),
      // a must-hold claim that a run names but did not measure fails; one that no run names is not judged
      holds: !result ? null : ours === null || !comparable ? (q.mustHold ? false : null) : holds(q, ours, paper),
    };
  });
}

/** The paper table rows for the claims a result names, in the order it names them. */
export function compareClaims(result: ResultRecord): ReportRow[] {
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
