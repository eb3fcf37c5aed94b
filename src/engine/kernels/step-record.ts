import { STEP_RECORD_BYTES } from '../runtime.js';

/*
 * The per-step constants every engine kernel may read: one STEP_RECORD_BYTES uniform record per training step, chosen by a
 * dynamic offset (GpuRuntime.dispatch's `step`), so that one submit covers many steps and a step costs no upload of
 * its own. A record holds one entry per stacked network (lane).
 */

/** The most networks one stack trains together (a record's size bounds it: 16 lanes × 32 bytes; §9's ensemble has 12). */
export const MAX_LANES = 16;

/** What one lane needs to know at one step. */
export interface LaneStep {
  /** The seed of the lane's dropout masks at this step (its clean term's; the counter generator's first key word). */
  dropoutSeed: number;
  /** The seed of the masks ∇ₓJ is taken through under gradientState independent-mask. */
  gradientSeed: number;
  /** Where the step's minibatch starts in the lane's row indices of the epoch. */
  batchStart: number;
  /** false: the lane has finished its epoch's minibatches and idles (no update). */
  active: boolean;
  learningRate: number;
  momentum: number;
  /** Where this step's loss and error count go in the statistics buffer (the step's index within its read interval). */
  statsSlot: number;
}

/** The WGSL declaration of the record; kernels bind it as `var<uniform> step: Step` (binding kind 'step'). */
export const STEP_RECORD_WGSL = /* wgsl */ `
struct LaneStep {
  dropoutSeed: u32,
  gradientSeed: u32,
  batchStart: u32,
  isActive: u32,
  learningRate: f32,
  momentum: f32,
  statsSlot: u32,
  unused1: u32,
}
struct Step { lanes: array<LaneStep, ${MAX_LANES}> }
`;

/** Records for consecutive steps, `steps[i]` holding each lane's entry at step i, ready for a uniform buffer. */
export function encodeSteps(steps: readonly (readonly LaneStep[])[]): ArrayBuffer {
  const bytes = new ArrayBuffer(steps.length * STEP_RECORD_BYTES);
  const u32 = new Uint32Array(bytes);
  const f32 = new Float32Array(bytes);
  steps.forEach((lanes, i) => {
    if (lanes.length > MAX_LANES) throw new Error(`${lanes.length} lanes: the engine stacks at most ${MAX_LANES}`);
    lanes.forEach((lane, l) => {
      const at = (i * STEP_RECORD_BYTES) / 4 + l * 8;
      u32[at] = lane.dropoutSeed >>> 0;
      u32[at + 1] = lane.gradientSeed >>> 0;
      u32[at + 2] = lane.batchStart;
      u32[at + 3] = lane.active ? 1 : 0;
      f32[at + 4] = lane.learningRate;
      f32[at + 5] = lane.momentum;
      u32[at + 6] = lane.statsSlot;
    });
  });
  return bytes;
}
