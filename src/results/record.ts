import type { AgreementConfig, EnsembleConfig, TransferConfig } from '../config/cross-run.js';
import { SOFTMAX_GRADIENTS, type Experiment } from '../config/schema.js';
import type { Counts, DataIdentity } from '../data/identity.js';
import type { DataProvenance } from '../data/source.js';
import type { ClassificationMetrics, RubbishMetrics } from '../eval/metrics.js';
import type { FgsmMetrics } from '../eval/evaluate.js';
import type { Agreement } from '../eval/agreement.js';
import type { EnsembleMetrics } from '../eval/ensemble.js';
import type { TransferMatrix } from '../eval/transfer.js';
import { GRADIENT_FORMS, GRADIENT_FORMS_2_SINCE, otherGradient, type SoftmaxGradient } from '../models/classifier.js';
import type { TrainingSummary } from '../train/loop.js';
import type { Provenance } from './provenance.js';

/** The contents of result.json: one run, everything measured and everything needed to trust it. */
export interface ResultRecord {
  format: 'fgsm-result/1';
  experiment: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  /** Seconds this invocation took (a resumed run counts only its own part; see training.seconds per epoch). */
  wallSeconds: number;
  config: Experiment;
  configHash: string;
  configFiles: string[];
  overrides: string[];
  /** The choices docs/paper.md §3 leaves open, as this run made them. */
  openChoices: OpenChoices;
  claims: string[];
  metrics: {
    clean: ClassificationMetrics;
    /** With the configured softmax gradient (attack.gradient), keyed by String(ε). */
    fgsm: Record<string, RecordedFgsmMetrics>;
    /** The same attack with the other gradient; absent from results written before both were measured. */
    fgsmOtherGradient?: Record<string, RecordedFgsmMetrics>;
    rubbish: RubbishMetrics | null;
    /** Clean (no dropout) metrics of the evaluated parameters on the stage-1 training split; absent from older records. */
    trainingSet?: ClassificationMetrics;
    training: Omit<TrainingSummary, 'history'>;
  };
  throughput: { fgsmImagesPerSecond: number; trainingExamplesPerSecond: number };
  /** identity: absent in records written before runs recorded it. */
  data: DataProvenance & { counts: Counts; classes: number[]; identity?: DataIdentity };
  provenance: Provenance;
  seed: number;
  files: string[];
  /** Present when the run had not finished: what was evaluated (`fgsm peek`). */
  provisional?: string;
  /** Figures measured again after the run, from its saved model, with the code of their provenance. */
  reevaluations?: Reevaluation[];
}

/** A re-measurement of some of a finished run's figures (the rest of its record is the run's own). */
export interface Reevaluation {
  at: string;
  /** The metrics keys replaced, e.g. fgsm and fgsmOtherGradient. */
  replaced: string[];
  why: string;
  provenance: Provenance;
}

/** A trained run that an experiment over several runs used: enough to find it again and to know it is the same. */
export interface UsedRun {
  /** The name the experiment gave it (a row and column of a transfer matrix; seed<N> for an ensemble's member). */
  name: string;
  configFile: string;
  /** The --set overrides that made its config from the file (an ensemble member's seed=N, seeds=null). */
  overrides: string[];
  experiment: string;
  configHash: string;
  runId: string;
  dir: string;
  /** The git commit that trained it, as its result.json says. */
  commit: string | null;
  /** sha256 of its model/weights.bin. */
  weightsSha256: string;
}

/** One cell of a transfer matrix, as the paper's claims read it: metrics.transfer.<row>To<Column>. */
export interface TransferPair {
  epsilon: number;
  error: number;
  meanConfidenceOnMistakes: number | null;
}

/** The contents of the result.json of an experiment over runs: what every kind records, and its metrics. */
interface CrossRunRecord<Format extends string, Config, Metrics> {
  format: Format;
  experiment: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  config: Config;
  configFiles: string[];
  overrides: string[];
  claims: string[];
  uses: UsedRun[];
  metrics: Metrics;
  data: DataProvenance & { counts: Counts; classes: number[]; identity: DataIdentity };
  provenance: Provenance;
  /** An experiment over runs draws nothing at random. */
  seed: null;
  files: string[];
  provisional?: undefined;
}

export type TransferRecord = CrossRunRecord<
  'fgsm-transfer/1',
  TransferConfig,
  {
    /** <row>To<Column> at ε = .25 (the paper's), or at the first ε when .25 was not attacked. */
    transfer: Record<string, TransferPair>;
    matrices: TransferMatrix[];
    /** The same with the other softmax gradient (the paper table's "stable ∇J" column); absent in older records. */
    otherGradient?: { gradient: SoftmaxGradient; transfer: Record<string, TransferPair>; matrices: TransferMatrix[] };
  }
>;

export type AgreementRecord = CrossRunRecord<
  'fgsm-agreement/1',
  AgreementConfig,
  {
    /** The rates of eval/agreement.ts at ε = .25 (or the first ε), keyed as the claims read them, e.g. rbfAll. */
    agreement: Record<string, number | null>;
    /** Every ε's counts (agree / of) and each model's error on the source's examples. */
    byEpsilon: Agreement[];
    /** The same with the other softmax gradient (the paper table's "stable ∇J" column); absent in older records. */
    otherGradient?: { gradient: SoftmaxGradient; agreement: Record<string, number | null>; byEpsilon: Agreement[] };
  }
>;

export type EnsembleRecord = CrossRunRecord<
  'fgsm-ensemble/1',
  EnsembleConfig,
  {
    /** At ε = .25 (or the first ε): whole.error and member.error are the claims'. */
    ensemble: EnsembleMetrics;
    byEpsilon: EnsembleMetrics[];
    /** The same with the other softmax gradient (the paper table's "stable ∇J" column); absent in older records. */
    otherGradient?: { gradient: SoftmaxGradient; ensemble: EnsembleMetrics; byEpsilon: EnsembleMetrics[] };
  }
>;

export type CrossRunResult = TransferRecord | AgreementRecord | EnsembleRecord;

/** Any record the paper table reads. */
export type ClaimSource = ResultRecord | CrossRunResult;

/**
 * FGSM metrics as result.json holds them. Results written before the stable gradient existed lack `gradient`
 * (their attack was the standard one) and `saturated`.
 */
export type RecordedFgsmMetrics = Omit<FgsmMetrics, 'gradient' | 'saturated'> & Partial<Pick<FgsmMetrics, 'gradient' | 'saturated'>>;

/** A record's FGSM metrics by softmax gradient: null where it did not measure that one. */
export function fgsmByGradient(metrics: ResultRecord['metrics']): Record<SoftmaxGradient, Record<string, RecordedFgsmMetrics> | null> {
  const configured = Object.values(metrics.fgsm)[0]?.gradient ?? 'standard';
  const byGradient = Object.fromEntries(SOFTMAX_GRADIENTS.map((gradient) => [gradient, null])) as Record<
    SoftmaxGradient,
    Record<string, RecordedFgsmMetrics> | null
  >;
  byGradient[configured] = metrics.fgsm;
  if (metrics.fgsmOtherGradient) byGradient[otherGradient(configured)] = metrics.fgsmOtherGradient;
  return byGradient;
}

/**
 * Why a record's figures cannot be read as labelled, or null when they can: an independent-sigmoid model whose
 * stable-gradient figures were measured before that top had a stable form (gradient forms 1, see GRADIENT_FORMS)
 * holds the standard figures under the stable label. A re-evaluation with today's forms makes it readable again.
 */
export function staleGradientFigures(record: ResultRecord): string | null {
  const model = record.config.model;
  if (model.kind !== 'maxout' || model.top !== 'sigmoid' || !record.metrics.fgsmOtherGradient) return null;
  // without the field: forms 2 if the run finished after the fix was committed
  const recorded = record.provenance.gradientForms ?? (record.finishedAt >= GRADIENT_FORMS_2_SINCE.at ? 2 : 1);
  const reevaluated = (record.reevaluations ?? []).filter((r) => r.replaced.includes('fgsmOtherGradient'));
  const forms = Math.max(recorded, ...reevaluated.map((r) => r.provenance.gradientForms ?? 1));
  if (forms >= GRADIENT_FORMS) return null;
  return `its stable-gradient FGSM figures were measured with gradient forms ${forms}, before the independent-sigmoid top had a stable form (commit ${GRADIENT_FORMS_2_SINCE.commit}): they are the standard figures a second time`;
}

export interface OpenChoices {
  /** The attack of metrics.fgsm and metrics.fgsmOtherGradient: FGSM, or BIM / PGD with its steps (see attackDescription). */
  attack: string;
  clip: 'none' | [number, number];
  fgsmLabels: 'true' | 'predicted';
  target: Experiment['attack']['target'];
  signOfZero: 0;
  attackedNetworkState: 'deterministic (evaluation state, no dropout)';
  adversarialTrainingGradientState: string;
  /** The softmax gradient of the attack (metrics.fgsm); the other one is measured too (metrics.fgsmOtherGradient). */
  attackSoftmaxGradient: SoftmaxGradient;
  adversarialTrainingSoftmaxGradient: string;
  noiseControlMixing: string;
  /** §6's 1600-unit protocol: pieces, patience, validation attack ε, second stage. */
  earlyStopping: string;
}

/** The attack a result's adversarial metrics measure, in words. */
export function attackDescription(attack: Experiment['attack']): string {
  switch (attack.method) {
    case 'fgsm':
      return 'fgsm: one step of ε';
    case 'bim':
      return `bim: ${attack.steps} steps of α = ${attack.stepSize} from x`;
    case 'pgd':
      return `pgd: ${attack.steps} steps of α = ${attack.stepSize} from ${attack.randomStart ? 'a random start' : 'x'}, ${attack.restarts} restart${attack.restarts === 1 ? '' : 's'}`;
  }
}

export function openChoicesOf(config: Experiment): OpenChoices {
  const { objective, earlyStopping: early } = config.training;
  return {
    attack: attackDescription(config.attack),
    clip: config.attack.clip,
    fgsmLabels: config.attack.labels,
    target: config.attack.target,
    signOfZero: 0,
    attackedNetworkState: 'deterministic (evaluation state, no dropout)',
    adversarialTrainingGradientState: objective.kind === 'adversarial' ? objective.gradientState : 'not applicable (no adversarial training)',
    attackSoftmaxGradient: config.attack.gradient,
    adversarialTrainingSoftmaxGradient: objective.kind === 'adversarial' ? objective.gradient : 'not applicable (no adversarial training)',
    noiseControlMixing: objective.kind === 'noise' ? objective.mixing : 'not applicable (no noise training)',
    earlyStopping:
      early.metric === 'none'
        ? 'none'
        : `${early.metric}${early.metric === 'adversarial-validation-error' ? ` (FGSM ε = ${early.epsilon})` : ''}, patience ${early.patience}, stage 2: ${config.training.stage2.mode}`,
  };
}

/** When a record's invocation ran: from `started` to now. */
export function invocationTimes(started: Date): { startedAt: string; finishedAt: string; wallSeconds: number } {
  const finished = new Date();
  return { startedAt: started.toISOString(), finishedAt: finished.toISOString(), wallSeconds: (finished.getTime() - started.getTime()) / 1000 };
}
