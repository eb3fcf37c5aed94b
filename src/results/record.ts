import type { Experiment } from '../config/schema.js';
import type { Counts, DataIdentity } from '../data/identity.js';
import type { DataProvenance } from '../data/source.js';
import type { ClassificationMetrics, RubbishMetrics } from '../eval/metrics.js';
import type { FgsmMetrics } from '../eval/evaluate.js';
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
  /** The choices PAPER.md §3 leaves open, as this run made them. */
  openChoices: OpenChoices;
  claims: string[];
  metrics: {
    clean: ClassificationMetrics;
    fgsm: Record<string, FgsmMetrics>;
    rubbish: RubbishMetrics | null;
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
}

export interface OpenChoices {
  clip: 'none' | [number, number];
  fgsmLabels: 'true' | 'predicted';
  target: Experiment['attack']['target'];
  signOfZero: 0;
  attackedNetworkState: 'deterministic (evaluation state, no dropout)';
  adversarialTrainingGradientState: string;
  noiseControlMixing: string;
  /** §6's 1600-unit protocol: pieces, patience, validation attack ε, second stage. */
  earlyStopping: string;
}

export function openChoicesOf(config: Experiment): OpenChoices {
  const { objective, earlyStopping: early } = config.training;
  return {
    clip: config.attack.clip,
    fgsmLabels: config.attack.labels,
    target: config.attack.target,
    signOfZero: 0,
    attackedNetworkState: 'deterministic (evaluation state, no dropout)',
    adversarialTrainingGradientState: objective.kind === 'adversarial' ? objective.gradientState : 'not applicable (no adversarial training)',
    noiseControlMixing: objective.kind === 'noise' ? objective.mixing : 'not applicable (no noise training)',
    earlyStopping:
      early.metric === 'none'
        ? 'none'
        : `${early.metric}${early.metric === 'adversarial-validation-error' ? ` (FGSM ε = ${early.epsilon})` : ''}, patience ${early.patience}, stage 2: ${config.training.stage2.mode}`,
  };
}
