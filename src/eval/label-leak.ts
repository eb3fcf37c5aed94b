import * as tf from '@tensorflow/tfjs-core';
import { fastGradientSign } from '../attacks/fgsm.js';
import type { Split } from '../data/dataset.js';
import type { Classifier, SoftmaxGradient } from '../models/classifier.js';
import { adversarialMetrics } from './adversarial-metrics.js';

/** FGSM error at one ε with the true labels in J and with the model's own predictions (Kurakin et al. 2017). */
export interface LabelLeak {
  epsilon: number;
  trueLabels: number;
  predictedLabels: number;
  /**
   * Label leaking: the examples made with the true labels are easier for the model than those made with its own
   * predictions (the perturbation carries the label and the model has learnt to read it).
   */
  leaks: boolean;
}

export interface LabelLeakOptions {
  epsilons: readonly number[];
  gradient: SoftmaxGradient;
  clip: readonly [number, number] | null;
  batchSize: number;
}

/**
 * The label-leaking probe of Kurakin, Goodfellow & Bengio (2017, "Adversarial Machine Learning at Scale"): FGSM
 * with y = the true label against FGSM with y = the model's prediction on the clean input, at every ε. Where the
 * model errs on the clean input the two differ in J's label; where it is right they are the same attack.
 */
export async function labelLeakProbe(model: Classifier, test: Split, options: LabelLeakOptions): Promise<LabelLeak[]> {
  const common = { epsilons: options.epsilons, clip: options.clip, target: null, gradient: options.gradient, countZeroGradients: false };
  const withLabels = (labels: 'true' | 'predicted') =>
    adversarialMetrics(model, test, options.batchSize, (x, y) => {
      const { adversarial, direction } = fastGradientSign(model, x, y, { ...common, labels });
      tf.dispose(direction);
      return adversarial;
    });
  const [trueLabels, predictedLabels] = [await withLabels('true'), await withLabels('predicted')];
  return options.epsilons.map((epsilon, e) => {
    const t = trueLabels[e]!.error;
    const p = predictedLabels[e]!.error;
    return { epsilon, trueLabels: t, predictedLabels: p, leaks: t < p };
  });
}
