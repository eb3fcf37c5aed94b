import { existsSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';

/**
 * One process at a time per run folder, on one machine or many sharing a (network) file system. The lock is
 * proper-lockfile's: `run.lock/` made with mkdir (atomic on NFS too), kept alive by touching its mtime every
 * `updateMs` (the heartbeat), and judged dead once the heartbeat is older than `staleMs`. On this host a lock
 * whose owner's pid is gone is dead at once, and taken over as soon as its heartbeat has missed two beats. Who holds it
 * is in `lock-owner.json` beside it (not inside: proper-lockfile removes the lock with rmdir).
 */
export interface LockTiming {
  staleMs: number;
  updateMs: number;
}

export const LOCK_TIMING: LockTiming = { staleMs: 30_000, updateMs: 5_000 };

export interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

export interface LockInspection {
  /** live: held and beating; dead: held by a process that stopped beating (or is gone); free: no lock. */
  state: 'live' | 'dead' | 'free';
  owner: LockOwner | null;
  /** The last heartbeat (the lock's mtime), or null when there is no lock. */
  heartbeat: Date | null;
}

export interface RunLock {
  readonly dir: string;
  /** Throws if another process has taken the lock over: nothing may be written into the folder then. */
  assertHeld(): void;
  release(): Promise<void>;
}

const lockPath = (dir: string) => join(dir, 'run.lock');
const ownerPath = (dir: string) => join(dir, 'lock-owner.json');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

function readOwner(dir: string): LockOwner | null {
  try {
    return JSON.parse(readFileSync(ownerPath(dir), 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

/** Whether this run folder is held by a live process, as any process on any host can tell from the files. */
export function inspectLock(dir: string, timing: LockTiming = LOCK_TIMING, now = Date.now()): LockInspection {
  const owner = readOwner(dir);
  let heartbeat: Date;
  try {
    heartbeat = statSync(lockPath(dir)).mtime;
  } catch {
    return { state: 'free', owner, heartbeat: null };
  }
  const ownerGone = owner !== null && owner.host === hostname() && !pidAlive(owner.pid);
  return { state: ownerGone || now - heartbeat.getTime() > timing.staleMs ? 'dead' : 'live', owner, heartbeat };
}

/** Who holds (or last held) a lock: "pid N on host, since …". */
export function describeOwner(owner: LockOwner | null): string {
  return owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.since}` : 'an unknown process';
}

function describeLock(inspection: LockInspection, now = Date.now()): string {
  const beat = inspection.heartbeat ? `, last heartbeat ${Math.round((now - inspection.heartbeat.getTime()) / 1000)} s ago` : '';
  return `${describeOwner(inspection.owner)}${beat}`;
}

interface WorkerReply {
  kind: 'locked' | 'busy' | 'failed' | 'lost' | 'released';
  message?: string;
}

function startHolder(dir: string, timing: LockTiming, lost: SharedArrayBuffer): Promise<{ worker: Worker; reply: WorkerReply }> {
  const worker = new Worker(new URL('./run-lock-worker.js', import.meta.url), {
    workerData: { target: dir, lockfilePath: lockPath(dir), staleMs: timing.staleMs, updateMs: timing.updateMs, lost },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (reply: WorkerReply) => resolve({ worker, reply }));
    worker.once('error', reject);
  });
}

/**
 * Takes the run folder's lock, or throws a FgsmError naming the live process that holds it. A lock whose owner
 * died on this host is waited for until it has missed two heartbeats (at most 2 × updateMs), then taken over.
 */
export async function acquireRunLock(dir: string, timing: LockTiming = LOCK_TIMING): Promise<RunLock> {
  let inspection = inspectLock(dir, timing);
  // the owner file may still name the previous holder while a new one is between taking the lock and naming
  // itself: a gone owner's lock is taken over only once its heartbeat has also missed two beats
  while (inspection.state === 'dead' && Date.now() - inspection.heartbeat!.getTime() <= 2 * timing.updateMs) {
    await sleep(250);
    inspection = inspectLock(dir, timing);
  }
  // proper-lockfile takes over a lock only by its own staleness rule: age the dead one past it
  if (inspection.state === 'dead' && existsSync(lockPath(dir))) utimesSync(lockPath(dir), new Date(0), new Date(0));

  const lost = new SharedArrayBuffer(4);
  const { worker, reply } = await startHolder(dir, timing, lost);
  if (reply.kind !== 'locked') {
    await worker.terminate();
    if (reply.kind === 'busy') {
      throw new FgsmError(
        `${dir} is in use by ${describeLock(inspectLock(dir, timing))}`,
        'wait for that run to finish (`fgsm status` shows it), stop it, or pass --fresh to start a separate run',
      );
    }
    throw new FgsmError(`${dir}: cannot take the run folder's lock: ${reply.message}`);
  }
  worker.unref(); // the holder must not keep the process alive after the main thread is done
  writeJsonAtomic(ownerPath(dir), { pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies LockOwner);
  const flag = new Int32Array(lost);
  let released = false;
  // process.exit (a second Ctrl-C) stops the holder thread before it lets go: let go here, unless another took over
  const letGoOnExit = () => {
    if (Atomics.load(flag, 0) === 0) rmSync(lockPath(dir), { recursive: true, force: true });
  };
  process.on('exit', letGoOnExit);
  return {
    dir,
    assertHeld() {
      if (Atomics.load(flag, 0) !== 0) {
        throw new FgsmError(
          `${dir}: this process lost the run folder's lock: another process took the run over after this one's heartbeat stopped for ${timing.staleMs / 1000} s (was it suspended?); stopping without writing`,
          '`fgsm status` shows who holds the run now',
        );
      }
    },
    async release() {
      if (released) return;
      released = true;
      process.off('exit', letGoOnExit);
      const done = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.ref(); // until it has let go
      worker.postMessage('release');
      await done;
    },
  };
}
