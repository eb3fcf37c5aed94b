import type { MaskingCheckId } from '../eval/masking.js';
import {
  AUDIT_EPSILONS,
  STANDARD_FORMULATIONS,
  UNBOUNDED_EPSILON,
  errorAt,
  type AttackFigure,
  type AuditRecord,
  type ModelAudit,
} from '../results/audit-record.js';

/** The robustness table of an audit (pipeline/audit.ts) beside the paper's claims: markdown and CSV. */

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : `${(100 * v).toFixed(2)}%`);

/** The flags' names in the table: a check that does not hold is a sign of gradient masking (eval/masking.ts). */
export const FLAG_NAMES: Record<MaskingCheckId, string> = {
  'iterative-at-least-single-step': 'PGD < FGSM',
  'iterative-at-least-stable-single-step': 'PGD < stable FGSM',
  'rising-with-epsilon': 'not rising with ε',
  'near-total-unbounded': 'unbounded < 99%',
  'white-box-at-least-transfer': 'transfer > white-box',
};

function flagsOf(audit: ModelAudit, epsilon: number): string {
  const flags = (audit.checks ?? []).filter((c) => c.holds === false).map((c) => FLAG_NAMES[c.id]);
  if (audit.labelLeak?.find((l) => l.epsilon === epsilon)?.leaks) flags.push('label leaking');
  return flags.length ? flags.join(', ') : 'none';
}

/**
 * The FGSM figure of the paper's attack (standard gradient, unclipped: what the paper's claims are judged against),
 * with its range over the float32 formulations of the same gradient where they differ.
 */
function fgsmCell(audit: ModelAudit, epsilon: number): string {
  const figure = pct(errorAt(audit.attacks['fgsm-standard'], epsilon));
  const spread = STANDARD_FORMULATIONS.map((key) => errorAt(audit.attacks[key], epsilon)).filter((e): e is number => e !== null);
  const [low, high] = [Math.min(...spread), Math.max(...spread)];
  return spread.length > 1 && high > low ? `${figure} (${pct(low)}–${pct(high)})` : figure;
}

/** The robustness table's columns, in order. */
export const ROBUSTNESS_HEADER = [
  'model',
  'clean',
  'ε',
  'paper',
  'FGSM',
  'FGSM stable ∇',
  'FGSM clipped (standard / stable)',
  'BIM-10',
  'PGD-40',
  'label leak (true / predicted y)',
  'transfer (made on)',
  'unbounded ε=1 (FGSM / stable / BIM-10)',
  'flags',
] as const;

/** A model's rows of the robustness table, one per ε (its name, clean error and unbounded figures on the first). */
export function robustnessCells(audit: ModelAudit): string[][] {
  const a = audit.attacks;
  const unbounded = (key: string) => pct(errorAt(a[key], UNBOUNDED_EPSILON));
  return AUDIT_EPSILONS.map((epsilon, row) => {
    const leak = audit.labelLeak?.find((l) => l.epsilon === epsilon);
    return [
      row === 0 ? audit.name : '',
      row === 0 ? pct(audit.clean.error) : '',
      String(epsilon),
      epsilon === 0.25 && audit.paper ? `${audit.paper.value}%` : '—',
      fgsmCell(audit, epsilon),
      pct(errorAt(a['fgsm-stable'], epsilon)),
      `${pct(errorAt(a['fgsm-standard-clipped'], epsilon))} / ${pct(errorAt(a['fgsm-stable-clipped'], epsilon))}`,
      pct(errorAt(a['bim-10'], epsilon)),
      pct(errorAt(a['pgd-40'], epsilon)),
      leak ? `${pct(leak.trueLabels)} / ${pct(leak.predictedLabels)}` : '—',
      audit.transfer ? `${pct(errorAt(audit.transfer.figures, epsilon))} (${audit.transfer.source})` : '—',
      row === 0 ? `${unbounded('fgsm-standard')} / ${unbounded('fgsm-stable')} / ${unbounded('bim-10-unbounded')}` : '',
      flagsOf(audit, epsilon),
    ];
  });
}

const markdownRow = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;

/** The table of every model audited, its legend, and the records found mislabelled. */
export function renderRobustnessMarkdown(record: AuditRecord): string {
  const lines = [
    `Audit of \`${record.dir}\`: ${record.models.length} model(s), ${
      record.limit === null
        ? 'the whole test set of each'
        : `**the first ${record.limit} test examples of each only** (not comparable with the paper)`
    }; ${record.provenance.backend.name} (${record.provenance.backend.detail ?? record.provenance.backend.device}); the attacks took ${Math.round(
      record.models.reduce((sum, m) => sum + Object.values(m.seconds).reduce((a, b) => a + b, 0), 0),
    )} s in all (per model and attack: models/*.json).`,
    '',
    markdownRow(ROBUSTNESS_HEADER),
    `|${ROBUSTNESS_HEADER.map((_, i) => (i === 0 || i === ROBUSTNESS_HEADER.length - 1 ? '---' : '---:')).join('|')}|`,
    ...record.models.flatMap((audit) => robustnessCells(audit).map(([name, ...rest]) => markdownRow([name ? `**${name}**` : '', ...rest]))),
    '',
    "Errors on the test set under each attack. paper: the paper's FGSM error at ε = .25; its claims (`fgsm report`) judge " +
      "the FGSM column's first figure against it. FGSM: x + ε·sign(∇ₓJ), true labels, unclipped, as the paper, with the " +
      'standard softmax gradient (tfjs autodiff of logsumexp); in brackets, where they differ, the range over three float32 ' +
      'formulations of that same gradient (standard, softmax − onehot, exp(log softmax) − onehot): how much of the figure is ' +
      'float32 rounding of a saturated softmax. Stable ∇: the gradient that never saturates (docs/paper.md §3). Clipped ' +
      'FGSM, BIM-10 (ten steps of ε/10 from x) and PGD-40 (random start, forty steps of 0.01) keep x̃ in [0, 1], with the ' +
      "standard gradient. Label leak: FGSM with the true labels against FGSM with the model's own predictions (Kurakin et " +
      'al. 2017), unclipped: leaking when the true labels give the lower error. Transfer: clipped FGSM made on another ' +
      'model, scored by this one. Unbounded: ε = 1 without clipping.',
    '',
    'Flags (gradient-masking checks, Carlini et al. 2019), each a check that does not hold: PGD < FGSM, the stronger of ' +
      'BIM-10 and PGD-40 below clipped FGSM with the same (standard) gradient at some ε; PGD < stable FGSM, the same ' +
      'below clipped FGSM with the stable gradient: float32 saturation masks the standard gradient; not rising with ε, the strongest clipped error falls from ' +
      'ε = .1 to .25 to the unbounded ε = 1 (or stays flat below 99%); unbounded < 99%, the strongest unbounded attack leaves ' +
      'more than 1% correct; transfer > white-box, FGSM made on another model beats every clipped white-box attack. ' +
      `CI must see these hold on every model: ${record.mustHold.map((id) => FLAG_NAMES[id as MaskingCheckId] ?? id).join(', ')} never flagged. PGD-40 alone can fall short of FGSM at ε = .25: its 40 steps of 0.01 cannot cross the 0.5-wide ball from a far random start.`,
    '',
  ];
  if (record.leftOut.length) lines.push(`Not audited here (left out with --only, or not yet measured): ${record.leftOut.join(', ')}.`, '');
  if (record.staleRecords.length) {
    lines.push('Records whose figures carried the wrong gradient label:', '');
    for (const s of record.staleRecords)
      lines.push(`- \`${s.run}\`: ${s.problem} — ${s.repaired ? 're-evaluated and rewritten' : 'not repaired (run with --repair)'}`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

/** One row per model, attack and ε: model,experiment,run,attack,epsilon,error,mean_confidence_on_mistakes,n. */
export function renderRobustnessCsv(record: AuditRecord): string {
  const rows = ['model,experiment,run,attack,epsilon,error,mean_confidence_on_mistakes,n'];
  for (const audit of record.models) {
    const emit = (attack: string, figures: AttackFigure[]) => {
      for (const f of figures)
        rows.push([audit.name, audit.experiment, audit.runId, attack, f.epsilon, f.error, f.meanConfidenceOnMistakes ?? '', audit.test.n].join(','));
    };
    for (const [key, figures] of Object.entries(audit.attacks)) emit(key, figures);
    for (const leak of audit.labelLeak ?? []) {
      rows.push([audit.name, audit.experiment, audit.runId, 'fgsm-true-labels', leak.epsilon, leak.trueLabels, '', audit.test.n].join(','));
      rows.push([audit.name, audit.experiment, audit.runId, 'fgsm-predicted-labels', leak.epsilon, leak.predictedLabels, '', audit.test.n].join(','));
    }
    if (audit.transfer) emit(`transfer-from-${audit.transfer.source}`, audit.transfer.figures);
  }
  return `${rows.join('\n')}\n`;
}
