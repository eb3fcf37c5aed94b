import * as tf from '@tensorflow/tfjs-core';
import { fastGradientSign } from '../attacks/fgsm.js';
import type { Split } from '../data/dataset.js';
import type { EngineGradient } from '../engine/kernels/cross-entropy.js';
import type { ResidentFgsm } from '../engine/resident-fgsm.js';
import type { Classifier, SoftmaxGradient } from '../models/classifier.js';
import { adversarialMetrics } from './adversarial-metrics.js';
import { engineAim } from './evaluate.js';
import { classificationMetrics, type ClassificationMetrics } from './metrics.js';

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
 * model errs on the clean input the two differ in J's label; where it is right they are the same attack. On the
 * WebGPU engine where `onDevice` holds the test split.
 */
export async function labelLeakProbe(
  model: Classifier,
  test: Split,
  options: LabelLeakOptions,
  onDevice: ResidentFgsm | null = null,
): Promise<LabelLeak[]> {
  const withLabels = onDevice ? engineProbe(model, test, options, onDevice) : tfjsProbe(model, test, options);
  const [trueLabels, predictedLabels] = [await withLabels('true'), await withLabels('predicted')];
  return options.epsilons.map((epsilon, e) => {
    const t = trueLabels[e]!.error;
    const p = predictedLabels[e]!.error;
    return { epsilon, trueLabels: t, predictedLabels: p, leaks: t < p };
  });
}

type Probe = (labels: 'true' | 'predicted') => Promise<ClassificationMetrics[]>;

function tfjsProbe(model: Classifier, test: Split, options: LabelLeakOptions): Probe {
  const common = { epsilons: options.epsilons, clip: options.clip, target: null, gradient: options.gradient, countZeroGradients: false };
  return (labels) =>
    adversarialMetrics(model, test, options.batchSize, (x, y) => {
      const { adversarial, direction } = fastGradientSign(model, x, y, { ...common, labels });
      tf.dispose(direction);
      return adversarial;
    });
}

/** The probe on the WebGPU engine holding `test` (which refuses a gradient form it does not take): J's predicted labels from the clean probabilities measured there. */
function engineProbe(model: Classifier, test: Split, options: LabelLeakOptions, onDevice: ResidentFgsm): Probe {
  onDevice.assertHolds(test, 'the label-leaking probe');
  const labels = test.y.subarray(0, test.n);
  const k = model.spec.classes.length;
  return async (which) => {
    const aim = await engineAim(onDevice, model, { labels: which, target: null });
    const attack = await onDevice.attack(model, options.epsilons, options.gradient as EngineGradient, options.clip, aim);
    return attack.probabilities.map((p) => classificationMetrics(p, labels, k));
  };
}
