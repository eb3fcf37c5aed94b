/**
 * The paper's metrics. Error rate = misclassified / all evaluated examples; confidence = the probability the
 * model gives its predicted class, averaged over the misclassified examples ("confidence on mistakes"),
 * and also over all examples. With independent outputs (sigmoid top, RBF) the p_k need not sum to 1: the prediction
 * is still argmax_k p_k and its confidence max_k p_k, which can be far below 1/K.
 */
export interface ClassificationMetrics {
  n: number;
  error: number;
  meanConfidence: number;
  /** null when nothing was misclassified. */
  meanConfidenceOnMistakes: number | null;
  /** confusion[true][predicted] counts. */
  confusion: number[][];
}

export function classificationMetrics(probabilities: Float32Array, labels: Int32Array, k: number): ClassificationMetrics {
  const n = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let wrong = 0;
  let confidenceSum = 0;
  let mistakeConfidenceSum = 0;
  for (let i = 0; i < n; i++) {
    let predicted = 0;
    for (let j = 1; j < k; j++) if (probabilities[i * k + j]! > probabilities[i * k + predicted]!) predicted = j;
    const confidence = probabilities[i * k + predicted]!;
    confidenceSum += confidence;
    confusion[labels[i]!]![predicted]!++;
    if (predicted !== labels[i]) {
      wrong++;
      mistakeConfidenceSum += confidence;
    }
  }
  return {
    n,
    error: n ? wrong / n : 0,
    meanConfidence: n ? confidenceSum / n : 0,
    meanConfidenceOnMistakes: wrong ? mistakeConfidenceSum / wrong : null,
    confusion,
  };
}

/**
 * Examples whose true class has probability exactly 1 in float32 (the others sum below half an ulp of 1): where
 * the standard softmax gradient has lost its true-class part (see SoftmaxGradient in models/).
 */
export function saturatedCount(probabilities: Float32Array, labels: Int32Array, k: number): number {
  let count = 0;
  for (let i = 0; i < labels.length; i++) if (probabilities[i * k + labels[i]!] === 1) count++;
  return count;
}

/**
 * Appendix A's rubbish-input test. A sample is a positive when some class has p > 0.5; with independent outputs
 * (sigmoid top, RBF) several classes can, and the sample still counts once. Its confidence is the largest p,
 * the probability of the class the model predicts, and it is counted under that class.
 */
export interface RubbishMetrics {
  samples: number;
  /** Share of samples where some class gets p > 0.5 (Appendix A's "error"). */
  error: number;
  /** Mean over the positive samples of their largest p; null if none. */
  meanConfidence: number | null;
  /** Positive samples with more than one class above 0.5 (only possible when the p_k need not sum to 1). */
  multiplePositives: number;
  /** How many positive samples have each class as their largest p, keyed by digit. */
  classCounts: Record<string, number>;
  /** classCounts / their total, keyed by digit. */
  classShares: Record<string, number>;
}

export function rubbishMetrics(probabilities: Float32Array, k: number, classes: number[]): RubbishMetrics {
  const samples = probabilities.length / k;
  const counts = new Array<number>(k).fill(0);
  let flagged = 0;
  let multiple = 0;
  let confidenceSum = 0;
  for (let i = 0; i < samples; i++) {
    let best = 0;
    let above = 0;
    for (let j = 0; j < k; j++) {
      const p = probabilities[i * k + j]!;
      if (p > 0.5) above++;
      if (p > probabilities[i * k + best]!) best = j;
    }
    if (above === 0) continue;
    flagged++;
    if (above > 1) multiple++;
    confidenceSum += probabilities[i * k + best]!;
    counts[best]!++;
  }
  const byDigit = (values: number[]) => Object.fromEntries(classes.map((digit, j) => [String(digit), values[j]!]));
  return {
    samples,
    error: samples ? flagged / samples : 0,
    meanConfidence: flagged ? confidenceSum / flagged : null,
    multiplePositives: multiple,
    classCounts: byDigit(counts),
    classShares: byDigit(counts.map((c) => (flagged ? c / flagged : 0))),
  };
}
