import { spawnSync } from 'node:child_process';
import type { RunOverview } from '../../results/runs.js';
import { listSubmissions, readOutcome, type SlurmTask, type Submission, type TaskList, type TaskOutcome } from './slurm-submission.js';

/** An array element as squeue shows it: RUNNING, PENDING, COMPLETING, …, and why it waits. */
export interface QueuedTask {
  jobId: string;
  state: string;
  reason: string;
}

/** The job name of a submission folder's array: what squeue is asked about. */
export const jobNameOf = (list: Pick<TaskList, 'id'>) => `fgsm-${list.id}`;

/**
 * The elements of the array(s) named `jobName` still in Slurm's queue, by array index; null where squeue cannot
 * be asked (no Slurm here). Without slurmdbd there is no sacct: a task that left the queue is judged by what it
 * wrote (tasks/<i>.json and its run folder).
 */
export function queuedTasks(jobName: string): Map<number, QueuedTask> | null {
  const out = spawnSync('squeue', ['--noheader', '--array', `--name=${jobName}`, '--format=%F|%K|%T|%r'], { encoding: 'utf8' });
  if (out.error || out.status !== 0) return null;
  const queued = new Map<number, QueuedTask>();
  for (const line of out.stdout.split('\n')) {
    const [arrayJob, index, state, reason] = line.trim().split('|');
    if (!arrayJob || !index || !/^\d+$/.test(index)) continue;
    queued.set(Number(index), { jobId: `${arrayJob}_${index}`, state: state!, reason: reason ?? '' });
  }
  return queued;
}

export interface TaskOverview {
  task: SlurmTask;
  /**
   * done: its run is complete; running / pending: in Slurm's queue (or a live process holds its run folder);
   * failed: it stopped for a reason a re-run cannot fix (why in `detail`); interrupted: stopped at a checkpoint
   * and not requeued; lost: it left the queue without a word (killed at its time limit, a node failure);
   * not submitted: never ran. `fgsm run` resubmits the last four.
   */
  state: 'done' | 'running' | 'pending' | 'failed' | 'interrupted' | 'lost' | 'not submitted';
  detail: string | null;
  run: RunOverview | null;
  jobId: string | null;
  outcome: TaskOutcome | null;
}

/** The run folder of a task: a complete one if any, else the newest. */
function runOf(task: SlurmTask, runs: readonly RunOverview[]): RunOverview | null {
  const mine = runs.filter((run) => run.experiment === task.experiment && run.configHash === task.configHash);
  return mine.find((run) => run.state === 'complete') ?? mine.at(-1) ?? null;
}

const RUNNING_STATES = new Set(['RUNNING', 'COMPLETING', 'CONFIGURING', 'STAGE_OUT', 'SUSPENDED', 'STOPPED', 'SIGNALING']);

/** Where each task of a submission stands, from its run folder, Slurm's queue (when known) and its own last word. */
export function taskOverviews(
  dir: string,
  list: TaskList,
  submissions: readonly Submission[],
  runs: readonly RunOverview[],
  queued: Map<number, QueuedTask> | null,
): TaskOverview[] {
  return list.tasks.map((task): TaskOverview => {
    const run = runOf(task, runs);
    const inQueue = queued?.get(task.index) ?? null;
    const outcome = readOutcome(dir, task.index);
    const jobId = inQueue?.jobId ?? outcome?.jobId ?? null;
    const overview = (state: TaskOverview['state'], detail: string | null = null): TaskOverview => ({ task, state, detail, run, jobId, outcome });
    if (run?.state === 'complete') return overview('done');
    if (inQueue) {
      if (RUNNING_STATES.has(inQueue.state)) return overview('running', inQueue.state === 'RUNNING' ? null : inQueue.state.toLowerCase());
      const restarts = outcome?.state === 'interrupted' ? `requeued after a checkpoint (restart ${outcome.restarts + 1})` : null;
      return overview('pending', [restarts, inQueue.reason && inQueue.reason !== 'None' ? inQueue.reason : null].filter(Boolean).join('; ') || null);
    }
    if (run?.state === 'running') return overview('running', 'outside this array');
    if (outcome?.state === 'failed') return overview('failed', outcome.message ?? `exit status ${outcome.exitStatus}`);
    if (run?.state === 'failed') return overview('failed', run.message);
    if (outcome?.state === 'interrupted' || run) return overview('interrupted');
    if (outcome?.state === 'running')
      return overview('lost', queued ? 'left the queue while running: time limit or node failure?' : 'squeue unavailable');
    const submitted = submissions.filter((s) => s.indices.includes(task.index)).at(-1);
    if (submitted) return overview('lost', queued ? `job ${submitted.jobId} left the queue before fgsm started (see its log)` : 'squeue unavailable');
    return overview('not submitted');
  });
}

/** The tasks `fgsm run` submits again: all but those done or still queued or running. */
export const needsSubmitting = (overview: TaskOverview): boolean => !['done', 'running', 'pending'].includes(overview.state);

export interface ArrayOverview {
  dir: string;
  jobIds: string[];
  /** False where squeue could not be asked: pending tasks then show as not submitted, running ones by their lock. */
  queueKnown: boolean;
  tasks: TaskOverview[];
}

/** Every Slurm submission under `resultsDir`, each task with where it stands. */
export function arrayOverviews(resultsDir: string, runs: readonly RunOverview[]): ArrayOverview[] {
  return listSubmissions(resultsDir).map(({ dir, list, submissions }) => {
    const queued = queuedTasks(jobNameOf(list));
    return { dir, jobIds: submissions.map((s) => s.jobId), queueKnown: queued !== null, tasks: taskOverviews(dir, list, submissions, runs, queued) };
  });
}
