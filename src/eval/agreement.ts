import type { AttackConfig } from '../config/schema.js';
import type { Progress } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import { argmaxRows } from '../models/inference.js';
import { checkSameTask, scoreAdversarial, type Engines, type NamedModel } from './transfer.js';

/**
 * §8's agreement between models on FGSM examples made on one of them, the source (the paper: maxout, compared with
 * RBF and softmax). Our reading of its denominators, all on the source's adversarial examples of the test set:
 *
 * - <name>All: of the examples the source misclassifies, the share where <name> predicts the source's class
 *   ("on examples that were misclassified by the maxout network, the RBF network predicted the maxout network's
 *   class assignment only 16.0% of the time").
 * - <name>BothErr: of the examples the source misclassifies and <name> misclassifies too, the share where their
 *   classes are the same ("cases where both models being compared make a mistake").
 * - <first><Second> (two compared models, in the document's order): of the examples the source misclassifies, the
 *   share where the two predict the same class ("the RBF network can predict softmax regression's class 53.6% of
 *   the time": like <name>All, no "where both err", on the same examples as the rest of the paragraph).
 * - <first><Second>BothErr: the same, only where both compared models misclassify too. Not a claim: an earlier
 *   reading of the 53.6%, kept measured beside the chosen one (on the reference models 67.4% against 55.3%).
 *
 * "Misclassifies" is prediction ≠ true label; a prediction is the class of largest probability (ties: the first).
 */
export interface AgreementCount {
  agree: number;
  of: number;
  /** agree / of; null when `of` is 0. */
  rate: number | null;
}

const capitalised = (name: string) => `${name[0]!.toUpperCase()}${name.slice(1)}`;

/** Every count of the comment above, keyed as the claims read them (e.g. rbfAll, softmaxBothErr, rbfSoftmax). */
export function agreementCounts(
  labels: Int32Array,
  source: Int32Array,
  compared: readonly { name: string; predicted: Int32Array }[],
): Record<string, AgreementCount> {
  const tally = (keep: (i: number) => boolean, agree: (i: number) => boolean): AgreementCount => {
    let of = 0;
    let agreeing = 0;
    for (let i = 0; i < labels.length; i++) {
      if (source[i] === labels[i] || !keep(i)) continue;
      of++;
      if (agree(i)) agreeing++;
    }
    return { agree: agreeing, of, rate: of ? agreeing / of : null };
  };
  const counts: Record<string, AgreementCount> = {};
  for (const { name, predicted } of compared) {
    counts[`${name}All`] = tally(
      () => true,
      (i) => predicted[i] === source[i],
    );
    counts[`${name}BothErr`] = tally(
      (i) => predicted[i] !== labels[i],
      (i) => predicted[i] === source[i],
    );
  }
  compared.forEach((a, i) =>
    compared.slice(i + 1).forEach((b) => {
      const same = (j: number) => a.predicted[j] === b.predicted[j];
      counts[`${a.name}${capitalised(b.name)}`] = tally(() => true, same);
      counts[`${a.name}${capitalised(b.name)}BothErr`] = tally((j) => a.predicted[j] !== labels[j] && b.predicted[j] !== labels[j], same);
    }),
  );
  return counts;
}

export interface Agreement {
  epsilon: number;
  source: string;
  counts: Record<string, AgreementCount>;
  /** Each model's error on the source's examples, the source's own FGSM error among them. */
  errors: Record<string, number>;
}

/** FGSM examples made on `source`, scored by it and by every model of `compared`: the agreement at each ε of `attack` (on the engine where `engines` holds a model). */
export async function agreementOf(
  source: NamedModel,
  compared: readonly NamedModel[],
  test: Split,
  attack: AttackConfig,
  progress: Progress,
  engines: Engines = new Map(),
): Promise<Agreement[]> {
  const models = [source, ...compared];
  checkSameTask(models, 'agreement');
  const k = source.model.spec.classes.length;
  progress.start(test.n, `agreement: FGSM examples made on ${source.name}, scored by ${models.map((m) => m.name).join(', ')}`);
  const probabilities = await scoreAdversarial(
    source.model,
    models.map((m) => m.model),
    test,
    attack,
    (done) => progress.update(done),
    engines,
  );
  progress.stop();
  return attack.epsilons.map((epsilon, e) => {
    const predicted = probabilities[e]!.map((p) => argmaxRows(p, k));
    const errors = Object.fromEntries(models.map((m, s) => [m.name, predicted[s]!.filter((c, i) => c !== test.y[i]).length / test.n]));
    const counts = agreementCounts(
      test.y,
      predicted[0]!,
      compared.map((m, s) => ({ name: m.name, predicted: predicted[s + 1]! })),
    );
    return { epsilon, source: source.name, counts, errors };
  });
}
