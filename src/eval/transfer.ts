import * as tf from '@tensorflow/tfjs-core';
import type { AttackConfig } from '../config/schema.js';
import { FgsmError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import { fastGradientSign } from '../attacks/fgsm.js';
import type { EngineGradient } from '../engine/kernels/cross-entropy.js';
import { EnsembleFgsm, ensembleMemberSupport } from '../engine/ensemble-fgsm.js';
import { residentFgsmSupport, type ResidentFgsm } from '../engine/resident-fgsm.js';
import type { Classifier } from '../models/classifier.js';
import { EnsembleClassifier } from '../models/ensemble.js';
import { predictProbabilities } from '../models/inference.js';
import { engineAim, fgsmOptionsFrom } from './evaluate.js';
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
 * The models whose test set the WebGPU engine holds (see pipeline/engine-attack.ts), each with its engine: there FGSM
 * examples are made and scored without tfjs's ops.
 */
export type Engines = ReadonlyMap<Classifier, ResidentFgsm>;

/**
 * The deterministic model's class probabilities on `rows` (images, [n × IMAGE_SIZE]): on its engine where `engines`
 * holds one; an ensemble whose members all have one, as the mean of theirs (p̄ = (1/M) Σ_m p_m, as
 * EnsembleClassifier computes it up to float32 rounding); otherwise through tfjs's ops, `batchSize` rows at a time.
 */
export async function probabilitiesOn(model: Classifier, rows: Float32Array, engines: Engines, batchSize: number): Promise<Float32Array> {
  const own = engines.get(model);
  if (own) return await own.probabilitiesOf(model, rows);
  if (model instanceof EnsembleClassifier && model.members.every((member) => engines.has(member))) {
    const sum = new Float64Array((rows.length / IMAGE_SIZE) * model.spec.classes.length);
    for (const member of model.members) {
      const p = await engines.get(member)!.probabilitiesOf(member, rows);
      for (let i = 0; i < sum.length; i++) sum[i]! += p[i]!;
    }
    return Float32Array.from(sum, (total) => total / model.members.length);
  }
  return await predictProbabilities(model, rows, batchSize);
}

/**
 * FGSM examples made on `source` (true labels or as `attack` says), scored by each of `scorers`: probabilities[e][s],
 * [n × k] row-major, for every ε of `attack` (one gradient per batch serves every ε). Where `engines` holds the
 * source and the engine takes the attack, or the source is an ensemble whose members it all holds and takes the
 * attack on (its gradient through the members' mean on their engines, EnsembleFgsm), x̃ is made there and read once
 * a batch (every ε: N × 784 floats each), and each scorer scores it as probabilitiesOn does; otherwise everything
 * runs on tfjs's ops, batch by batch. `onBatch` hears how many examples are done.
 */
export async function scoreAdversarial(
  source: Classifier,
  scorers: readonly Classifier[],
  test: Split,
  attack: AttackConfig,
  onBatch: (done: number) => void = () => {},
  engines: Engines = new Map(),
): Promise<Float32Array[][]> {
  const adversarial = await adversarialOnEngines(source, engines, test, attack);
  if (adversarial) {
    const probabilities: Float32Array[][] = [];
    for (const rows of adversarial) {
      const row: Float32Array[] = [];
      for (const scorer of scorers) row.push(await probabilitiesOn(scorer, rows, engines, attack.batchSize));
      probabilities.push(row);
    }
    onBatch(test.n);
    return probabilities;
  }
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

/** FGSM examples of the whole test set made on `source`'s engine or its members' (an ensemble), x̃ per ε; null where they do not take it. */
async function adversarialOnEngines(source: Classifier, engines: Engines, test: Split, attack: AttackConfig): Promise<Float32Array[] | null> {
  const engine = engines.get(source);
  if (engine && residentFgsmSupport(source.spec, attack) === null) return await adversarialOnEngine(source, engine, test, attack);
  const members = memberEngines(source, engines, attack);
  return members ? await adversarialOnMembers(source as EnsembleClassifier, members, test, attack) : null;
}

/** FGSM examples of the whole test set made on `source`'s engine, x̃ per ε: J's labels (predicted, a target) from its clean probabilities there. */
async function adversarialOnEngine(source: Classifier, engine: ResidentFgsm, test: Split, attack: AttackConfig): Promise<Float32Array[]> {
  engine.assertHolds(test, 'transfer');
  const { clip, labels, target } = fgsmOptionsFrom(attack, source.spec.classes);
  const aim = await engineAim(engine, source, { labels, target });
  return await engine.adversarial(source, attack.epsilons, attack.gradient as EngineGradient, clip, aim);
}

/**
 * The engines of an ensemble's members, in member order, where `engines` holds every one, each takes the attack and
 * all share one runtime (whose recorded work is ordered: see engineAttacks); else null.
 */
function memberEngines(source: Classifier, engines: Engines, attack: AttackConfig): ResidentFgsm[] | null {
  if (!(source instanceof EnsembleClassifier)) return null;
  const members = source.members.map((member) =>
    residentFgsmSupport(member.spec, attack) === null && ensembleMemberSupport(member.spec) === null ? engines.get(member) : undefined,
  );
  if (!members.every((engine) => engine !== undefined)) return null;
  return members.every((engine) => engine.runtime === members[0]!.runtime) ? members : null;
}

/**
 * FGSM examples of the whole test set made against the ensemble `source` on its members' engines (EnsembleFgsm),
 * x̃ per ε: J's labels (predicted, a target) from p̄ on the clean split, the mean of the members' probabilities there.
 */
async function adversarialOnMembers(source: EnsembleClassifier, members: ResidentFgsm[], test: Split, attack: AttackConfig): Promise<Float32Array[]> {
  for (const engine of members) engine.assertHolds(test, 'transfer');
  const { clip, labels, target } = fgsmOptionsFrom(attack, source.spec.classes);
  const first = members[0]!;
  const clean = labels === 'true' && target === null ? undefined : await meanProbabilities(source.members, members);
  const aim = await engineAim(first, source, { labels, target }, clean);
  const ensemble = EnsembleFgsm.create(members);
  try {
    return await ensemble.adversarial(source, attack.epsilons, attack.gradient as EngineGradient, clip, aim);
  } finally {
    ensemble.dispose();
  }
}

/** p̄ over the split its engines hold: the mean of the members' probabilities there (as probabilitiesOn averages them). */
async function meanProbabilities(members: readonly Classifier[], engines: readonly ResidentFgsm[]): Promise<Float32Array> {
  let sum: Float64Array | null = null;
  for (const [m, member] of members.entries()) {
    const p = await engines[m]!.probabilities(member);
    sum ??= new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) sum[i]! += p[i]!;
  }
  return Float32Array.from(sum!, (total) => total / members.length);
}

/** One matrix per ε of `attack` (one gradient per row model and batch serves every ε), on the engine where `engines` holds a model. */
export async function transferMatrices(
  models: NamedModel[],
  test: Split,
  attack: AttackConfig,
  progress: Progress,
  engines: Engines = new Map(),
): Promise<TransferMatrix[]> {
  checkSameTask(models, 'transfer');
  const k = models[0]!.model.spec.classes.length;
  const scorers = models.map((m) => m.model);
  progress.start(models.length * test.n, `transfer between ${models.length} models on ${test.n} test examples`);
  // rows[row][e][column]: [n × k]
  const rows: Float32Array[][][] = [];
  for (const [row, { model }] of models.entries()) {
    rows.push(await scoreAdversarial(model, scorers, test, attack, (done) => progress.update(row * test.n + done), engines));
  }
  progress.stop();
  return attack.epsilons.map((epsilon, e) => ({
    epsilon,
    names: models.map((m) => m.name),
    cells: rows.map((row) => row[e]!.map((p) => classificationMetrics(p, test.y, k))),
  }));
}
