import type { AttackConfig } from '../config/schema.js';
import type { Progress } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import { EnsembleClassifier } from '../models/ensemble.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import { classificationMetrics } from './metrics.js';
import { checkSameTask, probabilitiesOn, scoreAdversarial, type Engines, type NamedModel } from './transfer.js';

/** An error rate and the mean confidence on the mistakes, as the paper reports an attack. */
export interface ErrorSummary {
  error: number;
  meanConfidenceOnMistakes: number | null;
}

export interface MemberMetrics extends ErrorSummary {
  name: string;
  /** The member on its own: clean error and FGSM error on its own examples. */
  own: { cleanError: number; fgsmError: number };
}

/**
 * §9 at one ε: `whole` is FGSM against the ensemble, scored by the ensemble (the paper: 91.1%); `member` is FGSM
 * against one member, scored by the ensemble (87.9%), here made on each member in turn: its error and confidence
 * are the means over the members, `perMember` has each one (with the member's own clean and FGSM errors).
 */
export interface EnsembleMetrics {
  epsilon: number;
  members: number;
  clean: ErrorSummary;
  whole: ErrorSummary;
  member: ErrorSummary & { perMember: MemberMetrics[] };
}

const summary = (probabilities: Float32Array, test: Split, k: number): ErrorSummary => {
  const { error, meanConfidenceOnMistakes } = classificationMetrics(probabilities, test.y, k);
  return { error, meanConfidenceOnMistakes };
};

const mean = (values: readonly number[]): number | null => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);

/**
 * The ensemble of `members` (probabilities averaged), attacked as a whole and through each member, at every ε of
 * `attack`; the examples made and scored on the engines where `engines` holds the members (the whole ensemble's
 * gradient through the members' mean on their engines too, scoreAdversarial).
 */
export async function ensembleMetrics(
  members: readonly NamedModel[],
  test: Split,
  attack: AttackConfig,
  progress: Progress,
  engines: Engines = new Map(),
): Promise<EnsembleMetrics[]> {
  checkSameTask(members, 'ensemble');
  const ensemble = new EnsembleClassifier(members.map((m) => m.model));
  const k = ensemble.spec.classes.length;
  progress.start((members.length + 1) * test.n, `ensemble of ${members.length}: FGSM against the whole and against each member`);
  const clean = summary(await probabilitiesOn(ensemble, test.x.subarray(0, test.n * IMAGE_SIZE), engines, attack.batchSize), test, k);
  const whole = await scoreAdversarial(ensemble, [ensemble], test, attack, (done) => progress.update(done), engines);
  const perMember: { name: string; cleanError: number; scored: Float32Array[][] }[] = [];
  for (const [m, { name, model }] of members.entries()) {
    perMember.push({
      name,
      cleanError: summary(await probabilitiesOn(model, test.x.subarray(0, test.n * IMAGE_SIZE), engines, attack.batchSize), test, k).error,
      // [e][0]: scored by the ensemble, [e][1]: by the member itself
      scored: await scoreAdversarial(model, [ensemble, model], test, attack, (done) => progress.update((m + 1) * test.n + done), engines),
    });
  }
  progress.stop();
  return attack.epsilons.map((epsilon, e) => {
    const each: MemberMetrics[] = perMember.map(({ name, cleanError, scored }) => ({
      name,
      ...summary(scored[e]![0]!, test, k),
      own: { cleanError, fgsmError: summary(scored[e]![1]!, test, k).error },
    }));
    const confidences = each.flatMap((m) => (m.meanConfidenceOnMistakes === null ? [] : [m.meanConfidenceOnMistakes]));
    return {
      epsilon,
      members: members.length,
      clean,
      whole: summary(whole[e]![0]!, test, k),
      member: { error: mean(each.map((m) => m.error))!, meanConfidenceOnMistakes: mean(confidences), perMember: each },
    };
  });
}
