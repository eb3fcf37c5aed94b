import lockfile from 'proper-lockfile';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * Holds a run folder's lock (proper-lockfile: an mkdir-made directory whose mtime is the heartbeat) on its own
 * event loop, so that a training epoch that keeps the main thread busy for minutes cannot starve the heartbeat
 * and let the lock go stale under a live run. Index 0 of the shared flag becomes 1 when the lock is lost
 * (another process judged it stale and took it); the main thread reads it before every write.
 */
interface LockRequest {
  target: string;
  lockfilePath: string;
  staleMs: number;
  updateMs: number;
  lost: SharedArrayBuffer;
}

const request = workerData as LockRequest;
const lost = new Int32Array(request.lost);
const port = parentPort!;

try {
  const release = await lockfile.lock(request.target, {
    lockfilePath: request.lockfilePath,
    realpath: false,
    stale: request.staleMs,
    update: request.updateMs,
    retries: 0,
    onCompromised: (error) => {
      Atomics.store(lost, 0, 1);
      port.postMessage({ kind: 'lost', message: error.message });
    },
  });
  port.postMessage({ kind: 'locked' });
  port.once('message', async () => {
    try {
      if (Atomics.load(lost, 0) === 0) await release();
      port.postMessage({ kind: 'released' });
    } catch (error) {
      port.postMessage({ kind: 'released', message: (error as Error).message });
    }
    port.close();
  });
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  port.postMessage({ kind: code === 'ELOCKED' ? 'busy' : 'failed', message: (error as Error).message, code });
  port.close();
}
