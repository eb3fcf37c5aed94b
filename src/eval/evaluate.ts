import * as tf from '@tensorflow/tfjs-core';
import { InterruptedError } from '../core/errors.js';
import { yieldToEventLoop } from '../core/event-loop.js';
import { fastGradientSign, type FgsmOptions } from '../attacks/fgsm.js';
import { iterativeGradientSign } from '../attacks/iterative.js';
import { rubbishInputs } from '../attacks/rubbish.js';
import { lossLabelsOf } from '../attacks/gradient.js';
import type { AttackConfig } from '../config/schema.js';
import { FgsmError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { EngineGradient } from '../engine/kernels/cross-entropy.js';
import { residentFgsmSupport, type AttackAim, type ResidentFgsm } from '../engine/resident-fgsm.js';
import { otherGradient, type Classifier, type SoftmaxGradient } from '../models/classifier.js';
import { predictProbabilities } from '../models/inference.js';
import { classificationMetrics, rubbishMetrics, saturatedCount, type ClassificationMetrics, type RubbishMetrics } from './metrics.js';

export interface FgsmMetrics extends ClassificationMetrics {
  epsilon: number;
  /** The softmax gradient the attack took (docs/paper.md §3). */
  gradient: SoftmaxGradient;
  /** Examples whose input gradient was all zero (FGSM); null for an iterative attack, which does not count them. */
  zeroGradient: number | null;
  /**
   * Clean examples whose true class has p_y = 1 exactly in float32: there the standard gradient has lost its
   * true-class part (see SoftmaxGradient). A property of the model and the test set, the same in every entry.
   */
  saturated: number;
  /** The largest |x̃ − x| measured over all pixels (= ε unless clipping bound it). */
  maxPerturbation: number;
}

/** A test example as the figures show it: clean, perturbation direction, adversarial (at `epsilon`). */
export interface ExampleTriple {
  label: number;
  clean: Float32Array;
  direction: Float32Array;
  adversarial: Float32Array;
  cleanProbabilities: Float32Array;
  adversarialProbabilities: Float32Array;
}

export interface Evaluation {
  clean: ClassificationMetrics;
  /**
   * The configured attack (attack.method: FGSM, the paper's, unless the config says bim or pgd) with the configured
   * gradient (attack.gradient), keyed by String(ε), e.g. "0.25".
   */
  fgsm: Record<string, FgsmMetrics>;
  /** The same attack with the other gradient: every run measures both. */
  fgsmOtherGradient: Record<string, FgsmMetrics>;
  rubbish: RubbishMetrics | null;
  examples: { epsilon: number; triples: ExampleTriple[] };
  /** Test images attacked per second, counting both gradients' attacks. */
  fgsmImagesPerSecond: number;
}

/** Maps the config's attack section onto the attack's options for a model whose classes are `classes`. */
export function fgsmOptionsFrom(attack: Omit<AttackConfig, 'method'>, classes: number[]): FgsmOptions {
  let target: FgsmOptions['target'] = null;
  if (typeof attack.target === 'number') {
    target = classes.indexOf(attack.target);
    if (target < 0) throw new FgsmError(`attack.target: digit ${attack.target} is not one of the model's classes [${classes}]`);
  } else if (attack.target !== 'none') {
    target = attack.target;
  }
  return { epsilons: attack.epsilons, clip: attack.clip === 'none' ? null : attack.clip, labels: attack.labels, target, gradient: attack.gradient };
}

export interface EvaluateOptions {
  attack: AttackConfig;
  rubbishSamples: number | null;
  figureExamples: number;
  seed: number;
  progress: Progress;
  /** Checked before every batch: once aborted, the evaluation stops with InterruptedError (nothing of it kept). */
  signal?: AbortSignal;
  /**
   * The evaluation on the WebGPU engine, over the test split resident there: where residentFgsmSupport(model's spec,
   * attack) is null. The clean probabilities, the attack and the rubbish inputs' probabilities are made there; the
   * figure's examples stay on tfjs.
   */
  onDevice?: ResidentFgsm;
}

export const EVALUATION_INTERRUPTED =
  'interrupted during the evaluation: the trained model is kept in its checkpoint; rerun the same command to evaluate it';

/** What one gradient's attack has accumulated over the test batches. */
interface AttackTally {
  gradient: SoftmaxGradient;
  /** Per ε, the probabilities on the adversarial examples, [n × k]. */
  probabilities: Float32Array[];
  zeroGradient: number | null;
  maxPerturbation: number[];
}

/** One batch attacked at every ε: x̃ per ε, the perturbation per unit ε at `figureEpsilon`, the zero-gradient count. */
interface AttackedBatch {
  adversarial: tf.Tensor2D[];
  direction: tf.Tensor2D;
  zeroGradient: tf.Scalar | null;
}

/**
 * The configured attack on one batch whose first row is row `firstRow` of the test set: FGSM (one gradient serves
 * every ε), or BIM / PGD once per ε, their random starts drawn from `seed`.
 */
function attackBatch(
  model: Classifier,
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  attack: AttackConfig,
  fgsmOptions: FgsmOptions,
  place: { firstRow: number; seed: number; figureEpsilon: number },
): AttackedBatch {
  if (attack.method === 'fgsm') return fastGradientSign(model, x, y, fgsmOptions);
  const { epsilons: _all, countZeroGradients: _uncounted, dropoutSeed: _deterministic, ...shared } = fgsmOptions;
  const adversarial = attack.epsilons.map(
    (epsilon) =>
      iterativeGradientSign(model, x, y, {
        ...shared,
        epsilon,
        steps: attack.steps,
        stepSize: attack.stepSize,
        randomStart: attack.method === 'pgd' && attack.randomStart,
        restarts: attack.method === 'pgd' ? attack.restarts : 1,
        seed: place.seed,
        firstRow: place.firstRow,
      }).adversarial,
  );
  const atFigure = adversarial[attack.epsilons.indexOf(place.figureEpsilon)]!;
  const direction = tf.tidy(() => (place.figureEpsilon === 0 ? tf.zerosLike(x) : tf.div(tf.sub(atFigure, x), place.figureEpsilon)) as tf.Tensor2D);
  return { adversarial, direction, zeroGradient: null };
}

/**
 * Clean test metrics; the configured attack's metrics at every ε (FGSM: one gradient per batch serves every ε; BIM,
 * PGD: one run per ε) with the configured softmax gradient and with the other one; and the rubbish-input test. Every
 * read is asynchronous (WebGPU in Node has no synchronous one).
 */
export async function evaluate(model: Classifier, test: Split, options: EvaluateOptions): Promise<Evaluation> {
  const k = model.spec.classes.length;
  const epsilons = options.attack.epsilons;
  const figureEpsilon = figureEpsilonOf(epsilons);
  const onDevice = options.onDevice ? onDeviceFor(model, test, options) : null;
  const probabilitiesOf = (x: Float32Array): Promise<Float32Array> =>
    onDevice ? onDevice.probabilitiesOf(model, x) : predictProbabilities(model, x, options.attack.batchSize);
  const clean = onDevice ? await onDevice.probabilities(model) : await predictProbabilities(model, test.x, options.attack.batchSize);
  const configured = options.attack.gradient;
  const gradients: SoftmaxGradient[] = [configured, otherGradient(configured)];
  options.progress.start(test.n * gradients.length, `${options.attack.method.toUpperCase()} on ${test.n} test examples`);
  const started = performance.now();
  const tallies = onDevice
    ? await attackOnDevice(model, test, options, onDevice, gradients, clean)
    : await attackWithTfjs(model, test, options, gradients);
  const seconds = (performance.now() - started) / 1000;
  options.progress.stop();
  const triples = await figureTriples(model, test, options, figureEpsilon, clean, tallies[0]!);

  const saturated = saturatedCount(clean, test.y, k);
  const [fgsm, fgsmOtherGradient] = tallies.map((tally) => {
    const byEpsilon: Record<string, FgsmMetrics> = {};
    epsilons.forEach((epsilon, e) => {
      byEpsilon[String(epsilon)] = {
        epsilon,
        gradient: tally.gradient,
        ...classificationMetrics(tally.probabilities[e]!, test.y, k),
        zeroGradient: tally.zeroGradient,
        saturated,
        maxPerturbation: tally.maxPerturbation[e]!,
      };
    });
    return byEpsilon;
  }) as [Record<string, FgsmMetrics>, Record<string, FgsmMetrics>];

  let rubbish: RubbishMetrics | null = null;
  if (options.rubbishSamples) {
    const inputs = rubbishInputs(options.rubbishSamples, IMAGE_SIZE, options.seed);
    rubbish = rubbishMetrics(await probabilitiesOf(inputs), k, model.spec.classes);
  }
  return {
    clean: classificationMetrics(clean, test.y, k),
    fgsm,
    fgsmOtherGradient,
    rubbish,
    examples: { epsilon: figureEpsilon, triples },
    fgsmImagesPerSecond: (tallies.length * test.n) / seconds,
  };
}

/** The ε of the figure's examples: the paper's 0.25 where it is evaluated. */
const figureEpsilonOf = (epsilons: readonly number[]): number => (epsilons.includes(0.25) ? 0.25 : epsilons[0]!);

function stopIfAborted(options: EvaluateOptions): void {
  if (!options.signal?.aborted) return;
  options.progress.stop();
  throw new InterruptedError(EVALUATION_INTERRUPTED);
}

/** The configured attack with each of `gradients` through tfjs's ops, batch by batch. */
async function attackWithTfjs(model: Classifier, test: Split, options: EvaluateOptions, gradients: SoftmaxGradient[]): Promise<AttackTally[]> {
  const k = model.spec.classes.length;
  const fgsmOptions = fgsmOptionsFrom(options.attack, model.spec.classes);
  const epsilons = options.attack.epsilons;
  const tallies: AttackTally[] = gradients.map((gradient) => ({
    gradient,
    probabilities: epsilons.map(() => new Float32Array(test.n * k)),
    zeroGradient: options.attack.method === 'fgsm' ? 0 : null,
    maxPerturbation: epsilons.map(() => 0),
  }));
  const batch = options.attack.batchSize;
  for (let start = 0; start < test.n; start += batch) {
    await yieldToEventLoop();
    stopIfAborted(options);
    const end = Math.min(test.n, start + batch);
    const x = tf.tensor2d(test.x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]);
    const y = tf.tensor1d(test.y.subarray(start, end), 'int32');
    const place = { firstRow: start, seed: options.seed, figureEpsilon: figureEpsilonOf(epsilons) };
    const results = tallies.map((tally) => attackBatch(model, x, y, options.attack, { ...fgsmOptions, gradient: tally.gradient }, place));
    try {
      for (const [t, tally] of tallies.entries()) {
        const result = results[t]!;
        if (result.zeroGradient) tally.zeroGradient! += (await result.zeroGradient.data())[0]!;
        for (const e of epsilons.keys()) {
          const probabilities = tf.tidy(() => model.probabilities(model.logits(result.adversarial[e]!)));
          const perturbation = tf.tidy(() => tf.max(tf.abs(tf.sub(result.adversarial[e]!, x))));
          try {
            tally.probabilities[e]!.set(await probabilities.data(), start * k);
            tally.maxPerturbation[e] = Math.max(tally.maxPerturbation[e]!, (await perturbation.data())[0]!);
          } finally {
            tf.dispose([probabilities, perturbation]);
          }
        }
      }
    } finally {
      tf.dispose([
        x,
        y,
        ...results.flatMap((result) => [result.direction, ...result.adversarial, ...(result.zeroGradient ? [result.zeroGradient] : [])]),
      ]);
    }
    options.progress.update(gradients.length * end);
  }
  return tallies;
}

/**
 * The configured attack (FGSM, BIM, PGD) with each of `gradients` on the engine: the whole test split per call, J's labels (true, predicted, a target)
 * taken from `clean`, the clean probabilities tfjs's lossLabels would predict them from.
 */
async function attackOnDevice(
  model: Classifier,
  test: Split,
  options: EvaluateOptions,
  device: ResidentFgsm,
  gradients: SoftmaxGradient[],
  clean: Float32Array,
): Promise<AttackTally[]> {
  const { clip, labels, target } = fgsmOptionsFrom(options.attack, model.spec.classes);
  const aim = await engineAim(device, model, { labels, target }, clean);
  const { attack } = options;
  const measure = async (gradient: EngineGradient): Promise<Omit<AttackTally, 'gradient'>> => {
    if (attack.method === 'fgsm') return await device.attack(model, attack.epsilons, gradient, clip, aim);
    const { probabilities, maxPerturbation } = await device.iterative(model, {
      epsilons: attack.epsilons,
      stepSizes: attack.epsilons.map(() => attack.stepSize),
      steps: attack.steps,
      randomStart: attack.method === 'pgd' && attack.randomStart,
      restarts: attack.method === 'pgd' ? attack.restarts : 1,
      seed: options.seed,
      clip,
      gradient,
      aim,
    });
    return { probabilities, maxPerturbation, zeroGradient: null };
  };
  const tallies: AttackTally[] = [];
  for (const gradient of gradients) {
    await yieldToEventLoop();
    stopIfAborted(options);
    tallies.push({ gradient, ...(await measure(gradient as EngineGradient)) });
    options.progress.update(tallies.length * test.n);
  }
  return tallies;
}

/**
 * Whose labels J takes on `engine`'s split and which way the step goes, where not the true labels upwards (null):
 * the classes lossLabelsOf picks from the clean probabilities (`clean`, or measured on the engine when not given).
 */
export async function engineAim(
  engine: ResidentFgsm,
  model: Classifier,
  { labels, target }: Pick<FgsmOptions, 'labels' | 'target'>,
  clean?: Float32Array,
): Promise<AttackAim | null> {
  if (labels === 'true' && target === null) return null;
  const { split } = engine;
  const probabilities = clean ?? (await engine.probabilities(model));
  return {
    lossLabels: lossLabelsOf(probabilities, split.y.subarray(0, split.n), model.spec.classes.length, { labels, target }),
    targeted: target !== null,
  };
}

/** The evaluation's engine, checked: it runs the configured attack on `model` and holds `test`. */
function onDeviceFor(model: Classifier, test: Split, options: EvaluateOptions): ResidentFgsm {
  const device = options.onDevice!;
  const unsupported = residentFgsmSupport(model.spec, options.attack);
  if (unsupported) throw new Error(`evaluate: ${unsupported}`);
  device.assertHolds(test, 'evaluate');
  return device;
}

/**
 * The figure's examples: the first `figureExamples` test examples clean, their perturbation direction and x̃ at
 * `figureEpsilon` under the configured attack (tfjs's ops), with the probabilities the evaluation measured.
 */
async function figureTriples(
  model: Classifier,
  test: Split,
  options: EvaluateOptions,
  figureEpsilon: number,
  clean: Float32Array,
  configured: AttackTally,
): Promise<ExampleTriple[]> {
  const rows = Math.min(options.figureExamples, test.n);
  if (rows === 0) return [];
  const k = model.spec.classes.length;
  const e = options.attack.epsilons.indexOf(figureEpsilon);
  const x = tf.tensor2d(test.x.subarray(0, rows * IMAGE_SIZE), [rows, IMAGE_SIZE]);
  const y = tf.tensor1d(test.y.subarray(0, rows), 'int32');
  const fgsmOptions = { ...fgsmOptionsFrom(options.attack, model.spec.classes), gradient: configured.gradient };
  const result = attackBatch(model, x, y, options.attack, fgsmOptions, { firstRow: 0, seed: options.seed, figureEpsilon });
  try {
    const xs = await x.data();
    const ds = await result.direction.data();
    const as = await result.adversarial[e]!.data();
    const pixels = (values: tf.TypedArray, i: number) => values.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE) as Float32Array;
    return Array.from({ length: rows }, (_, i) => ({
      label: test.y[i]!,
      clean: pixels(xs, i),
      direction: pixels(ds, i),
      adversarial: pixels(as, i),
      cleanProbabilities: clean.slice(i * k, (i + 1) * k),
      adversarialProbabilities: configured.probabilities[e]!.slice(i * k, (i + 1) * k),
    }));
  } finally {
    tf.dispose([x, y, result.direction, ...result.adversarial, ...(result.zeroGradient ? [result.zeroGradient] : [])]);
  }
}

/**
 * Clean metrics of a split, through the network without dropout: for the training split, the "error on the training
 * set" of §5 as pylearn2's monitor reported it (the training-state error of epochs.csv has dropout and is higher).
 */
export async function cleanMetrics(model: Classifier, split: Split, batchSize: number): Promise<ClassificationMetrics> {
  return classificationMetrics(await predictProbabilities(model, split.x, batchSize), split.y, model.spec.classes.length);
}

/**
 * The error on FGSM examples (true labels, unclipped, deterministic network, the given softmax gradient) of a
 * split at one ε: the adversarial validation error that §6's 1600-unit protocol early-stops on.
 */
export async function fgsmErrorRate(model: Classifier, split: Split, epsilon: number, gradient: SoftmaxGradient, batchSize = 1000): Promise<number> {
  let wrong = 0;
  for (let start = 0; start < split.n; start += batchSize) {
    await yieldToEventLoop(); // a signal's handler runs now, not after the whole split
    const end = Math.min(split.n, start + batchSize);
    const count = tf.tidy(() => {
      const x = tf.tensor2d(split.x.subarray(start * IMAGE_SIZE, end * IMAGE_SIZE), [end - start, IMAGE_SIZE]);
      const y = tf.tensor1d(split.y.subarray(start, end), 'int32');
      const { adversarial } = fastGradientSign(model, x, y, {
        epsilons: [epsilon],
        clip: null,
        labels: 'true',
        target: null,
        gradient,
        countZeroGradients: false,
      });
      // the first largest logit (as this error has always been measured); logistic regression's one logit is not a
      // class's, so its first largest probability
      const logits = model.logits(adversarial[0]!);
      const scores = logits.shape[1] === model.spec.classes.length ? logits : model.probabilities(logits);
      return tf.sum(tf.cast(tf.notEqual(tf.argMax(scores, 1), y), 'int32'));
    });
    try {
      wrong += (await count.data())[0]!;
    } finally {
      count.dispose();
    }
  }
  return split.n === 0 ? 0 : wrong / split.n;
}
