import chalk from 'chalk';
import Table from 'cli-table3';
import { relative } from 'node:path';
import type { RunOverview } from '../results/runs.js';
import { describeOwner } from '../results/run-lock.js';
import type { ArrayOverview, TaskOverview } from './executors/slurm-state.js';

const STATE_COLOURS: Record<RunOverview['state'], (text: string) => string> = {
  running: chalk.cyan,
  dead: chalk.red,
  interrupted: chalk.yellow,
  failed: chalk.red,
  complete: chalk.green,
  unknown: chalk.yellow,
};

function ago(date: Date | null, now: number): string {
  if (!date) return '—';
  const seconds = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function stateText(run: RunOverview): string {
  if (run.state === 'running') return `running (${describeOwner(run.lock.owner)})`;
  if (run.state === 'dead') return 'dead: no live process holds it (rerun to resume)';
  if (run.state === 'unknown') return 'running? (begun without run locks: cannot tell)';
  return run.message && run.state !== 'complete' ? `${run.state}: ${run.message}` : run.state;
}

function where(run: RunOverview): string {
  return run.stage === null ? 'not started' : `stage ${run.stage} epoch ${run.epoch}`;
}

function bestText(run: RunOverview): string {
  return run.best ? `${(100 * run.best.error).toFixed(2)}% @ ${run.best.epoch}${run.best.metric === 'validation' ? '' : ' (adv.)'}` : '—';
}

/** One line per run, for `fgsm report`'s list of unfinished runs. */
export function describeRun(run: RunOverview, now = Date.now()): string {
  return `${run.experiment}${run.seed === null ? '' : ` seed ${run.seed}`} ${run.runId}: ${stateText(run)}; ${where(run)}; best ${bestText(run)}; heartbeat ${ago(run.heartbeat, now)}`;
}

/** The `fgsm status` table: one row per run. */
export function renderRunTable(runs: RunOverview[], resultsDir: string, now = Date.now()): string {
  const table = new Table({
    head: ['experiment', 'seed', 'state', 'stage/epoch', 'best so far', 'heartbeat', 'run folder'].map((h) => chalk.bold(h)),
    wordWrap: true,
    style: chalk.level > 0 ? { head: [], border: ['grey'] } : { head: [], border: [] },
    colWidths: [16, 6, 28, 20, 15, 12, 32],
  });
  for (const run of runs) {
    table.push([
      run.experiment,
      run.seed ?? '—',
      STATE_COLOURS[run.state](stateText(run)),
      where(run),
      bestText(run),
      ago(run.heartbeat, now),
      relative(resultsDir, run.dir),
    ]);
  }
  return table.toString();
}

const TASK_COLOURS: Record<TaskOverview['state'], (text: string) => string> = {
  done: chalk.green,
  running: chalk.cyan,
  pending: (text) => text,
  failed: chalk.red,
  interrupted: chalk.yellow,
  lost: chalk.red,
  'not submitted': chalk.yellow,
};

/** The tasks of one Slurm submission: one row per task, with its run's progress where it has one. */
export function renderArray(array: ArrayOverview, resultsDir: string): string {
  const counts = new Map<string, number>();
  for (const { state } of array.tasks) counts.set(state, (counts.get(state) ?? 0) + 1);
  const summary = [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
  const table = new Table({
    head: ['task', 'state', 'stage/epoch', 'best so far', 'job', 'run folder'].map((h) => chalk.bold(h)),
    wordWrap: true,
    style: chalk.level > 0 ? { head: [], border: ['grey'] } : { head: [], border: [] },
    colWidths: [22, 36, 18, 14, 10, 32],
  });
  for (const { task, state, detail, run, jobId } of array.tasks) {
    table.push([
      `${task.index} ${task.label}`,
      TASK_COLOURS[state](state === 'failed' ? 'failed (why: below)' : detail ? `${state}: ${detail}` : state),
      run ? where(run) : '—',
      run ? bestText(run) : '—',
      jobId ?? '—',
      run ? relative(resultsDir, run.dir) : '—',
    ]);
  }
  const jobs = array.jobIds.length ? `job array ${array.jobIds.join(', ')}` : 'not submitted';
  const queue = array.queueKnown ? '' : ' (squeue unavailable here: queued tasks cannot be told apart)';
  // a reason is a sentence or two: whole lines under the table, not wrapped into a cell
  const why = array.tasks.filter((t) => t.state === 'failed').map((t) => chalk.red(`task ${t.task.index} (${t.task.label}) failed: ${t.detail}`));
  return [`Slurm ${relative(resultsDir, array.dir)} (${jobs}): ${summary}${queue}`, table.toString(), ...why].join('\n');
}
