import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
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
 * atomically last: a crash at any moment leaves the previous complete checkpoint in force. The checkpoint before
 * it is kept too (`checkpoint.previous.json` and its file): a damaged latest one costs one epoch, not the run.
 * A folder of the older layout (one checkpoint) resumes as it is.
 */
export const CHECKPOINT_FORMAT = 'fgsm-checkpoint/1';

const LATEST = 'checkpoint.json';
const PREVIOUS = 'checkpoint.previous.json';

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

/** A checkpoint file that could not be used, and why. */
export interface DamagedCheckpoint {
  path: string;
  why: string;
}

/** A checkpoint as loaded: the one resumed from, and the newer ones passed over because they were damaged. */
export interface LoadedCheckpoint<State> extends Checkpoint<State> {
  path: string;
  passedOver: DamagedCheckpoint[];
}

interface Pointer<State> {
  format: string;
  file: string;
  sha256: string;
  weights: tf.io.WeightsManifestEntry[];
  state: State;
}

const BYTES_PER_VALUE: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/** The bytes a tensors file of these entries holds. */
const expectedBytes = (weights: tf.io.WeightsManifestEntry[]): number =>
  weights.reduce((sum, w) => sum + w.shape.reduce((n, d) => n * d, 1) * (BYTES_PER_VALUE[w.dtype] ?? Number.NaN), 0);

class Damage extends Error {}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Damage(code === 'EISDIR' ? `${what} is a folder, not a file` : code === 'ENOENT' ? `${what} is missing` : (error as Error).message);
  }
}

/** The pointer in `path`, its shape checked; throws Damage saying what is wrong with it. */
function readPointer<State>(path: string): Pointer<State> {
  const text = readText(path, 'it');
  if (text.trim() === '') throw new Damage('it is empty');
  let pointer: unknown;
  try {
    pointer = JSON.parse(text);
  } catch (error) {
    throw new Damage(`not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(pointer)) throw new Damage('not a checkpoint (expected a JSON object)');
  if (pointer.format !== CHECKPOINT_FORMAT) throw new Damage(`format ${String(pointer.format)}, expected ${CHECKPOINT_FORMAT}`);
  const file = pointer.file;
  if (
    typeof file !== 'string' ||
    !/^epoch-\d+\.bin$/.test(file) ||
    typeof pointer.sha256 !== 'string' ||
    !Array.isArray(pointer.weights) ||
    !isObject(pointer.state)
  )
    throw new Damage('not a complete checkpoint (expected file, sha256, weights and state)');
  return pointer as unknown as Pointer<State>;
}

/** The tensors file `pointer` names, checked against its checksum. */
function readTensorsFile(dir: string, pointer: Pointer<unknown>): Buffer {
  const path = join(dir, pointer.file);
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Damage(
      code === 'ENOENT'
        ? `its tensors file ${pointer.file} is missing`
        : code === 'EISDIR'
          ? `${pointer.file} is a folder, not a file`
          : (error as Error).message,
    );
  }
  if (digest('sha256', data) !== pointer.sha256) throw new Damage(`its tensors file ${pointer.file} does not match its checksum`);
  return data;
}

/** `dir` as a folder of checkpoints: false when it does not exist; a file in its place is an error naming it. */
function checkpointFolder(dir: string): boolean {
  let stat;
  try {
    stat = statSync(dir);
  } catch {
    return false;
  }
  if (!stat.isDirectory())
    throw new FgsmError(
      `${dir} is a file, not the folder of the run's checkpoints`,
      'move it away to resume from nothing, or pass --fresh to start a separate run',
    );
  return true;
}

/**
 * The newest usable checkpoint in `dir`: its pointer and tensors file (read and checked), and the newer ones that
 * were damaged; null when there is none at all. Throws a FgsmError naming every damaged one when none is usable.
 */
function newestUsable<State>(dir: string): { path: string; pointer: Pointer<State>; data: Buffer; passedOver: DamagedCheckpoint[] } | null {
  if (!checkpointFolder(dir)) return null;
  const candidates = [LATEST, PREVIOUS].map((name) => join(dir, name));
  if (!candidates.some((path) => existsSync(path))) return null;
  const passedOver: DamagedCheckpoint[] = [];
  for (const path of candidates) {
    if (!existsSync(path) && path !== candidates[0]) continue; // the older layout: one checkpoint
    try {
      const pointer = readPointer<State>(path);
      const data = readTensorsFile(dir, pointer);
      // a folder would stand in the way of the next checkpoint: the user moves it, fgsm does not delete it
      const folder = passedOver.find((damaged) => statSync(damaged.path, { throwIfNoEntry: false })?.isDirectory());
      if (folder)
        throw new FgsmError(
          `${folder.path} is a folder, not a checkpoint file`,
          `move ${folder.path} away and rerun the same command to resume from ${path}`,
        );
      return { path, pointer, data, passedOver };
    } catch (error) {
      if (!(error instanceof Damage)) throw error;
      passedOver.push({ path, why: error.message });
    }
  }
  throw new FgsmError(
    `no usable checkpoint to resume from: ${passedOver.map((d) => `${d.path}: ${d.why}`).join('; ')}`,
    'put back a copy of the checkpoints/ folder, or pass --fresh to start a separate run (this one is left as it is)',
  );
}

/**
 * Whether the checkpoint in `path` is whole enough to be kept as the one before the next: its pointer reads and
 * its tensors file is there at its full size (its checksum is checked when it is resumed from).
 */
function plausible(dir: string, path: string): boolean {
  try {
    const pointer = readPointer(path);
    return statSync(join(dir, pointer.file)).size === expectedBytes(pointer.weights);
  } catch {
    return false;
  }
}

export async function saveCheckpoint<State>(dir: string, epoch: number, checkpoint: Checkpoint<State>): Promise<void> {
  const named = Object.fromEntries(
    TENSOR_GROUPS.flatMap((group) => Object.entries(checkpoint.tensors[group]).map(([name, t]) => [`${group}/${name}`, t] as const)),
  );
  const { specs, data } = await encodeTensors(named);
  const file = `epoch-${String(epoch).padStart(6, '0')}.bin`;
  writeFileAtomic(join(dir, file), data);
  // the checkpoint in force becomes the one before (a damaged one is not kept: the one before it stays)
  const latest = join(dir, LATEST);
  if (plausible(dir, latest) && readPointer(latest).file !== file) writeFileAtomic(join(dir, PREVIOUS), readFileSync(latest));
  const pointer: Pointer<State> = { format: CHECKPOINT_FORMAT, file, sha256: digest('sha256', data), weights: specs, state: checkpoint.state };
  writeJsonAtomic(latest, pointer);
  const kept = new Set([file]);
  try {
    kept.add(readPointer(join(dir, PREVIOUS)).file);
  } catch {
    // no checkpoint before this one (yet)
  }
  for (const old of readdirSync(dir)) if (old.endsWith('.bin') && !kept.has(old)) rmSync(join(dir, old), { force: true });
}

/**
 * The newest usable checkpoint in `dir` (the latest, else the one before it when the latest is damaged), or null
 * if there is none; a FgsmError naming them when every checkpoint there is damaged.
 */
export function loadCheckpoint<State>(dir: string): LoadedCheckpoint<State> | null {
  const usable = newestUsable<State>(dir);
  if (!usable) return null;
  const { path, pointer, data, passedOver } = usable;
  const tensors: Checkpoint<State>['tensors'] = { params: {}, velocity: {}, best: {} };
  for (const [key, t] of Object.entries(decodeTensors(data, pointer.weights))) {
    const slash = key.indexOf('/');
    tensors[key.slice(0, slash) as TensorGroup][key.slice(slash + 1)] = t;
  }
  return { state: pointer.state, tensors, path, passedOver };
}

/** The loop state of the checkpoint loadCheckpoint would resume from, without decoding its tensors; null if none. */
export function readCheckpointState<State>(dir: string): State | null {
  return newestUsable<State>(dir)?.pointer.state ?? null;
}
