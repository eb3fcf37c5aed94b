import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { BackendRequest } from '../../backend/select.js';
import { writeJsonAtomic } from '../../core/atomic.js';
import { FgsmError } from '../../core/errors.js';
import type { RunTask } from './executor.js';

/**
 * A Slurm submission folder, <results>/slurm/<id>/: the task list (tasks.json; array index i runs tasks[i]), the
 * batch script, every sbatch of it (submissions.json), one log per task (logs/task-<i>.log, appended across
 * requeues) and what each task last said of itself (tasks/<i>.json). The id is a hash of the task list, so the
 * same `fgsm run` finds the same folder again and resubmits into it.
 */
export interface SlurmTask extends RunTask {
  /** Absolute path of the config file: the task may start in any folder. */
  file: string;
  index: number;
  /** The experiment's name and resolved config hash, as the submitting process loaded them: its run folder's keys. */
  experiment: string;
  configHash: string;
}

export interface TaskList {
  format: 'fgsm-slurm-tasks/1';
  id: string;
  /** Absolute. */
  resultsDir: string;
  backend?: BackendRequest;
  threads?: number;
  dataDir?: string;
  tasks: SlurmTask[];
}

export interface Submission {
  jobId: string;
  indices: number[];
  at: string;
}

/** What a task last wrote of itself; `failed` carries the reason a re-run cannot fix. */
export interface TaskOutcome {
  state: 'running' | 'interrupted' | 'failed' | 'complete';
  jobId: string | null;
  restarts: number;
  host: string;
  at: string;
  exitStatus?: number;
  message?: string;
}

export const submissionDir = (resultsDir: string, id: string) => join(resultsDir, 'slurm', id);
export const taskListPath = (dir: string) => join(dir, 'tasks.json');
export const scriptPath = (dir: string) => join(dir, 'job.sh');
export const logPath = (dir: string, index: number | '%a') => join(dir, 'logs', `task-${index}.log`);
const submissionsPath = (dir: string) => join(dir, 'submissions.json');
const outcomePath = (dir: string, index: number) => join(dir, 'tasks', `${index}.json`);

export function taskListId(list: Omit<TaskList, 'format' | 'id'>): string {
  return createHash('sha256').update(JSON.stringify(list)).digest('hex').slice(0, 12);
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export function readTaskList(path: string): TaskList {
  const list = readJson<TaskList>(path);
  if (list?.format !== 'fgsm-slurm-tasks/1') throw new FgsmError(`${path}: not an fgsm task list`, 'fgsm run --executor slurm writes one');
  return list;
}

/** Every submission folder under `resultsDir`, with its task list and sbatch history. */
export function listSubmissions(resultsDir: string): { dir: string; list: TaskList; submissions: Submission[] }[] {
  const root = join(resultsDir, 'slurm');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((id) => join(root, id))
    .filter((dir) => existsSync(taskListPath(dir)))
    .map((dir) => ({ dir, list: readTaskList(taskListPath(dir)), submissions: readSubmissions(dir) }));
}

export function readSubmissions(dir: string): Submission[] {
  return readJson<Submission[]>(submissionsPath(dir)) ?? [];
}

export function recordSubmission(dir: string, submission: Submission): void {
  writeJsonAtomic(submissionsPath(dir), [...readSubmissions(dir), submission]);
}

export function readOutcome(dir: string, index: number): TaskOutcome | null {
  return readJson<TaskOutcome>(outcomePath(dir, index));
}

export function writeOutcome(dir: string, index: number, outcome: Omit<TaskOutcome, 'jobId' | 'restarts' | 'host' | 'at'>): void {
  const env = process.env;
  const jobId = env.SLURM_ARRAY_JOB_ID ? `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}` : (env.SLURM_JOB_ID ?? null);
  writeJsonAtomic(outcomePath(dir, index), {
    ...outcome,
    jobId,
    restarts: Number(env.SLURM_RESTART_COUNT ?? 0),
    host: hostname(),
    at: new Date().toISOString(),
  } satisfies TaskOutcome);
}
