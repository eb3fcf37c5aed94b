import * as tf from '@tensorflow/tfjs-core';
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

/** Refuses models that do not classify the same classes from MNIST images: `what` compares only such models. */
export function checkSameTask(models: readonly NamedModel[], what: string): void {
  const first = models[0];
  if (!first) throw new FgsmError(`${what}: expected at least one model`);
  const classes = first.model.spec.classes;
  for (const { name, model } of models) {
    if (model.spec.inputSize !== IMAGE_SIZE || model.spec.classes.join() !== classes.join()) {
      throw new FgsmError(
        `${what}: ${name} classifies [${model.spec.classes}] from ${model.spec.inputSize} inputs; ${first.name} classifies [${classes}] from ${IMAGE_SIZE}`,
        `${what} compares models of the same task`,
      );
    }
  }
}

/**
 * FGSM examples made on `source` (true labels or as `attack` says), scored by each of `scorers`: probabilities[e][s],
 * [n × k] row-major, for every ε of `attack` (one gradient per batch serves every ε). `onBatch` hears how many
 * examples are done.
 */
export async function scoreAdversarial(
  source: Classifier,
  scorers: readonly Classifier[],
  test: Split,
  attack: AttackConfig,
  onBatch: (done: number) => void = () => {},
): Promise<Float32Array[][]> {
  const k = source.spec.classes.length;
  const options = fgsmOptionsFrom(attack, source.spec.classes);
  const probabilities = attack.epsilons.map(() => scorers.map(() => new Float32Array(test.n * k)));
  for (let start = 0; start < test.n; start += attack.batchSize) {
    const end = Math.min(test.n, start + attack.batchSize);
    // scored on the device, read afterwards (asynchronously: WebGPU in Node has no synchronous read)
    const scored = tf.tidy(() => {
      const x = tf.tensor2d(test.x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]);
      const y = tf.tensor1d(test.y.subarray(start, end), 'int32');
      const { adversarial } = fastGradientSign(source, x, y, { ...options, countZeroGradients: false });
      return adversarial.map((examples) => scorers.map((scorer) => scorer.probabilities(scorer.logits(examples))));
    });
    try {
      for (const [e, row] of scored.entries()) for (const [s, p] of row.entries()) probabilities[e]![s]!.set(await p.data(), start * k);
    } finally {
      tf.dispose(scored.flat());
    }
    onBatch(end);
  }
  return probabilities;
}

/** One matrix per ε of `attack` (one gradient per row model and batch serves every ε). */
export async function transferMatrices(models: NamedModel[], test: Split, attack: AttackConfig, progress: Progress): Promise<TransferMatrix[]> {
  checkSameTask(models, 'transfer');
  const k = models[0]!.model.spec.classes.length;
  const scorers = models.map((m) => m.model);
  progress.start(models.length * test.n, `transfer between ${models.length} models on ${test.n} test examples`);
  // rows[row][e][column]: [n × k]
  const rows: Float32Array[][][] = [];
  for (const [row, { model }] of models.entries()) {
    rows.push(await scoreAdversarial(model, scorers, test, attack, (done) => progress.update(row * test.n + done)));
  }
  progress.stop();
  return attack.epsilons.map((epsilon, e) => ({
    epsilon,
    names: models.map((m) => m.name),
    cells: rows.map((row) => row[e]!.map((p) => classificationMetrics(p, test.y, k))),
  }));
}
