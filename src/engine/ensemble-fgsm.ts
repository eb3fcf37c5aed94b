import type { Classifier, MaxoutTop, ModelSpec } from '../models/classifier.js';
import type { EnsembleClassifier } from '../models/ensemble.js';
import type { EngineGradient } from './kernels/cross-entropy.js';
import { EnsembleLoss } from './kernels/ensemble-loss.js';
import type { BackwardData } from './kernels/layers.js';
import { asEngineNetwork, type EngineNetwork } from './network.js';
import type { AttackAim, EnsembleMemberPasses, ResidentFgsm } from './resident-fgsm.js';

/**
 * The top of a network the engine attacks as a member of an ensemble, or null where it does not: the ensemble's loss
 * kernel differentiates the softmax and sigmoid tops' log-probabilities, and layer 1's input gradient is an affine
 * layer's (not logistic regression's one logit, not the RBF network).
 */
function memberTop(network: EngineNetwork): MaxoutTop | null {
  return !network.rbf && (network.top === 'softmax' || network.top === 'sigmoid') ? network.top : null;
}

/** Why the engine does not attack an ensemble with this member as a whole (null: it does). */
export function ensembleMemberSupport(spec: ModelSpec): string | null {
  const network = asEngineNetwork(spec);
  if (network && memberTop(network)) return null;
  return `its members' engines attack ensembles of maxout networks and softmax regressions, not of ${spec.kind === 'maxout' ? `a ${spec.top} top` : `${spec.kind} networks`}`;
}

/**
 * FGSM against a whole ensemble (§9: J = −log p̄_y, p̄ the mean of the members' probabilities) on its members'
 * engines, which share one runtime (one command encoder: the work recorded on each stays in order with the others')
 * and hold the same split in batches of the same rows. Per batch of n rows:
 * - each member's forward pass into its own buffers (L_m + 1 dispatches for L_m hidden layers);
 * - its logits copied into one shared buffer [M · n × k] (a buffer copy each, no dispatch);
 * - the ensemble's loss kernel (EnsembleLoss, one dispatch) writes every member's ∂J/∂z, copied back into the members'
 *   dLogits (a copy each);
 * - each member's backward pass (L_m dispatches), then its layer-1 ∇ₓ (one dispatch) added into the first member's
 *   direction buffer, the last members first as tfjs's tape adds them; the first member's pass writes
 *   sign(Σ_m ∇ₓ log …) there instead of the sum;
 * - the first member's engine makes x̃ at every ε from it (one dispatch per group of ε) and reads it (one read).
 * That is Σ_m (2 L_m + 2) + 2 dispatches, 2M copies and one read of x̃ (N × 784 floats per ε over the split) a batch,
 * the same read as FGSM on one model; nothing is uploaded per batch (the sum over members never leaves the device).
 */
export class EnsembleFgsm {
  /** The loss kernel per gradient form, and the members' input-gradient kernels: built by the first call that needs them. */
  private readonly losses = new Map<EngineGradient, EnsembleLoss>();
  private inputGradients: BackwardData[] | null = null;

  private constructor(
    private readonly engines: readonly ResidentFgsm[],
    private readonly buffers: { logits: GPUBuffer; dLogits: GPUBuffer },
    private readonly runtime: EnsembleMemberPasses['runtime'],
  ) {}

  /** For an ensemble whose members' engines (in member order) hold the same split in the same batches. */
  static create(engines: readonly ResidentFgsm[]): EnsembleFgsm {
    const first = engines[0];
    if (!first) throw new Error('an ensemble needs at least one member engine');
    if (engines.some((engine) => engine.split !== first.split)) throw new Error("the members' engines hold different splits");
    const classes = engines.map((engine) => engine.classes);
    if (classes.some((k) => k !== classes[0])) throw new Error(`the members classify ${classes.join(', ')} classes`);
    const rows = engines.map((engine) => engine.batchRows);
    if (rows.some((n) => n !== rows[0])) throw new Error(`the members' engines take batches of ${rows.join(', ')} rows`);
    const runtime = first.runtime;
    if (engines.some((engine) => engine.runtime !== runtime)) throw new Error("the members' engines run on different runtimes");
    const bytes = engines.length * rows[0]! * classes[0]! * 4;
    const logits = runtime.buffer('ensemble logits', bytes);
    return new EnsembleFgsm(engines, { logits, dLogits: runtime.buffer('ensemble dLogits', bytes) }, runtime);
  }

  /**
   * FGSM examples at each of `epsilons` against `ensemble` (its members those of the engines, in order) on every
   * example of the split, as fastGradientSign makes them against EnsembleClassifier: ∇ₓJ with the members'
   * log-softmaxes differentiated in the `gradient` form, up the true labels' loss unless `aim` says otherwise, x̃
   * clipped to `clip` unless null. x̃ per ε, [N × IMAGE_SIZE] in the split's order.
   */
  async adversarial(
    ensemble: EnsembleClassifier,
    epsilons: readonly number[],
    gradient: EngineGradient,
    clip: readonly [number, number] | null,
    aim: AttackAim | null = null,
  ): Promise<Float32Array[]> {
    const members = this.membersOf(ensemble).map((member, m) => this.engines[m]!.asMember(member, aim));
    const loss = await this.lossKernel(members, gradient);
    const inputGradients = (this.inputGradients ??= await this.inputGradientKernels(members));
    return await this.engines[0]!.adversarialAlong(epsilons, clip, aim?.targeted ?? false, (b) =>
      this.recordDirection(members, loss, inputGradients, b),
    );
  }

  /** Releases its buffers and kernels (before the members' engines go: its kernels are bound to their buffers). */
  dispose(): void {
    for (const kernel of [...this.losses.values(), ...(this.inputGradients ?? [])]) kernel.dispose();
    this.losses.clear();
    this.inputGradients = null;
    this.runtime.release(this.buffers.logits);
    this.runtime.release(this.buffers.dLogits);
  }

  private membersOf(ensemble: EnsembleClassifier): readonly Classifier[] {
    if (ensemble.members.length !== this.engines.length)
      throw new Error(`the ensemble has ${ensemble.members.length} members, not the ${this.engines.length} of these engines`);
    return ensemble.members;
  }

  private async lossKernel(members: readonly EnsembleMemberPasses[], gradient: EngineGradient): Promise<EnsembleLoss> {
    const built = this.losses.get(gradient);
    if (built) return built;
    const first = members[0]!;
    const tops = members.map((member) => {
      const top = memberTop(member.spec);
      if (!top) throw new Error(`the engine attacks no ensemble with a ${member.spec.rbf ? 'RBF' : member.spec.top} member`);
      return top;
    });
    const loss = await EnsembleLoss.create(
      first.runtime,
      { tops, rows: first.rows, classes: first.spec.classes.length, gradient },
      { steps: first.steps, logits: this.buffers.logits, labels: first.labels, rowIndex: first.rowIndex, dLogits: this.buffers.dLogits },
    );
    this.losses.set(gradient, loss);
    return loss;
  }

  /** Member m's layer-1 ∇ₓ into the first member's direction buffer: the last member writes, the others add, the first signs. */
  private async inputGradientKernels(members: readonly EnsembleMemberPasses[]): Promise<BackwardData[]> {
    const into = members[0]!.direction;
    const last = members.length - 1;
    const kernels: BackwardData[] = [];
    try {
      for (const [m, member] of members.entries()) {
        kernels.push(await member.inputGradient({ kind: 'input-gradient', accumulate: m !== last, sign: m === 0 }, into));
      }
    } catch (error) {
      for (const kernel of kernels) kernel.dispose();
      throw error;
    }
    return kernels;
  }

  /** Batch b's sign(∇ₓJ) into the first member's direction buffer (see the class's comment). */
  private recordDirection(members: readonly EnsembleMemberPasses[], loss: EnsembleLoss, inputGradients: readonly BackwardData[], b: number): void {
    const block = members[0]!.rows * members[0]!.spec.classes.length * 4;
    for (const member of members) member.recordForward(b);
    members.forEach((member, m) => this.runtime.copy(member.logits, 0, this.buffers.logits, m * block, block));
    loss.record(b);
    members.forEach((member, m) => this.runtime.copy(this.buffers.dLogits, m * block, member.dLogits, 0, block));
    for (let m = members.length - 1; m >= 0; m--) {
      members[m]!.recordHiddenBackward(b);
      inputGradients[m]!.record(b);
    }
  }
}
