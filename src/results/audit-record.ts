import type { LabelLeak } from '../eval/label-leak.js';
import type { MaskingCheck } from '../eval/masking.js';
import type { Provenance } from './provenance.js';

/** What `fgsm audit` writes (see pipeline/audit.ts): per model, models/<name>.json; for the folder, audit.json. */

export const AUDIT_EPSILONS = [0.1, 0.25] as const;
/** The unbounded check's ε: a step of 1 in every pixel, no clipping (Carlini et al. 2019: it must reach ~100%). */
export const UNBOUNDED_EPSILON = 1;

/** One attack's error at one ε. */
export interface AttackFigure {
  epsilon: number;
  error: number;
  meanConfidenceOnMistakes: number | null;
  /** FGSM: test examples whose input gradient was exactly zero everywhere (nothing to step along). */
  zeroGradient?: number;
}

/** The error of `figures` at `epsilon`, null where that ε was not measured. */
export const errorAt = (figures: readonly AttackFigure[] | undefined, epsilon: number): number | null =>
  figures?.find((f) => f.epsilon === epsilon)?.error ?? null;

/** An attack the audit runs on every model: its key in the figures and what it is, in words. */
export interface AuditAttack {
  key: string;
  description: string;
}

export const AUDIT_ATTACKS: readonly AuditAttack[] = [
  { key: 'fgsm-standard', description: 'FGSM, standard softmax gradient, unclipped (the paper); also at the unbounded ε' },
  { key: 'fgsm-softmax-minus-onehot', description: 'FGSM, the softmax-minus-onehot float32 formulation of the standard gradient, unclipped' },
  { key: 'fgsm-exp-log-softmax-minus-onehot', description: 'FGSM, the exp-log-softmax-minus-onehot float32 formulation, unclipped' },
  { key: 'fgsm-stable', description: 'FGSM, stable softmax gradient, unclipped; also at the unbounded ε' },
  { key: 'fgsm-standard-clipped', description: 'FGSM, standard softmax gradient, clipped to [0, 1]' },
  { key: 'fgsm-stable-clipped', description: 'FGSM, stable softmax gradient, clipped to [0, 1]' },
  { key: 'bim-10', description: 'BIM: 10 steps of ε/10 from x, standard gradient, clipped to [0, 1] (Kurakin et al. 2017)' },
  { key: 'pgd-40', description: 'PGD: random start, 40 steps of 0.01, standard gradient, clipped to [0, 1] (Madry et al. 2018)' },
  { key: 'bim-10-unbounded', description: 'BIM at the unbounded ε: 10 steps of ε/10, no clipping' },
];

/** The float32 formulations of the standard gradient whose FGSM figures spread, the paper's figure first. */
export const STANDARD_FORMULATIONS = ['fgsm-standard', 'fgsm-softmax-minus-onehot', 'fgsm-exp-log-softmax-minus-onehot'] as const;

/** The attacks that keep x̃ in [0, 1]: the white-box figures the masking checks compare (one threat model). */
export const CLIPPED_ATTACKS = ['fgsm-standard-clipped', 'fgsm-stable-clipped', 'bim-10', 'pgd-40'] as const;

/** Everything the audit measured on one model. */
export interface ModelAudit {
  format: 'fgsm-audit-model/1';
  name: string;
  experiment: string;
  runId: string;
  /** The run folder, relative to the audited folder. */
  run: string;
  weightsSha256: string;
  /** Test examples attacked, and the subset limit when not the whole test set. */
  test: { n: number; limit: number | null };
  /** The paper's FGSM ε = .25 error for this model, when one of its claims states it (percent). */
  paper: { claim: string; value: number } | null;
  /** The run's own recorded FGSM ε = .25 error (standard gradient, as its report judged it). */
  recorded: number | null;
  clean: { error: number };
  attacks: Record<string, AttackFigure[]>;
  labelLeak: LabelLeak[] | null;
  transfer: { source: string; figures: AttackFigure[] } | null;
  checks: MaskingCheck[] | null;
  seconds: Record<string, number>;
  /** The attacks (keys of `attacks`) measured on the WebGPU engine; the others ran on tfjs's ops. Absent before the engine attacked. */
  onEngine?: string[];
}

export interface AuditRecord {
  format: 'fgsm-audit/1';
  /** The folder audited, as given. */
  dir: string;
  startedAt: string;
  finishedAt: string;
  /** The test subset when the audit did not attack whole test sets (CI). */
  limit: number | null;
  epsilons: number[];
  attacks: AuditAttack[];
  models: ModelAudit[];
  /** The complete models under the folder that this audit left out (--only, or not yet measured with --table-only). */
  leftOut: string[];
  /** Records whose figures were labelled with the wrong gradient (see staleGradientFigures), and what became of them. */
  staleRecords: { run: string; problem: string; repaired: boolean }[];
  mustHold: string[];
  failures: string[];
  provenance: Provenance;
  seconds: number;
}
