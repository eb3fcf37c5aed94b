import * as tf from '@tensorflow/tfjs';
import type { AttackConfig } from '../config/schema.js';
import { FgsmError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import { fastGradientSign } from '../attacks/fgsm.js';
import type { Classifier } from '../models/classifier.js';
import { fgsmOptionsFrom } from './evaluate.js';
import { classificationMetrics, type ClassificationMetrics } from './metrics.js';

/**
 * §6's transfer of adversarial examples between models: FGSM examples made on one model (a row) and scored by
 * every model (the columns). The diagonal is each model's own FGSM error; an off-diagonal cell is how far the
 * examples of one transfer to another ("examples made on the original model, scored on the adversarially
 * trained one": 19.6% in the paper).
 */
export interface TransferMatrix {
  epsilon: number;
  /** The models, in row and column order. */
  names: string[];
  /** cells[row][column]: the column model's metrics on the examples made on the row model. */
  cells: ClassificationMetrics[][];
}

export interface NamedModel {
  name: string;
  model: Classifier;
}

/** One matrix per ε of `attack` (one gradient per row model and batch serves every ε). */
export function transferMatrices(models: NamedModel[], test: Split, attack: AttackConfig, progress: Progress): TransferMatrix[] {
  if (models.length < 1) throw new FgsmError('transfer: expected at least one model');
  const classes = models[0]!.model.spec.classes;
  for (const { name, model } of models) {
    if (model.spec.inputSize !== IMAGE_SIZE || model.spec.classes.join() !== classes.join()) {
      throw new FgsmError(
        `transfer: ${name} classifies [${model.spec.classes}] from ${model.spec.inputSize} inputs; ${models[0]!.name} classifies [${classes}] from ${IMAGE_SIZE}`,
        'transfer compares models of the same task',
      );
    }
  }
  const k = classes.length;
  const epsilons = attack.epsilons;
  const options = fgsmOptionsFrom(attack, classes);
  // probabilities[e][row][column]: [n × k]
  const probabilities = epsilons.map(() => models.map(() => models.map(() => new Float32Array(test.n * k))));
  progress.start(models.length * test.n, `transfer between ${models.length} models on ${test.n} test examples`);
  models.forEach(({ model: source }, row) => {
    for (let start = 0; start < test.n; start += attack.batchSize) {
      const end = Math.min(test.n, start + attack.batchSize);
      tf.tidy(() => {
        const x = tf.tensor2d(test.x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]);
        const y = tf.tensor1d(test.y.subarray(start, end), 'int32');
        const { adversarial, direction } = fastGradientSign(source, x, y, { ...options, countZeroGradients: false });
        epsilons.forEach((_, e) => {
          models.forEach(({ model: scorer }, column) => {
            const p = scorer.probabilities(scorer.logits(adversarial[e]!));
            probabilities[e]![row]![column]!.set(p.dataSync(), start * k);
          });
        });
        tf.dispose([direction, ...adversarial]);
      });
      progress.update(row * test.n + end);
    }
  });
  progress.stop();
  return epsilons.map((epsilon, e) => ({
    epsilon,
    names: models.map((m) => m.name),
    cells: probabilities[e]!.map((row) => row.map((p) => classificationMetrics(p, test.y, k))),
  }));
}
