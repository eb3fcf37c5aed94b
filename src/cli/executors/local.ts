import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { isDawnDiagnostic } from '../../backend/doctor.js';
import { FgsmError, InterruptedError } from '../../core/errors.js';
import type { Executor, RunTask } from './executor.js';

/** One run of `fgsm run`, as its own process: the arguments after `fgsm`, and a label for its output lines. */
export interface Job {
  label: string;
  args: string[];
}

export interface JobOutcome {
  label: string;
  /** The exit status; 130 for a run interrupted by a signal (its checkpoint is kept). */
  status: number;
}

/**
 * Copies a child's output line by line, each line prefixed with its run's label, so parallel runs stay legible;
 * Dawn's own warnings on creating an adapter are left out.
 */
function relay(from: Readable, to: NodeJS.WritableStream, label: string): Promise<void> {
  const lines = createInterface({ input: from, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!isDawnDiagnostic(line)) to.write(`[${label}] ${line}\n`);
  });
  return new Promise((resolve) => lines.on('close', resolve));
}

/**
 * Runs `jobs` as separate `fgsm` processes, at most `parallel` at a time, in order. Independent runs (seeds,
 * configs) use several cores this way without sharing a tfjs engine. A signal passed to `interrupt` reaches every
 * running child (each stops within a few minibatches, keeping its finished epochs), and no further job starts. When
 * this process exits before its children (a second Ctrl-C quits at once), it passes them one more SIGINT: a child
 * that had one already quits at once too, one that had none stops as after the first.
 */
async function runJobs(bin: string, jobs: readonly Job[], parallel: number, interrupt: AbortSignal): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = new Array(jobs.length);
  const running = new Set<ChildProcess>();
  const interruptAll = () => {
    for (const child of running) child.kill('SIGINT');
  };
  interrupt.addEventListener('abort', interruptAll);
  process.on('exit', interruptAll);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && !interrupt.aborted) {
      const index = next++;
      const { label, args } = jobs[index]!;
      // its own process group: a terminal's Ctrl-C reaches the child once, through `interrupt`, not twice
      const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      running.add(child);
      const copied = Promise.all([relay(child.stdout, process.stdout, label), relay(child.stderr, process.stderr, label)]);
      const status = await new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 130 : 1))));
      await copied;
      running.delete(child);
      outcomes[index] = { label, status };
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
  } finally {
    process.off('exit', interruptAll);
  }
  return outcomes.filter((outcome) => outcome !== undefined);
}

/**
 * Runs each task as its own `fgsm run` process (`bin`, with `flags(task)` after the config file), `parallel` at a
 * time; `interrupt` stops them all after their checkpoints.
 */
export function localExecutor(bin: string, parallel: number, flags: (task: RunTask) => string[], interrupt: AbortSignal): Executor {
  return {
    async execute(tasks: readonly RunTask[]) {
      const jobs = tasks.map((task) => ({ label: task.label, args: ['run', task.file, ...flags(task)] }));
      const failed = (await runJobs(bin, jobs, parallel, interrupt)).filter((job) => job.status !== 0);
      if (interrupt.aborted) throw new InterruptedError('interrupted; rerun the same command to resume the unfinished runs');
      if (failed.length) {
        throw new FgsmError(
          `${failed.length} of ${jobs.length} runs failed: ${failed.map((job) => `${job.label} (exit status ${job.status})`).join(', ')}`,
          'their messages are above, each line prefixed with its run',
        );
      }
    },
  };
}
