import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDir, writeJsonAtomic } from '../core/atomic.js';

/**
 * One folder per run: <results>/<experiment>/<run id>/. `status.json` says whether the run is running,
 * interrupted, failed or complete; a later `fgsm run` of the same resolved config resumes the newest
 * unfinished run instead of starting again.
 */
export interface RunStatus {
  state: 'running' | 'interrupted' | 'failed' | 'complete';
  configHash: string;
  startedAt: string;
  updatedAt: string;
  message?: string;
}

export interface RunDir {
  dir: string;
  runId: string;
  experimentDir: string;
  resumed: boolean;
}

const statusPath = (dir: string) => join(dir, 'status.json');

export function readStatus(dir: string): RunStatus | null {
  try {
    return JSON.parse(readFileSync(statusPath(dir), 'utf8')) as RunStatus;
  } catch {
    return null;
  }
}

export function writeStatus(dir: string, state: RunStatus['state'], message?: string): void {
  const previous = readStatus(dir);
  const now = new Date().toISOString();
  writeJsonAtomic(statusPath(dir), {
    state,
    configHash: previous?.configHash ?? '',
    startedAt: previous?.startedAt ?? now,
    updatedAt: now,
    ...(message ? { message } : {}),
  });
}

function timestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/** The id of the newest run of `experiment` with this config hash whose state `wanted` accepts, or null. */
function newestRun(resultsDir: string, experiment: string, configHash: string, wanted: (state: RunStatus['state']) => boolean): string | null {
  const experimentDir = join(resultsDir, experiment);
  if (!existsSync(experimentDir)) return null;
  const id = readdirSync(experimentDir)
    .sort()
    .reverse()
    .find((candidate) => {
      const status = readStatus(join(experimentDir, candidate));
      return status !== null && status.configHash === configHash && wanted(status.state);
    });
  return id ?? null;
}

/** The id of the newest run of `experiment` with this config hash that has not completed (running, interrupted, failed). */
export function latestUnfinishedRun(resultsDir: string, experiment: string, configHash: string): string | null {
  return newestRun(resultsDir, experiment, configHash, (state) => state !== 'complete');
}

export function openRunDir(resultsDir: string, experiment: string, configHash: string, options: { fresh: boolean }): RunDir {
  const experimentDir = join(resultsDir, experiment);
  const unfinished = options.fresh ? null : latestUnfinishedRun(resultsDir, experiment, configHash);
  if (unfinished) return { dir: join(experimentDir, unfinished), runId: unfinished, experimentDir, resumed: true };
  let runId = `${timestamp(new Date())}-${configHash.slice(0, 6)}`;
  for (let n = 2; existsSync(join(experimentDir, runId)); n++) runId = `${timestamp(new Date())}-${configHash.slice(0, 6)}-${n}`;
  const dir = join(experimentDir, runId);
  makeDir(dir);
  const now = new Date().toISOString();
  writeJsonAtomic(statusPath(dir), { state: 'running', configHash, startedAt: now, updatedAt: now } satisfies RunStatus);
  return { dir, runId, experimentDir, resumed: false };
}

/** The folder of the newest complete run of `experiment` with this config hash, or null. */
export function latestCompleteRun(resultsDir: string, experiment: string, configHash: string): string | null {
  const id = newestRun(resultsDir, experiment, configHash, (state) => state === 'complete');
  return id ? join(resultsDir, experiment, id) : null;
}
