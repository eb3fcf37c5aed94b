import { FgsmError, InterruptedError } from '../../core/errors.js';
import type { RunOptions } from '../../pipeline/experiment.js';
import { dirname } from 'node:path';
import { inProcessExecutor } from './in-process.js';
import { readTaskList, writeOutcome } from './slurm-submission.js';

/**
 * One array task (`fgsm task tasks.json i`, what job.sh runs): task i of the list, in this process, resuming its
 * run if an earlier attempt left a checkpoint. It records how it ended in tasks/<i>.json — interrupted (exit 130,
 * requeued by job.sh), failed with the reason (2: a user error; 1: a bug), or complete — and rethrows, so the
 * exit status tells job.sh what to do.
 */
export async function runArrayTask(
  listFile: string,
  indexText: string | undefined,
  options: Pick<RunOptions, 'progress' | 'signal'> & { threads: number },
): Promise<void> {
  const list = readTaskList(listFile);
  const index = Number(indexText);
  const task = list.tasks[index];
  if (!task) {
    throw new FgsmError(
      `${listFile}: no task ${indexText ?? '(none given)'}; it has tasks 0 to ${list.tasks.length - 1}`,
      'give the index, or run inside a Slurm array task (SLURM_ARRAY_TASK_ID)',
    );
  }
  const dir = dirname(listFile);
  writeOutcome(dir, index, { state: 'running' });
  const runOptions: RunOptions = {
    ...options,
    backend: list.backend,
    threads: list.threads ?? options.threads,
    dataDir: list.dataDir,
    overrides: task.overrides,
    resultsDir: list.resultsDir,
    fresh: false,
  };
  try {
    await inProcessExecutor(runOptions, 'never').execute([task]);
    writeOutcome(dir, index, { state: 'complete', exitStatus: 0 });
  } catch (error) {
    if (error instanceof InterruptedError) writeOutcome(dir, index, { state: 'interrupted', exitStatus: 130, message: error.message });
    else {
      const user = error instanceof FgsmError;
      const message = user ? `${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}` : `bug: ${(error as Error).message ?? String(error)}`;
      writeOutcome(dir, index, { state: 'failed', exitStatus: user ? 2 : 1, message });
    }
    throw error;
  }
}
