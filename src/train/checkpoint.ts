import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { digest } from '../data/verify.js';
import { decodeTensors, encodeTensors } from '../models/weights-io.js';

/**
 * A checkpoint is everything the loop needs to continue as if it had never stopped: the parameters, the
 * optimiser's velocities, the best parameters so far, and the loop state (epoch, step, early-stopping state,
 * history). Random streams are derived from (seed, name, epoch, step), so there is no generator state to save.
 * The tensors go to `epoch-NNNNNN.bin` (tfjs weights encoding), then `checkpoint.json` points at it, written
 * atomically last: a crash at any moment leaves the previous complete checkpoint in force.
 */
export const CHECKPOINT_FORMAT = 'fgsm-checkpoint/1';

/**
 * The checkpoint's tensors, by group: the parameters, the optimiser's velocities and the best parameters so far,
 * each keyed by parameter name. The file names them `<group>/<name>`, in this order.
 */
const TENSOR_GROUPS = ['params', 'velocity', 'best'] as const;
type TensorGroup = (typeof TENSOR_GROUPS)[number];

export interface Checkpoint<State> {
  state: State;
  tensors: Record<TensorGroup, Record<string, tf.Tensor>>;
}

interface Pointer<State> {
  format: string;
  file: string;
  sha256: string;
  weights: tf.io.WeightsManifestEntry[];
  state: State;
}

export async function saveCheckpoint<State>(dir: string, epoch: number, checkpoint: Checkpoint<State>): Promise<void> {
  const named = Object.fromEntries(
    TENSOR_GROUPS.flatMap((group) => Object.entries(checkpoint.tensors[group]).map(([name, t]) => [`${group}/${name}`, t] as const)),
  );
  const { specs, data } = await encodeTensors(named);
  const file = `epoch-${String(epoch).padStart(6, '0')}.bin`;
  writeFileAtomic(join(dir, file), data);
  const pointer: Pointer<State> = { format: CHECKPOINT_FORMAT, file, sha256: digest('sha256', data), weights: specs, state: checkpoint.state };
  writeJsonAtomic(join(dir, 'checkpoint.json'), pointer);
  for (const old of readdirSync(dir)) if (old.endsWith('.bin') && old !== file) rmSync(join(dir, old), { force: true });
}

/** The last complete checkpoint in `dir`, or null if there is none. */
export function loadCheckpoint<State>(dir: string): Checkpoint<State> | null {
  const path = join(dir, 'checkpoint.json');
  if (!existsSync(path)) return null;
  const pointer = JSON.parse(readFileSync(path, 'utf8')) as Pointer<State>;
  if (pointer.format !== CHECKPOINT_FORMAT) throw new FgsmError(`${path}: format ${pointer.format}, expected ${CHECKPOINT_FORMAT}`);
  const data = readFileSync(join(dir, pointer.file));
  if (digest('sha256', data) !== pointer.sha256) {
    throw new FgsmError(`${join(dir, pointer.file)}: checksum mismatch (the checkpoint is damaged)`, 'rerun with --fresh to start the run again');
  }
  const tensors: Checkpoint<State>['tensors'] = { params: {}, velocity: {}, best: {} };
  for (const [key, t] of Object.entries(decodeTensors(data, pointer.weights))) {
    const slash = key.indexOf('/');
    tensors[key.slice(0, slash) as TensorGroup][key.slice(slash + 1)] = t;
  }
  return { state: pointer.state, tensors };
}

/** The loop state of the last complete checkpoint in `dir`, without reading its tensors; null if there is none. */
export function readCheckpointState<State>(dir: string): State | null {
  const path = join(dir, 'checkpoint.json');
  if (!existsSync(path)) return null;
  return (JSON.parse(readFileSync(path, 'utf8')) as Pointer<State>).state;
}
