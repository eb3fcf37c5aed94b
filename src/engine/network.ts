import type { ModelSpec } from '../models/classifier.js';
import { PackedLayout } from './parameters.js';

/** The networks the engine runs, all in one form: maxout layers (none for softmax regression) under a softmax or sigmoid top. */
export type MaxoutSpec = Extract<ModelSpec, { kind: 'maxout' }>;

/** Softmax regression as the engine sees it: a maxout network with no hidden layer under the softmax top; null for other kinds. */
export function asMaxout(spec: ModelSpec): MaxoutSpec | null {
  if (spec.kind === 'maxout') return spec;
  if (spec.kind !== 'softmax') return null;
  const { inputSize, classes, maxColumnNorm } = spec;
  return { kind: 'maxout', inputSize, classes, maxColumnNorm, layers: [], dropout: null, top: 'softmax', sigmoidLoss: 'sum' };
}

/** The packed layout of a network's parameters: each maxout layer's inputs × (units · pieces), then the top's. */
export function layoutOf(spec: MaxoutSpec): PackedLayout {
  let inputs = spec.inputSize;
  const shapes = spec.layers.map((layer) => {
    const shape = { inputs, columns: layer.units * layer.pieces };
    inputs = layer.units;
    return shape;
  });
  return new PackedLayout([...shapes, { inputs, columns: spec.classes.length }]);
}
