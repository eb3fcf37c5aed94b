import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import type { BackendRequest } from '../../backend/select.js';
import { makeDir, writeFileAtomic, writeJsonAtomic } from '../../core/atomic.js';
import { FgsmError } from '../../core/errors.js';
import { listRuns } from '../../results/runs.js';
import { loadForRun } from '../../pipeline/experiment.js';
import type { Executor, RunTask } from './executor.js';
import { batchScript, type SlurmSettings } from './slurm-script.js';
import { jobNameOf, needsSubmitting, queuedTasks, taskOverviews, type TaskOverview } from './slurm-state.js';
import {
  logPath,
  readSubmissions,
  recordSubmission,
  scriptPath,
  submissionDir,
  taskListId,
  taskListPath,
  type TaskList,
} from './slurm-submission.js';

export interface SlurmRun {
  resultsDir: string;
  backend?: BackendRequest;
  threads?: number;
  dataDir?: string;
  settings: SlurmSettings;
  /** Print the batch script and what would be submitted; write and submit nothing. */
  dryRun: boolean;
  /** The fgsm the nodes run: this node binary and this installation's bin/fgsm.js. */
  fgsm: { node: string; bin: string };
  /** Where the executor says what it did. */
  say: (line: string) => void;
}

/** The task list of this invocation: every task with its config loaded here, so a bad config fails before sbatch. */
function taskListFor(tasks: readonly RunTask[], run: SlurmRun): TaskList {
  const resultsDir = resolve(run.resultsDir);
  const body = {
    resultsDir,
    ...(run.backend ? { backend: run.backend } : {}),
    ...(run.threads ? { threads: run.threads } : {}),
    ...(run.dataDir ? { dataDir: resolve(run.dataDir) } : {}),
    tasks: tasks.map((task, index) => {
      const loaded = loadForRun(task.file, { backend: run.backend, overrides: task.overrides });
      return { ...task, file: resolve(task.file), index, experiment: loaded.config.name, configHash: loaded.configHash };
    }),
  };
  return { format: 'fgsm-slurm-tasks/1', id: taskListId(body), ...body };
}

/** sbatch's --array value for these indices, e.g. 0-3 or 1,4. */
function arraySpec(indices: readonly number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < indices.length;) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++;
    ranges.push(i === j ? `${indices[i]}` : `${indices[i]}-${indices[j]}`);
    i = j + 1;
  }
  return ranges.join(',');
}

function describePlan(overviews: readonly TaskOverview[]): string[] {
  return overviews.map(({ task, state, jobId }) => {
    const action = needsSubmitting({ state } as TaskOverview) ? `submit (${state})` : `leave alone (${state}${jobId ? `, job ${jobId}` : ''})`;
    return `  [${task.index}] ${task.label}: ${action}`;
  });
}

/**
 * Runs the task list as one Slurm job array: writes <results>/slurm/<id>/ (tasks.json, job.sh) and submits the
 * tasks that are neither done nor queued nor running — on a re-run of the same command, only what is missing,
 * failed, interrupted or lost. Returns once sbatch has accepted the array; `fgsm status` follows it.
 */
export function slurmExecutor(run: SlurmRun): Executor {
  return {
    async execute(tasks: readonly RunTask[]) {
      const list = taskListFor(tasks, run);
      const dir = submissionDir(list.resultsDir, list.id);
      const jobName = jobNameOf(list);
      const overviews = taskOverviews(dir, list, readSubmissions(dir), listRuns(list.resultsDir), queuedTasks(jobName));
      const indices = overviews.filter(needsSubmitting).map((overview) => overview.task.index);
      const script = batchScript(dir, jobName, list.tasks.length, run.settings, run.fgsm);
      const command = ['sbatch', '--parsable', `--array=${arraySpec(indices)}`, scriptPath(dir)];
      if (run.dryRun) {
        process.stdout.write(script);
        run.say(`${dir}: ${list.tasks.length} task(s):\n${describePlan(overviews).join('\n')}`);
        run.say(indices.length ? `would run: ${command.join(' ')}` : 'nothing to submit');
        return;
      }
      writeJsonAtomic(taskListPath(dir), list);
      writeFileAtomic(scriptPath(dir), script);
      makeDir(dirname(logPath(dir, 0))); // Slurm does not make the folder of --output: the task would fail to launch
      run.say(`${dir}: ${list.tasks.length} task(s):\n${describePlan(overviews).join('\n')}`);
      if (indices.length === 0) {
        run.say('nothing to submit: every task is done, queued or running (`fgsm status` follows them)');
        return;
      }
      const out = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8' });
      if (out.error) {
        throw new FgsmError(`cannot run sbatch: ${out.error.message}`, 'run fgsm on a Slurm login node, or pass --dry-run to see the batch script');
      }
      if (out.status !== 0)
        throw new FgsmError(`sbatch refused the job array (exit status ${out.status}): ${out.stderr.trim()}`, `the script is ${scriptPath(dir)}`);
      const jobId = out.stdout.trim().split(';')[0]!;
      recordSubmission(dir, { jobId, indices, at: new Date().toISOString() });
      run.say(`submitted job array ${jobId} (tasks ${arraySpec(indices)}); follow it with: fgsm status ${run.resultsDir}`);
    },
  };
}
