import type { MaskingCheckId } from '../eval/masking.js';
import { AUDIT_EPSILONS, UNBOUNDED_EPSILON, type AttackFigure, type AuditRecord, type ModelAudit } from '../results/audit-record.js';

/** The robustness table of an audit (pipeline/audit.ts) beside the paper's claims: markdown and CSV. */

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : `${(100 * v).toFixed(2)}%`);
const errorAt = (figures: AttackFigure[] | undefined, epsilon: number) => figures?.find((f) => f.epsilon === epsilon)?.error ?? null;

/** The flags' names in the table: a check that does not hold is a sign of gradient masking (eval/masking.ts). */
export const FLAG_NAMES: Record<MaskingCheckId, string> = {
  'iterative-at-least-single-step': 'PGD < FGSM',
  'rising-with-epsilon': 'not rising with ε',
  'near-total-unbounded': 'unbounded < 99%',
  'white-box-at-least-transfer': 'transfer > white-box',
};

function flagsOf(audit: ModelAudit, epsilon: number): string {
  const flags = (audit.checks ?? []).filter((c) => c.holds === false).map((c) => FLAG_NAMES[c.id]);
  if (audit.labelLeak?.find((l) => l.epsilon === epsilon)?.leaks) flags.push('label leaking');
  return flags.length ? flags.join(', ') : 'none';
}

/** The FGSM figure the paper's attack gives (standard gradient, unclipped), with the range over the other formulations. */
function fgsmCell(audit: ModelAudit, epsilon: number): string {
  return pct(errorAt(audit.attacks['fgsm-standard'], epsilon));
}

function modelRows(audit: ModelAudit): string[] {
  const a = audit.attacks;
  const unbounded = Math.max(errorAt(a['fgsm-standard'], UNBOUNDED_EPSILON) ?? 0, errorAt(a['fgsm-stable'], UNBOUNDED_EPSILON) ?? 0);
  return AUDIT_EPSILONS.map((epsilon, row) => {
    const leak = audit.labelLeak?.find((l) => l.epsilon === epsilon);
    const cells = [
      row === 0 ? `**${audit.name}**` : '',
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
      row === 0 ? pct(unbounded) : '',
      flagsOf(audit, epsilon),
    ];
    return `| ${cells.join(' | ')} |`;
  });
}

/** The table of every model audited, its legend, and the records found mislabelled. */
export function renderRobustnessMarkdown(record: AuditRecord): string {
  const lines = [
    `Audit of \`${record.dir}\`: ${record.models.length} model(s), ${
      record.limit === null
        ? 'the whole test set of each'
        : `**the first ${record.limit} test examples of each only** (not comparable with the paper)`
    }; ${record.provenance.backend.name} (${record.provenance.backend.detail ?? record.provenance.backend.device}), ${Math.round(record.seconds)} s.`,
    '',
    '| model | clean | ε | paper | FGSM | FGSM stable ∇ | FGSM clipped (standard / stable) | BIM-10 | PGD-40 | label leak (true / predicted y) | transfer (made on) | unbounded ε=1 | flags |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...record.models.flatMap(modelRows),
    '',
    "Errors on the test set under each attack. paper: the paper's FGSM error (ε = .25), which its claims judge against the FGSM column. " +
      'FGSM: x + ε·sign(∇ₓJ) with the standard softmax gradient, unclipped, as the paper; stable ∇: the same with the stable ' +
      'gradient (docs/paper.md §3). Clipped, BIM-10 (ten steps of ε/10) and PGD-40 (random start, forty steps of 0.01) keep x̃ ' +
      "in [0, 1]. Label leak: FGSM with the true labels against FGSM with the model's own predictions (Kurakin et al. 2017): " +
      'leaking when the true labels give the lower error. Transfer: FGSM (clipped) made on another model and scored by this one. ' +
      'Unbounded: FGSM at ε = 1 without clipping, the larger error of the two gradients.',
    '',
    `Flags (gradient-masking checks, Carlini et al. 2019): ${Object.values(FLAG_NAMES).join('; ')} — each names a check that does not hold. ` +
      `CI must see these hold on every model: ${record.mustHold.map((id) => FLAG_NAMES[id as MaskingCheckId] ?? id).join(', ')} never flagged.`,
    '',
  ];
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
