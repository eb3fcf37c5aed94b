import type { MaxoutTop, ModelSpec } from '../models/classifier.js';
import { PackedLayout } from './parameters.js';

/**
 * The output layer of the engine's networks: the maxout tops, or logistic regression's (§5): one logit z,
 * P(class 1) = σ(z), J = softplus(−y·z) with y = ±1 (LogisticRegression).
 */
export type EngineTop = MaxoutTop | 'logistic';

/**
 * The networks the engine runs, all in one form: maxout layers (none for softmax or logistic regression) under a
 * softmax, sigmoid or logistic top.
 */
export type MaxoutSpec = Omit<Extract<ModelSpec, { kind: 'maxout' }>, 'top'> & { top: EngineTop };

/** The network as the engine runs it: a maxout network, or softmax or logistic regression as one with no hidden layer; null for other kinds. */
export function asMaxout(spec: ModelSpec): MaxoutSpec | null {
  if (spec.kind === 'maxout') return spec;
  if (spec.kind !== 'softmax' && spec.kind !== 'logistic') return null;
  const { inputSize, classes, maxColumnNorm } = spec;
  return { kind: 'maxout', inputSize, classes, maxColumnNorm, layers: [], dropout: null, top: spec.kind, sigmoidLoss: 'sum' };
}

/** Logits per example: one per class, but logistic regression's single one (its two probabilities are 1 − σ(z) and σ(z)). */
export const logitColumns = (top: EngineTop, classes: number): number => (top === 'logistic' ? 1 : classes);

/** The packed layout of a network's parameters: each maxout layer's inputs × (units · pieces), then the top's. */
export function layoutOf(spec: MaxoutSpec): PackedLayout {
  let inputs = spec.inputSize;
  const shapes = spec.layers.map((layer) => {
    const shape = { inputs, columns: layer.units * layer.pieces };
    inputs = layer.units;
    return shape;
  });
  return new PackedLayout([...shapes, { inputs, columns: logitColumns(spec.top, spec.classes.length) }]);
}

/**
 * Why `lanes` stacked copies of the network's parameters do not fit in one buffer of `limit` bytes (the adapter's
 * largest storage binding), or null: the engine packs every layer of every lane in one buffer, and tfjs's stacked
 * layers are each smaller than that.
 */
export function stackedParametersTooLarge(spec: ModelSpec, lanes: number, limit: number): string | null {
  const network = asMaxout(spec);
  if (!network) return null;
  const bytes = lanes * layoutOf(network).laneFloats * 4;
  if (bytes <= limit) return null;
  const mib = (n: number) => Math.ceil(n / 2 ** 20);
  return `${lanes === 1 ? "the network's parameters take" : `${lanes} stacked seeds' parameters take`} ${mib(bytes)} MiB, more than this adapter binds in one buffer (${Math.floor(limit / 2 ** 20)} MiB)`;
}
