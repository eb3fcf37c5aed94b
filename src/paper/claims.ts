/**
 * Every number of Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015,
 * arXiv 1412.6572 v3) that this project reports against, as data: the paper's value beside the place in a
 * run's measured metrics where ours is found (RobustBench-style records). Values are percentages as printed.
 *
 * A quantity's `metric` is a path into result.json's `metrics` object. `mustHold`, where present, is the
 * condition the CI reproduction job enforces (`fgsm report --check`); `tolerance` only colours the verdict.
 */

export type MustHold =
  | {
      /** The measured value (in percent) must satisfy `measured op value`. */
      op: '>=' | '<=' | 'within';
      value: number;
    }
  | {
      /** Ours must be at least `value` points below what another run measured for `claim`'s `quantity`. */
      op: 'below';
      value: number;
      claim: string;
      quantity: string;
    };

export interface ClaimQuantity {
  /** What is measured, as the report's quantity column shows it: says the attack and its ε, or clean, rubbish, … */
  name: string;
  /** The paper's value in percent (several for a multi-seed claim; compared against their mean). */
  paper: number | number[];
  /** Path into result.json `metrics`, e.g. ['fgsm', '0.25', 'error']. Values there are fractions. */
  metric: string[];
  /** |ours − paper| in percentage points counted as reproduced. */
  tolerance: number;
  mustHold?: MustHold;
}

export interface Claim {
  id: string;
  section: string;
  description: string;
  quantities: ClaimQuantity[];
  /** Why this project does not measure it, for claims outside its scope. */
  outOfScope?: string;
}

const fgsmAt = (epsilon: string, what: string): string[] => ['fgsm', epsilon, what];

export const CLAIMS: readonly Claim[] = [
  {
    id: 's4.softmax.fgsm',
    section: '4',
    description: 'shallow softmax (784→10), FGSM ε=.25, MNIST test',
    quantities: [
      { name: 'FGSM ε=.25 error', paper: 99.9, metric: fgsmAt('0.25', 'error'), tolerance: 0.5, mustHold: { op: '>=', value: 99 } },
      { name: 'FGSM ε=.25 confidence on mistakes', paper: 79.3, metric: fgsmAt('0.25', 'meanConfidenceOnMistakes'), tolerance: 5 },
    ],
  },
  {
    id: 's4.maxout.fgsm',
    section: '4',
    description: 'maxout 240×5 + dropout (baseline), FGSM ε=.25',
    quantities: [
      { name: 'FGSM ε=.25 error', paper: 89.4, metric: fgsmAt('0.25', 'error'), tolerance: 5, mustHold: { op: '>=', value: 80 } },
      { name: 'FGSM ε=.25 confidence on mistakes', paper: 97.6, metric: fgsmAt('0.25', 'meanConfidenceOnMistakes'), tolerance: 3 },
    ],
  },
  {
    id: 's5.logreg37.clean',
    section: '5, Fig. 2',
    description: 'logistic regression, 3 vs 7, clean test error',
    quantities: [{ name: 'clean test error', paper: 1.6, metric: ['clean', 'error'], tolerance: 1, mustHold: { op: 'within', value: 1 } }],
  },
  {
    id: 's5.logreg37.fgsm',
    section: '5, Fig. 2',
    description: 'logistic regression, 3 vs 7, FGSM ε=.25 (exact: x − ε·y·sign(w))',
    quantities: [{ name: 'FGSM ε=.25 error', paper: 99, metric: fgsmAt('0.25', 'error'), tolerance: 1, mustHold: { op: '>=', value: 95 } }],
  },
  {
    id: 's5.l1',
    section: '5',
    description: 'maxout with L1 0.0025 on the first layer: training error',
    quantities: [
      // pylearn2's monitor, which the paper read, measured the training set without dropout
      { name: 'training-set error (no dropout)', paper: 5, metric: ['trainingSet', 'error'], tolerance: 100, mustHold: { op: '>=', value: 5 } },
    ],
  },
  {
    id: 's6.maxout.clean',
    section: '6',
    description: 'maxout 240 baseline, clean test error',
    quantities: [{ name: 'clean test error', paper: 0.94, metric: ['clean', 'error'], tolerance: 0.1 }],
  },
  {
    id: 's6.maxout_adv.clean',
    section: '6',
    description: 'maxout 240, adversarial training α=.5 ε=.25, clean test error',
    quantities: [{ name: 'clean test error', paper: 0.84, metric: ['clean', 'error'], tolerance: 0.1 }],
  },
  {
    id: 's6.maxout1600.clean',
    section: '6',
    description: 'maxout 1600 units/layer, no adversarial training, clean test error',
    quantities: [{ name: 'clean test error', paper: 1.14, metric: ['clean', 'error'], tolerance: 0.1 }],
  },
  {
    id: 's6.maxout1600_adv.clean',
    section: '6',
    description: 'maxout 1600, adversarial training, early stop on adversarial validation error, 5 seeds',
    quantities: [{ name: 'clean test error', paper: [0.77, 0.77, 0.77, 0.77, 0.83], metric: ['clean', 'error'], tolerance: 0.1 }],
  },
  {
    id: 's6.adv.fgsm',
    section: '6',
    description: 'adversarially trained maxout, FGSM ε=.25 error (baseline 89.4%)',
    quantities: [
      {
        name: 'FGSM ε=.25 error',
        paper: 17.9,
        metric: fgsmAt('0.25', 'error'),
        tolerance: 5,
        // the paper: 89.4% → 17.9%; even a short run must cut the baseline's error by 30 points
        mustHold: { op: 'below', value: 30, claim: 's4.maxout.fgsm', quantity: 'FGSM ε=.25 error' },
      },
    ],
  },
  {
    id: 's6.transfer.orig_to_adv',
    section: '6',
    description: 'examples made on the original model, scored on the adversarially trained model',
    quantities: [
      {
        name: 'transferred FGSM ε=.25 error',
        paper: 19.6,
        metric: ['transfer', 'originalToAdversarial', 'error'],
        tolerance: 5,
        // the paper: 19.6% against the original's own 89.4%; even short networks: below the original's own error
        mustHold: { op: 'below', value: 0, claim: 's4.maxout.fgsm', quantity: 'FGSM ε=.25 error' },
      },
    ],
  },
  {
    id: 's6.transfer.adv_to_orig',
    section: '6',
    description: 'examples made on the adversarially trained model, scored on the original',
    quantities: [
      {
        name: 'transferred FGSM ε=.25 error',
        paper: 40.9,
        metric: ['transfer', 'adversarialToOriginal', 'error'],
        tolerance: 5,
        mustHold: { op: 'below', value: 0, claim: 's4.maxout.fgsm', quantity: 'FGSM ε=.25 error' },
      },
    ],
  },
  {
    id: 's6.adv.conf_mistakes',
    section: '6',
    description: 'adversarially trained maxout, mean confidence on misclassified FGSM examples',
    quantities: [{ name: 'FGSM ε=.25 confidence on mistakes', paper: 81.4, metric: fgsmAt('0.25', 'meanConfidenceOnMistakes'), tolerance: 5 }],
  },
  {
    id: 's6.noise_sign',
    section: '6',
    description: 'maxout trained with ±ε noise per pixel, FGSM ε=.25',
    quantities: [
      { name: 'FGSM ε=.25 error', paper: 86.2, metric: fgsmAt('0.25', 'error'), tolerance: 5 },
      { name: 'FGSM ε=.25 confidence on mistakes', paper: 97.3, metric: fgsmAt('0.25', 'meanConfidenceOnMistakes'), tolerance: 3 },
    ],
  },
  {
    id: 's6.noise_uniform',
    section: '6',
    description: 'maxout trained with U(−ε, ε) noise, FGSM ε=.25',
    quantities: [
      { name: 'FGSM ε=.25 error', paper: 90.4, metric: fgsmAt('0.25', 'error'), tolerance: 5 },
      { name: 'FGSM ε=.25 confidence on mistakes', paper: 97.8, metric: fgsmAt('0.25', 'meanConfidenceOnMistakes'), tolerance: 3 },
    ],
  },
  {
    id: 's7.rbf',
    section: '7',
    description: 'shallow RBF network, FGSM ε=.25',
    quantities: [
      {
        name: 'FGSM ε=.25 error',
        paper: 55.4,
        metric: fgsmAt('0.25', 'error'),
        tolerance: 5,
        // the paper: 55.4% against maxout's 89.4%; even short networks: at least 30 points below maxout's
        mustHold: { op: 'below', value: 30, claim: 's4.maxout.fgsm', quantity: 'FGSM ε=.25 error' },
      },
      { name: 'FGSM ε=.25 confidence on mistakes', paper: 1.2, metric: fgsmAt('0.25', 'meanConfidenceOnMistakes'), tolerance: 2 },
      { name: 'clean test mean confidence', paper: 60.6, metric: ['clean', 'meanConfidence'], tolerance: 5 },
    ],
  },
  {
    id: 's8.agree.rbf_all',
    section: '8',
    description: "maxout-made examples maxout misclassifies: RBF predicts maxout's class",
    quantities: [{ name: 'agreement rate', paper: 16.0, metric: ['agreement', 'rbfAll'], tolerance: 5 }],
  },
  {
    id: 's8.agree.softmax_all',
    section: '8',
    description: "maxout-made examples maxout misclassifies: softmax predicts maxout's class",
    quantities: [{ name: 'agreement rate', paper: 54.6, metric: ['agreement', 'softmaxAll'], tolerance: 5 }],
  },
  {
    id: 's8.agree.softmax_botherr',
    section: '8',
    description: 'only where both err: softmax agrees with maxout',
    quantities: [{ name: 'agreement rate', paper: 84.6, metric: ['agreement', 'softmaxBothErr'], tolerance: 5 }],
  },
  {
    id: 's8.agree.rbf_botherr',
    section: '8',
    description: 'only where both err: RBF agrees with maxout',
    quantities: [{ name: 'agreement rate', paper: 54.3, metric: ['agreement', 'rbfBothErr'], tolerance: 5 }],
  },
  {
    id: 's8.agree.rbf_softmax',
    section: '8',
    description: "RBF predicts softmax's class",
    quantities: [{ name: 'agreement rate', paper: 53.6, metric: ['agreement', 'rbfSoftmax'], tolerance: 5 }],
  },
  {
    id: 's9.ensemble.whole',
    section: '9',
    description: 'ensemble of 12 maxout nets, FGSM against the whole ensemble',
    quantities: [{ name: 'FGSM ε=.25 error', paper: 91.1, metric: ['ensemble', 'whole', 'error'], tolerance: 5 }],
  },
  {
    id: 's9.ensemble.member',
    section: '9',
    description: 'same ensemble, FGSM against one member',
    quantities: [{ name: 'FGSM ε=.25 error', paper: 87.9, metric: ['ensemble', 'member', 'error'], tolerance: 5 }],
  },
  {
    id: 'a.rubbish.maxout',
    section: 'App. A',
    description: 'N(0, I) rubbish inputs, some class p > .5: naive maxout',
    quantities: [
      { name: 'rubbish inputs with some p > .5', paper: 98.35, metric: ['rubbish', 'error'], tolerance: 5 },
      { name: 'rubbish mean confidence', paper: 92.8, metric: ['rubbish', 'meanConfidence'], tolerance: 5 },
    ],
  },
  {
    id: 'a.rubbish.sigmoid',
    section: 'App. A',
    description: 'N(0, I) rubbish inputs: maxout with independent-sigmoid top',
    quantities: [
      { name: 'rubbish inputs with some p > .5', paper: 68, metric: ['rubbish', 'error'], tolerance: 5 },
      { name: 'rubbish mean confidence', paper: 87.9, metric: ['rubbish', 'meanConfidence'], tolerance: 5 },
    ],
  },
  {
    id: 'a.rubbish.softmax',
    section: 'App. A',
    description: 'N(0, I) rubbish inputs, some class p > .5: softmax regression',
    quantities: [
      { name: 'rubbish inputs with some p > .5', paper: 59.8, metric: ['rubbish', 'error'], tolerance: 5 },
      { name: 'rubbish mean confidence', paper: 70.8, metric: ['rubbish', 'meanConfidence'], tolerance: 5 },
    ],
  },
  {
    id: 'a.rubbish.rbf',
    section: 'App. A',
    description: 'N(0, I) rubbish inputs: RBF network',
    quantities: [{ name: 'rubbish inputs with some p > .5', paper: 0, metric: ['rubbish', 'error'], tolerance: 1 }],
  },
  {
    id: 'a.rubbish.skew',
    section: 'App. A',
    description: 'maxout rubbish false positives by class: share that are "5" (none are "8")',
    quantities: [
      { name: 'rubbish positives that are "5"', paper: 45.3, metric: ['rubbish', 'classShares', '5'], tolerance: 10 },
      { name: 'rubbish positives that are "8"', paper: 0, metric: ['rubbish', 'classShares', '8'], tolerance: 2 },
    ],
  },
  {
    id: 's9.mpdbm',
    section: '9',
    description: 'MP-DBM clean / FGSM error',
    quantities: [
      { name: 'clean test error', paper: 0.88, metric: ['clean', 'error'], tolerance: 0.1 },
      { name: 'FGSM ε=.25 error', paper: 97.5, metric: fgsmAt('0.25', 'error'), tolerance: 5 },
    ],
    outOfScope: 'a different model family (multi-prediction deep Boltzmann machine)',
  },
  {
    id: 's4.cifar',
    section: '4',
    description: 'conv maxout, CIFAR-10, ε=.1',
    quantities: [
      { name: 'FGSM ε=.1 error', paper: 87.15, metric: fgsmAt('0.1', 'error'), tolerance: 5 },
      { name: 'FGSM ε=.1 probability on wrong label', paper: 96.6, metric: fgsmAt('0.1', 'meanConfidenceOnMistakes'), tolerance: 5 },
    ],
    outOfScope: 'needs CIFAR-10, which this project does not load',
  },
];

export const CLAIM_IDS: readonly string[] = CLAIMS.map((claim) => claim.id);

export function claimById(id: string): Claim | undefined {
  return CLAIMS.find((claim) => claim.id === id);
}

/** The paper's value of a quantity as one number (the mean over seeds for multi-seed claims). */
export function paperValue(quantity: ClaimQuantity): number {
  const values = Array.isArray(quantity.paper) ? quantity.paper : [quantity.paper];
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}
