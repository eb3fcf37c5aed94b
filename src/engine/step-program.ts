import type { ObjectiveConfig, TrainingConfig } from '../config/schema.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import { BatchInputKernel, type BatchNoise } from './kernels/batch-input.js';
import { CrossEntropy, type CrossEntropyShape, type EngineGradient } from './kernels/cross-entropy.js';
import { BackwardData, HiddenForward, OutputForward, WeightGradient, type BatchInput, type LayerShape, type PassDropout } from './kernels/layers.js';
import { RbfForward, RbfInputSign, RbfParameterGradient, rbfShape } from './kernels/rbf.js';
import { Update } from './kernels/update.js';
import type { EngineNetwork } from './network.js';
import type { PackedLayout } from './parameters.js';
import type { ResidentData } from './resident-data.js';
import { STEP_RECORD_BYTES, type GpuRuntime } from './runtime.js';

/** What of the training config the step's kernels are built for: the objective and the penalties. */
export type EngineTraining = Pick<TrainingConfig, 'objective' | 'weightDecay' | 'l1FirstLayer'>;

/** What a step program is built for: it is rebuilt when any of these changes. */
export interface ProgramShape {
  lanes: number;
  batchSize: number;
  /** Rows of an epoch's last minibatch where the split is not whole minibatches (one lane only), else 0. */
  remainder: number;
  /** Row indices per lane per epoch (the largest split any lane trains on). */
  indexStride: number;
  /** Steps per epoch (per-step records and statistics slots). */
  steps: number;
  residentVersion: number;
}

/** One kernel use, built once, recorded once per step. */
export interface RecordedKernel {
  record(step: number): void;
  /** Releases the kernel's own uniform buffer. */
  dispose(): void;
}

/**
 * The dispatches of one training step, built once for a shape: the buffers of every pass, each kernel with its
 * bind group, the per-step records and the statistics slots. recordStep records them into the runtime's command
 * stream; nothing in it touches the host. A ragged last minibatch has kernels of its own, built for its rows over
 * the same buffers.
 */
export class StepProgram {
  private constructor(
    private readonly runtime: GpuRuntime,
    readonly shape: ProgramShape,
    private readonly buffers: Map<string, GPUBuffer>,
    private readonly kernels: readonly RecordedKernel[],
    private readonly lastKernels: readonly RecordedKernel[],
  ) {}

  static async create(
    runtime: GpuRuntime,
    spec: EngineNetwork,
    training: EngineTraining,
    layout: PackedLayout,
    resident: ResidentData,
    shape: ProgramShape,
  ): Promise<StepProgram> {
    const buffers = new Map<string, GPUBuffer>();
    const add = (name: string, bytes: number): GPUBuffer => {
      const buffer = runtime.buffer(name, bytes);
      buffers.set(name, buffer);
      return buffer;
    };
    const { lanes, batchSize: n } = shape;
    const adversarial = training.objective.kind === 'adversarial';
    const rows = trainingRows(training.objective, n);
    for (const name of ['params', 'velocity', 'grads']) add(name, lanes * layout.laneFloats * 4);
    add('rowIndex', lanes * shape.indexStride * 4);
    add('stats', shape.steps * lanes * 2 * 4);
    add('adversarial', adversarial ? lanes * n * IMAGE_SIZE * 4 : 4);
    const steps = runtime.uniform('steps', shape.steps * STEP_RECORD_BYTES);
    buffers.set('steps', steps);
    spec.layers.forEach((layer, i) => {
      add(`h${i + 1}`, lanes * rows * layer.units * 4);
      add(`route${i + 1}`, lanes * rows * layer.units * 4);
      add(`dPre${i + 1}`, lanes * rows * layer.units * layer.pieces * 4);
    });
    add('input', lanes * rows * spec.inputSize * 4);
    add('logits', lanes * rows * spec.classes.length * 4);
    add('dLogits', lanes * rows * spec.classes.length * 4);
    const kernels: RecordedKernel[] = [];
    try {
      kernels.push(...(await buildKernels(runtime, spec, training, layout, resident, shape, buffers, n)));
      const last = shape.remainder > 0 ? await buildKernels(runtime, spec, training, layout, resident, shape, buffers, shape.remainder) : kernels;
      return new StepProgram(runtime, shape, buffers, kernels, last);
    } catch (error) {
      for (const kernel of kernels) kernel.dispose();
      for (const buffer of buffers.values()) runtime.release(buffer);
      throw error;
    }
  }

  get params(): GPUBuffer {
    return this.buffers.get('params')!;
  }

  get velocity(): GPUBuffer {
    return this.buffers.get('velocity')!;
  }

  fits(shape: ProgramShape): boolean {
    return (Object.keys(shape) as (keyof ProgramShape)[]).every((key) => this.shape[key] === shape[key]);
  }

  /** The epoch's row indices and per-step records. */
  upload(rowIndex: Uint32Array, records: ArrayBuffer): void {
    this.runtime.write(this.buffers.get('rowIndex')!, rowIndex);
    this.runtime.write(this.buffers.get('steps')!, new Uint8Array(records));
  }

  recordStep(step: number): void {
    for (const kernel of step === this.shape.steps - 1 ? this.lastKernels : this.kernels) kernel.record(step);
  }

  /** Each lane's objective and misclassified count for steps from..to−1 (one read, which waits for them). */
  async readStats(from: number, to: number): Promise<Float32Array> {
    const perStep = this.shape.lanes * 2 * 4;
    return new Float32Array(await this.runtime.read(this.buffers.get('stats')!, from * perStep, (to - from) * perStep));
  }

  dispose(): void {
    for (const kernel of new Set([...this.kernels, ...this.lastKernels])) kernel.dispose();
    for (const buffer of this.buffers.values()) this.runtime.release(buffer);
    this.buffers.clear();
  }
}

/** The objective when it mixes α·J(x) + (1 − α)·J(x̃) (J̃ always, the noise controls under alpha-mix), else null. */
function alphaMix(objective: ObjectiveConfig): { alpha: number } | null {
  return objective.kind === 'adversarial' || (objective.kind === 'noise' && objective.mixing === 'alpha-mix') ? objective : null;
}

/** Rows a lane's training pass holds: [x; x̃] under alpha-mix (minibatchObjective's order), else x or x̃ alone. */
function trainingRows(objective: ObjectiveConfig, n: number): number {
  return alphaMix(objective) ? 2 * n : n;
}

/**
 * The kernels of one step, in order. With x̃ (§6's J̃): the gradient pass over x (R = n rows a lane, in the
 * objective's gradient state and form) down to x̃ = x + ε·sign(∇ₓJ); then the training pass over [x; x̃] (R = 2n)
 * with the clean term's dropout masks, its gradients layer by layer from the top, and the update. The noise controls
 * and clean training: the training pass alone, the noise drawn into its input (over [x; x̃] for alpha-mix, over x̃
 * alone for replace). For two hidden layers: 19 dispatches a J̃ step, 11 a noise or a clean one. The RBF network
 * has its own kernels in place of the layers' (the forward pass, the FGSM step, the parameters' gradient): 9 a J̃
 * step, 5 a clean one. `n`: the minibatch's rows (the batch size, or a ragged last minibatch's, which the buffers
 * also hold).
 */
async function buildKernels(
  runtime: GpuRuntime,
  spec: EngineNetwork,
  training: EngineTraining,
  layout: PackedLayout,
  resident: ResidentData,
  shape: ProgramShape,
  buffers: Map<string, GPUBuffer>,
  n: number,
): Promise<RecordedKernel[]> {
  const { lanes, indexStride } = shape;
  const { objective } = training;
  const buffer = (name: string): GPUBuffer => buffers.get(name)!;
  const steps = buffer('steps');
  const parameters = buffer('params');
  const hidden = spec.layers.length;
  const top = hidden + 1;
  const adversarial = objective.kind === 'adversarial' ? objective : null;
  const noise: BatchNoise | null = objective.kind === 'noise' ? objective : null;
  const rows = trainingRows(objective, n);
  const batch = (R: number): BatchInput => ({
    images: resident.images!,
    rowIndex: buffer('rowIndex'),
    indexStride,
    batchRows: n,
    ...(R > n && adversarial ? { adversarial: buffer('adversarial') } : {}),
  });
  const masks = (seed: PassDropout['seed']): PassDropout | null => {
    if (!spec.dropout) return null;
    const { inputKeep, inputScale, hiddenKeep, hiddenScale } = spec.dropout;
    return { seed, inputKeep, inputScale, hiddenKeep, hiddenScale };
  };
  const layer = (j: number, R: number): LayerShape => {
    const { inputs, columns, offset } = layout.layers[j - 1]!;
    return { lanes, rows: R, layer: j, inputs, columns, laneFloats: layout.laneFloats, offset };
  };
  // ∂J/∂(pre-activations) of layer j: the logits' for the top layer
  const upstream = (j: number): GPUBuffer => (j === top ? buffer('dLogits') : buffer(`dPre${j}`));

  // the pass's masked input made once, then its layers
  const forward = async (R: number, dropout: PassDropout | null, withNoise: BatchNoise | null = null): Promise<RecordedKernel[]> => {
    const kernels: RecordedKernel[] = [
      await BatchInputKernel.create(
        runtime,
        { lanes, rows: R, inputs: spec.inputSize, dropout, noise: withNoise },
        { steps, batch: batch(R), output: buffer('input') },
      ),
    ];
    if (spec.rbf) {
      const buffers = { parameters, input: buffer('input'), logits: buffer('logits') };
      return [...kernels, await RbfForward.create(runtime, rbfShape(spec, layout, lanes, R), buffers)];
    }
    for (const [i, { pieces }] of spec.layers.entries()) {
      const input = i === 0 ? buffer('input') : buffer(`h${i}`);
      kernels.push(
        await HiddenForward.create(
          runtime,
          { ...layer(i + 1, R), pieces, dropout },
          { steps, parameters, input, output: buffer(`h${i + 1}`), route: buffer(`route${i + 1}`) },
        ),
      );
    }
    kernels.push(
      await OutputForward.create(runtime, layer(top, R), {
        steps,
        parameters,
        input: buffer(hidden ? `h${hidden}` : 'input'),
        output: buffer('logits'),
      }),
    );
    return kernels;
  };
  // ∂J/∂(pre-activations of layer j − 1) from layer j's, through W_j, the mask and the maxout routing of layer j − 1
  const backThrough = (j: number, R: number, dropout: PassDropout | null) =>
    BackwardData.create(
      runtime,
      { ...layer(j, R), dropout, epilogue: { kind: 'maxout', pieces: spec.layers[j - 2]!.pieces } },
      { steps, parameters, upstream: upstream(j), output: buffer(`dPre${j - 1}`), route: buffer(`route${j - 1}`) },
    );
  const crossEntropy = (R: number, shapeOf: Pick<CrossEntropyShape, 'gradient' | 'weights' | 'reduction' | 'statistics'>) =>
    CrossEntropy.create(
      runtime,
      { lanes, rows: R, batch: n, classes: spec.classes.length, indexStride, top: spec.top, sigmoidLoss: spec.sigmoidLoss, ...shapeOf },
      {
        steps,
        logits: buffer('logits'),
        labels: resident.labels!,
        rowIndex: buffer('rowIndex'),
        dLogits: buffer('dLogits'),
        ...(shapeOf.statistics ? { stats: buffer('stats') } : {}),
      },
    );

  const kernels: RecordedKernel[] = [];
  if (adversarial) {
    const state = adversarial.gradientState;
    const dropout = state === 'deterministic' ? null : masks(state === 'clean-mask' ? 'dropoutSeed' : 'gradientSeed');
    kernels.push(...(await forward(n, dropout)));
    kernels.push(
      await crossEntropy(n, {
        gradient: adversarial.gradient as EngineGradient,
        weights: { clean: 1, adversarial: 0 },
        reduction: 'sum',
        statistics: null,
      }),
    );
    if (spec.rbf) {
      const buffers = { parameters, input: buffer('input'), logits: buffer('logits'), dLogits: buffer('dLogits'), output: buffer('adversarial') };
      kernels.push(await RbfInputSign.create(runtime, { ...rbfShape(spec, layout, lanes, n), epsilon: adversarial.epsilon }, buffers));
    } else {
      for (let j = top; j >= 2; j--) kernels.push(await backThrough(j, n, dropout));
      kernels.push(
        await BackwardData.create(
          runtime,
          { ...layer(1, n), dropout, epilogue: { kind: 'input-sign', epsilon: adversarial.epsilon } },
          { steps, parameters, upstream: upstream(1), output: buffer('adversarial'), batch: batch(n) },
        ),
      );
    }
  }
  const dropout = masks('dropoutSeed');
  kernels.push(...(await forward(rows, dropout, noise)));
  // minibatchObjective's weights; its misclassified rows are a lane's first n either way: x under alpha-mix, x̃ under replace
  const mix = alphaMix(objective);
  const weights = mix ? { clean: mix.alpha, adversarial: 1 - mix.alpha } : { clean: 1, adversarial: 0 };
  kernels.push(await crossEntropy(rows, { gradient: 'standard', weights, reduction: 'mean', statistics: { misclassifiedRows: n } }));
  if (spec.rbf) {
    const buffers = { parameters, input: buffer('input'), logits: buffer('logits'), dLogits: buffer('dLogits'), gradients: buffer('grads') };
    kernels.push(await RbfParameterGradient.create(runtime, rbfShape(spec, layout, lanes, rows), buffers));
  } else {
    for (let j = top; j >= 1; j--) {
      const input = j === 1 ? buffer('input') : buffer(`h${j - 1}`);
      kernels.push(
        await WeightGradient.create(runtime, { ...layer(j, rows), dropout }, { steps, input, upstream: upstream(j), gradients: buffer('grads') }),
      );
      if (j >= 2) kernels.push(await backThrough(j, rows, dropout));
    }
  }
  kernels.push(
    await Update.create(
      runtime,
      {
        lanes,
        laneFloats: layout.laneFloats,
        layers: layout.layers,
        penalties: training,
        maxColumnNorm: spec.maxColumnNorm,
        nonNegativeFirstLayer: spec.rbf?.precision === 'clamp',
        // the RBF network's second layer holds μ, which tfjs's weight decay (on role weight: ρ) leaves alone
        decayedLayers: spec.rbf ? 1 : layout.layers.length,
      },
      { steps, parameters, gradients: buffer('grads'), velocities: buffer('velocity') },
    ),
  );
  return kernels;
}
