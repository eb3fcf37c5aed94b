import { FgsmError } from '../core/errors.js';
import type { ModelConfig } from '../config/schema.js';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier, ModelSpec } from './classifier.js';
import { LogisticRegression, SoftmaxRegression } from './linear.js';
import { MaxoutNetwork } from './maxout.js';
import { initialCentres, RbfNetwork } from './rbf.js';

export function specFromConfig(config: ModelConfig, classes: number[]): ModelSpec {
  const base = { inputSize: IMAGE_SIZE, classes, maxColumnNorm: null };
  switch (config.kind) {
    case 'maxout':
      return {
        ...base,
        kind: 'maxout',
        maxColumnNorm: config.maxColumnNorm,
        layers: config.layers,
        dropout: config.dropout,
        top: config.top,
        sigmoidLoss: config.sigmoidLoss,
      };
    case 'rbf':
      return { ...base, kind: 'rbf', output: config.output, precision: config.precision, init: config.init };
    default:
      return { ...base, kind: config.kind, maxColumnNorm: config.maxColumnNorm };
  }
}

/**
 * A freshly initialised model of `spec`; `initRange` and `seed` decide its starting weights, and `train` the RBF's
 * starting centres (null for a model whose parameters are assigned next, as loadModel does).
 */
export function buildModel(spec: ModelSpec, initRange: number, seed: number, train: Split | null = null): Classifier {
  switch (spec.kind) {
    case 'softmax':
      return new SoftmaxRegression(spec, initRange, seed);
    case 'logistic':
      return new LogisticRegression(spec, initRange, seed);
    case 'maxout':
      return new MaxoutNetwork(spec, initRange, seed);
    case 'rbf':
      return new RbfNetwork(spec, initialCentres(spec, train, seed));
    case 'ensemble':
      throw new FgsmError('an ensemble is assembled from trained members (EnsembleClassifier), not built from a spec');
  }
}

/** The model an experiment's `model` section describes, initialised from `seed` (and, for the RBF, `train`). */
export function modelFromConfig(config: ModelConfig, classes: number[], seed: number, train: Split): Classifier {
  return buildModel(specFromConfig(config, classes), config.kind === 'rbf' ? 0 : config.init.range, seed, train);
}

/**
 * The maxout network of a `model` section, once per seed, stacked on a leading seed axis (see MaxoutNetwork):
 * seed i's network starts as modelFromConfig's with seed i.
 */
export function stackedModelFromConfig(config: ModelConfig, classes: number[], seeds: readonly number[]): MaxoutNetwork {
  const spec = specFromConfig(config, classes);
  if (spec.kind !== 'maxout' || config.kind !== 'maxout') throw new FgsmError(`only maxout networks stack seeds, not ${config.kind}`);
  return new MaxoutNetwork(spec, config.init.range, seeds);
}
