import type { ModelConfig } from '../config/schema.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { Classifier, ModelSpec } from './classifier.js';
import { LogisticRegression, SoftmaxRegression } from './linear.js';
import { MaxoutNetwork } from './maxout.js';

export function specFromConfig(config: ModelConfig, classes: number[]): ModelSpec {
  const base = { inputSize: IMAGE_SIZE, classes, maxColumnNorm: config.maxColumnNorm };
  if (config.kind === 'maxout') return { ...base, kind: 'maxout', layers: config.layers, dropout: config.dropout };
  return { ...base, kind: config.kind };
}

/** A freshly initialised model of `spec`; `initRange` and `seed` decide its starting weights. */
export function buildModel(spec: ModelSpec, initRange: number, seed: number): Classifier {
  switch (spec.kind) {
    case 'softmax':
      return new SoftmaxRegression(spec, initRange, seed);
    case 'logistic':
      return new LogisticRegression(spec, initRange, seed);
    case 'maxout':
      return new MaxoutNetwork(spec, initRange, seed);
  }
}
