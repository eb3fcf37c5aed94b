import type { MaxoutTop, ModelSpec, RbfSpec } from '../models/classifier.js';
import { PackedLayout } from './parameters.js';

/**
 * The output layer of the engine's networks: the maxout tops; logistic regression's (§5): one logit z,
 * P(class 1) = σ(z), J = softplus(−y·z) with y = ±1 (LogisticRegression); or the RBF network's independent
 * outputs (§7): logits z = −d, p_k = exp(z_k), J = d_y − Σ_{k≠y} log(1 − exp(−d_k)) (expDistanceCrossEntropy).
 */
export type EngineTop = MaxoutTop | 'logistic' | 'distance';

/**
 * The networks the engine runs, all in one form: maxout layers (none for softmax or logistic regression, or the
 * RBF network) under a softmax, sigmoid or logistic top; `rbf` where the logits are §7's −d_k(x) rather than an
 * affine layer's (RbfNetwork: d_k(x) = Σ_f a_fk (x_f − μ_fk)², a = f(ρ) as `precision` says), under the softmax
 * or the distance top.
 */
export type EngineNetwork = Omit<Extract<ModelSpec, { kind: 'maxout' }>, 'top'> & { top: EngineTop; rbf?: Pick<RbfSpec, 'precision'> };

/**
 * The network as the engine runs it: a maxout network; softmax or logistic regression as one with no hidden layer;
 * the RBF network as one with no hidden layer whose logits are −d (no max-norm: RbfNetwork constrains only the
 * clamped precisions); null for an ensemble.
 */
export function asEngineNetwork(spec: ModelSpec): EngineNetwork | null {
  if (spec.kind === 'maxout') return spec;
  if (spec.kind === 'ensemble') return null;
  const { inputSize, classes, maxColumnNorm } = spec;
  const base = { kind: 'maxout' as const, inputSize, classes, layers: [], dropout: null, sigmoidLoss: 'sum' as const };
  if (spec.kind === 'rbf')
    return { ...base, maxColumnNorm: null, top: spec.output === 'softmax' ? 'softmax' : 'distance', rbf: { precision: spec.precision } };
  return { ...base, maxColumnNorm, top: spec.kind };
}

/** Logits per example: one per class, but logistic regression's single one (its two probabilities are 1 − σ(z) and σ(z)). */
export const logitColumns = (top: EngineTop, classes: number): number => (top === 'logistic' ? 1 : classes);

/**
 * The packed layout of a network's parameters: each maxout layer's inputs × (units · pieces), then the top's. The
 * RBF network's ρ and μ (each inputs × classes) take the places of two layers' weights: ρ that of a first layer
 * (whose bias row stays 0), μ that of a second with one input fewer, its bias row μ's last: so that the update
 * kernel steps both, and L1 (layer 1's weights) and weight decay (kept to layer 1 for it) reach ρ alone, as in tfjs.
 */
export function layoutOf(spec: EngineNetwork): PackedLayout {
  if (spec.rbf) {
    const [inputs, columns] = [spec.inputSize, spec.classes.length];
    const slots = [
      { layer: 1, role: 'weight', within: 0, floats: inputs * columns },
      { layer: 1, role: 'bias', within: (inputs + 1) * columns, floats: inputs * columns },
    ] as const;
    return new PackedLayout(
      [
        { inputs, columns },
        { inputs: inputs - 1, columns },
      ],
      slots,
    );
  }
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
  const network = asEngineNetwork(spec);
  if (!network) return null;
  const bytes = lanes * layoutOf(network).laneFloats * 4;
  if (bytes <= limit) return null;
  const mib = (n: number) => Math.ceil(n / 2 ** 20);
  return `${lanes === 1 ? "the network's parameters take" : `${lanes} stacked seeds' parameters take`} ${mib(bytes)} MiB, more than this adapter binds in one buffer (${Math.floor(limit / 2 ** 20)} MiB)`;
}
