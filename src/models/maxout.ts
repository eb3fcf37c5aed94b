import * as tf from '@tensorflow/tfjs-core';
import { maxoutUnits } from '../backend/kernels.js';
import { counterDropoutMask } from '../core/counter-random.js';
import { streamSeed, stream } from '../core/rng.js';
import {
  EVALUATION,
  type Classifier,
  type DropoutSpec,
  type ForwardState,
  type MaxoutLayerSpec,
  type ModelSpec,
  type Parameter,
  type SoftmaxGradient,
} from './classifier.js';
import { DenseLayer } from './dense.js';
import { sigmoidCrossEntropy } from './independent-outputs.js';
import { logSoftmax, softmaxCrossEntropy } from './linear.js';

type MaxoutSpec = Extract<ModelSpec, { kind: 'maxout' }>;

/**
 * A dropout mask of `rows` × `width`: `scale` where kept (probability `keep`), 0 elsewhere. Drawn row by row
 * from one stream, so the first rows of a taller mask equal a shorter mask from the same seed: a minibatch
 * [x; x̃] gets on its clean rows exactly the masks a pass over x alone would.
 */
export function dropoutMask(rows: number, width: number, keep: number, scale: number, seed: number): Float32Array {
  return stream(seed).fillBernoulli(new Float32Array(rows * width), keep, scale, 0);
}

/**
 * The mask of layer `layer` (0: the input; i + 1: hidden layer i's output) for one network's `rows` under its
 * step's dropout `seed`, from the dropout stream the spec names (see DropoutStream): sfc32-rows draws from
 * streamSeed(seed, 'dropout', layer); threefry-v1 keys Threefry with (seed, layer) itself.
 */
export function layerDropoutMask(
  dropout: DropoutSpec,
  rows: number,
  width: number,
  keep: number,
  scale: number,
  seed: number,
  layer: number,
): Float32Array {
  return (dropout.stream ?? 'sfc32-rows') === 'threefry-v1'
    ? counterDropoutMask(rows, width, keep, scale, seed, layer)
    : dropoutMask(rows, width, keep, scale, streamSeed(seed, 'dropout', layer));
}

/**
 * The maxout network of Goodfellow et al. (2013) as §4 and §6 use it on MNIST: 784 → maxout(240, 5) →
 * maxout(240, 5) → softmax(10), with dropout in training (pylearn2's mnist_pi.yaml); or, with top: sigmoid,
 * Appendix A's independent-sigmoid output layer in place of the softmax (see MaxoutTop).
 *
 * Each maxout layer is one dense layer with units × pieces columns. Column p·units + u is piece p of unit u
 * (pieces are contiguous blocks, not interleaved); see maxoutUnits. Which column serves which piece is a naming
 * choice: initialisation and max-norm treat every column alike.
 *
 * Given a list of seeds, it is that many networks stacked on a leading seed axis (see DenseLayer), trained
 * together where the backend gains from fewer, larger dispatches: the rows of x are grouped by seed, and a
 * training-state pass takes one dropout seed per network.
 */
export class MaxoutNetwork implements Classifier {
  readonly parameters: readonly Parameter[];
  /** How many networks are stacked: 1 unless built from a list of seeds. */
  readonly lanes: number;
  private readonly hidden: DenseLayer[];
  private readonly output: DenseLayer;

  constructor(
    readonly spec: MaxoutSpec,
    initRange: number,
    seed: number | readonly number[],
  ) {
    const seeds = typeof seed === 'number' ? [seed] : seed;
    this.lanes = seeds.length;
    let width = spec.inputSize;
    this.hidden = spec.layers.map((layer: MaxoutLayerSpec, i) => {
      const dense = new DenseLayer(String(i + 1), i + 1, [width, layer.units * layer.pieces], initRange, seeds, spec.maxColumnNorm);
      width = layer.units;
      return dense;
    });
    const top = spec.layers.length + 1;
    this.output = new DenseLayer(String(top), top, [width, spec.classes.length], initRange, seeds, spec.maxColumnNorm);
    this.parameters = [...this.hidden, this.output].flatMap((layer) => layer.parameters);
  }

  logits(x: tf.Tensor2D, state: ForwardState = EVALUATION): tf.Tensor2D {
    const dropout = state.dropoutSeed === null ? null : this.spec.dropout;
    const seeds = typeof state.dropoutSeed === 'number' ? [state.dropoutSeed] : state.dropoutSeed;
    if (seeds && seeds.length !== this.lanes) throw new Error(`${seeds.length} dropout seeds for ${this.lanes} stacked networks`);
    const drop = (h: tf.Tensor2D, layer: number, keep: number, scale: number): tf.Tensor2D => {
      if (!dropout) return h;
      const [rows, width] = h.shape;
      const perSeed = (rows / this.lanes) * width;
      const mask = new Float32Array(rows * width);
      seeds!.forEach((seed, i) => mask.set(layerDropoutMask(dropout, rows / this.lanes, width, keep, scale, seed, layer), i * perSeed));
      return tf.mul(h, tf.tensor2d(mask, [rows, width]));
    };
    let h = dropout ? drop(x, 0, dropout.inputKeep, dropout.inputScale) : x;
    this.hidden.forEach((layer, i) => {
      // the first layer's input is data: unless the caller wants ∇ₓ, only ∇W is needed there
      const gradients = i === 0 || state.gradients === 'input' ? state.gradients : 'both';
      const units = maxoutUnits(layer.apply(h, gradients), this.spec.layers[i]!.pieces);
      h = dropout ? drop(units, i + 1, dropout.hiddenKeep, dropout.hiddenScale) : units;
    });
    return this.output.apply(h, state.gradients === 'input' ? 'input' : 'both');
  }

  /** Either top's cross-entropy, differentiated as `gradient` says (see softmaxCrossEntropy, sigmoidCrossEntropy). */
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D, gradient: SoftmaxGradient = 'standard'): tf.Tensor1D {
    if (this.spec.top === 'softmax') return softmaxCrossEntropy(logits, labels, gradient);
    if (this.spec.sigmoidLoss === 'sum') return sigmoidCrossEntropy(logits, labels, gradient);
    return tf.tidy(() => tf.div(sigmoidCrossEntropy(logits, labels, gradient), this.spec.classes.length));
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor2D {
    return this.spec.top === 'sigmoid' ? tf.sigmoid(logits) : tf.softmax(logits);
  }

  /** The sigmoid top's log σ(z) = −softplus(−z) (no gradient choice). */
  logProbabilities(logits: tf.Tensor2D, gradient: SoftmaxGradient = 'standard'): tf.Tensor2D {
    return this.spec.top === 'sigmoid' ? tf.tidy(() => tf.neg(tf.softplus(tf.neg(logits)))) : logSoftmax(logits, gradient);
  }

  constrain(): void {
    for (const layer of [...this.hidden, this.output]) layer.constrain();
  }

  reinitialize(): void {
    for (const layer of [...this.hidden, this.output]) layer.reinitialize();
  }

  dispose(): void {
    for (const layer of [...this.hidden, this.output]) layer.dispose();
  }
}
