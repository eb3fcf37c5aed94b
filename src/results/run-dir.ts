import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { makeDir, writeJsonAtomic } from '../core/atomic.js';
import { damagedFile, fileSystemError, readJsonState } from '../core/fs-errors.js';
import { FgsmError } from '../core/errors.js';
import { dataIdentity, type Counts, type DataIdentity } from '../data/identity.js';
import type { DataProvenance } from '../data/source.js';
import { readCheckpointState } from '../train/checkpoint.js';
import { checkpointStepsPerEpoch } from '../train/loop.js';
import { acquireRunLock, inspectLock, type LockTiming, type RunLock } from './run-lock.js';

/**
 * One folder per run: <results>/<experiment>/<run id>/. `status.json` says whether the run is running,
 * interrupted, failed or complete, what it was begun on (its identity) and which process ran it last; a later
 * `fgsm run` of the same resolved config resumes the newest unfinished run, on the same identity only, holding
 * the folder's lock (run-lock.ts) for as long as it writes there.
 */
export interface RunIdentity {
  data: DataIdentity;
  /** The tfjs backend that trains: float results differ between backends, so a run keeps one. */
  backend: string;
}

export interface RunStatus {
  state: 'running' | 'interrupted' | 'failed' | 'complete';
  configHash: string;
  startedAt: string;
  updatedAt: string;
  message?: string;
  /** Absent in runs begun before identities were recorded. */
  experiment?: string;
  seed?: number;
  identity?: RunIdentity;
  /** The process that last ran it. */
  pid?: number;
  host?: string;
}

export interface OpenRun {
  dir: string;
  runId: string;
  resumed: boolean;
  lock: RunLock;
}

const statusPath = (dir: string) => join(dir, 'status.json');

const STATES: readonly string[] = ['running', 'interrupted', 'failed', 'complete'] satisfies RunStatus['state'][];

/**
 * The run's status.json, or null when `dir` has none (it is no run folder); a damaged one is an error naming it:
 * fgsm cannot tell what the run is, so it neither resumes it nor starts another beside it.
 */
export function readStatus(dir: string): RunStatus | null {
  const path = statusPath(dir);
  const fix = `restore ${path} from a copy, or move the run folder ${dir} out of the results folder`;
  const status = readJsonState(path, fix);
  if (status === null) return null;
  const { state, configHash } = (status ?? {}) as Partial<RunStatus>;
  if (typeof state !== 'string' || !STATES.includes(state) || typeof configHash !== 'string')
    throw damagedFile(path, `not a run status (expected a JSON object with a state, one of ${STATES.join(', ')}, and a configHash)`, fix);
  return status as RunStatus;
}

export function writeStatus(dir: string, state: RunStatus['state'], message?: string): void {
  const { message: _previousMessage, ...previous } = readStatus(dir) ?? ({} as Partial<RunStatus>);
  const now = new Date().toISOString();
  writeJsonAtomic(statusPath(dir), {
    ...previous,
    state,
    configHash: previous.configHash ?? '',
    startedAt: previous.startedAt ?? now,
    updatedAt: now,
    pid: process.pid,
    host: hostname(),
    ...(message ? { message } : {}),
  } satisfies RunStatus);
}

function timestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/** The id of the newest run of `experiment` whose status `wanted` accepts, or null. */
function newestRun(resultsDir: string, experiment: string, wanted: (status: RunStatus, dir: string) => boolean): string | null {
  const experimentDir = join(resultsDir, experiment);
  if (!existsSync(experimentDir)) return null;
  if (!statSync(experimentDir).isDirectory())
    throw new FgsmError(
      `${experimentDir} is a file, not the folder of ${experiment}'s runs`,
      `move it away, or choose another results folder (--results-dir)`,
    );
  const id = readdirSync(experimentDir)
    .sort()
    .reverse()
    .find((candidate) => {
      const dir = join(experimentDir, candidate);
      const status = readStatus(dir);
      return status !== null && wanted(status, dir);
    });
  return id ?? null;
}

/** The id of the newest run of `experiment` with this config hash that has not completed (running, interrupted, failed). */
export function latestUnfinishedRun(resultsDir: string, experiment: string, configHash: string): string | null {
  return newestRun(resultsDir, experiment, (s) => s.configHash === configHash && s.state !== 'complete');
}

/**
 * Claims a new run folder: mkdir of the final component fails if it exists, so two processes starting in the
 * same second on the same results folder (any file system) get two folders.
 */
function claimRunDir(experimentDir: string, configHash: string): { dir: string; runId: string } {
  makeDir(experimentDir);
  const base = `${timestamp(new Date())}-${configHash.slice(0, 6)}`;
  for (let n = 1; ; n++) {
    const runId = n === 1 ? base : `${base}-${n}`;
    const dir = join(experimentDir, runId);
    try {
      mkdirSync(dir);
      return { dir, runId };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fileSystemError(error, dir);
    }
  }
}

export interface OpenOptions {
  fresh: boolean;
  seed: number;
  identity: RunIdentity;
  /**
   * Minibatches per epoch this invocation's data makes in stage 1 and stage 2: a run begun before runs recorded
   * their identity is checked by what its checkpoint shows instead (without them such a run is not resumed).
   */
  stepsPerEpoch?: Record<1 | 2, number>;
  lockTiming?: LockTiming;
}

/** For a run begun before identities were recorded: its checkpoint's minibatches per epoch must be this data's. */
function legacyConflict(dir: string, options: OpenOptions): string | null {
  const legacy = checkpointStepsPerEpoch(join(dir, 'checkpoints'));
  if (!legacy) return null;
  const expected = options.stepsPerEpoch?.[legacy.stage];
  if (expected === undefined) return 'it was begun before runs recorded their data, and nothing here can check it';
  return legacy.steps === expected
    ? null
    : `its checkpoint made ${legacy.steps} minibatches per epoch in stage ${legacy.stage}, this data makes ${expected} (${options.identity.data.description})`;
}

/**
 * A run whose epochs.csv records trained epochs but whose checkpoints/ holds no checkpoint (copied without it, or
 * deleted) cannot go on: resuming it would train from epoch 1 over its recorded history.
 */
function checkpointMissing(dir: string): string | null {
  if (readCheckpointState(join(dir, 'checkpoints'))) return null;
  let epochs = 0;
  try {
    epochs = readFileSync(join(dir, 'epochs.csv'), 'utf8').trim().split('\n').length - 1;
  } catch {
    return null; // no epoch recorded: nothing to lose
  }
  return epochs > 0
    ? `its epochs.csv records ${epochs} trained epoch${epochs === 1 ? '' : 's'}, but checkpoints/ holds no checkpoint to go on from`
    : null;
}

function sameIdentity(a: RunIdentity, b: RunIdentity): string | null {
  if (a.data.id !== b.data.id) return `it was begun on ${a.data.description}; this invocation reads ${b.data.description}`;
  if (a.backend !== b.backend) return `it was begun on the ${a.backend} backend; this invocation runs ${b.backend}`;
  return null;
}

/** Throws a FgsmError when the run in `dir` cannot resume here: begun on other data or backend, or its checkpoint lost. */
function refuseUnresumable(dir: string, options: OpenOptions): void {
  const recorded = readStatus(dir)?.identity ?? null;
  const conflict = recorded ? sameIdentity(recorded, options.identity) : legacyConflict(dir, options);
  if (conflict) {
    throw new FgsmError(
      `cannot resume ${dir}: ${conflict}, and a run never mixes two`,
      `give it what it was begun on again (e.g. the same --data-dir / FGSM_DATA_DIR${recorded ? `, --backend ${recorded.backend}` : ''}), or pass --fresh to start a separate run`,
    );
  }
  const missing = checkpointMissing(dir);
  if (missing) {
    throw new FgsmError(
      `cannot resume ${dir}: ${missing}`,
      'put its checkpoints/ folder back (from where it trained), or pass --fresh to start a separate run; this one is left as it is',
    );
  }
}

/**
 * The run this invocation writes: the newest unfinished run of the same config (unless `fresh`), or a new one;
 * locked. Resuming a run begun on other data or another backend is refused: a run never mixes the two.
 */
export async function openRun(resultsDir: string, experiment: string, configHash: string, options: OpenOptions): Promise<OpenRun> {
  const experimentDir = join(resultsDir, experiment);
  const unfinished = options.fresh ? null : latestUnfinishedRun(resultsDir, experiment, configHash);
  if (unfinished) {
    const dir = join(experimentDir, unfinished);
    // read-only first: a run that cannot resume is refused untouched (not even its lock's owner file written),
    // unless a live process writes it, which the lock then names
    if (inspectLock(dir, options.lockTiming).state !== 'live') refuseUnresumable(dir, options);
    const lock = await acquireRunLock(dir, options.lockTiming);
    try {
      refuseUnresumable(dir, options); // again, now that no other process writes it
    } catch (error) {
      await lock.release(); // nothing written: the run keeps what it recorded
      throw error;
    }
    recordStart(dir, configHash, experiment, options);
    return { dir, runId: unfinished, resumed: true, lock };
  }
  const { dir, runId } = claimRunDir(experimentDir, configHash);
  const lock = await acquireRunLock(dir, options.lockTiming);
  recordStart(dir, configHash, experiment, options);
  return { dir, runId, resumed: false, lock };
}

function recordStart(dir: string, configHash: string, experiment: string, options: OpenOptions): void {
  const previous = readStatus(dir);
  const now = new Date().toISOString();
  writeJsonAtomic(statusPath(dir), {
    state: 'running',
    configHash,
    startedAt: previous?.startedAt ?? now,
    updatedAt: now,
    experiment,
    seed: options.seed,
    identity: options.identity,
    pid: process.pid,
    host: hostname(),
  } satisfies RunStatus);
}

/** The data a complete run was trained on: its recorded identity, or for older runs, the data in its result.json. */
function dataIdOfCompleteRun(dir: string, status: RunStatus): string | null {
  if (status.identity) return status.identity.data.id;
  try {
    const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as {
      data: Pick<DataProvenance, 'kind' | 'files'> & { counts: Counts };
    };
    return dataIdentity(result.data, result.data.counts).id;
  } catch {
    return null;
  }
}

/** The folder of the newest complete run of `experiment` with this config hash, trained on the data `dataId`, or null. */
export function latestCompleteRun(resultsDir: string, experiment: string, configHash: string, dataId: string): string | null {
  const id = newestRun(
    resultsDir,
    experiment,
    (s, dir) => s.configHash === configHash && s.state === 'complete' && dataIdOfCompleteRun(dir, s) === dataId,
  );
  return id ? join(resultsDir, experiment, id) : null;
}
