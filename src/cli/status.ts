import chalk from 'chalk';
import { join, relative } from 'node:path';
import type { RunOverview } from '../results/runs.js';
import { fittedTable, wrapText } from '../report/table.js';
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
  if (!run.message || run.state === 'complete') return run.state;
  // the message of an interruption says "interrupted after …" itself
  return run.message.startsWith(run.state) ? run.message : `${run.state}: ${run.message}`;
}

function where(run: RunOverview): string {
  if (run.stage !== null) return `stage ${run.stage} epoch ${run.epoch}`;
  // an experiment over other runs (transfer, agreement, ensemble) trains nothing of its own
  return run.state === 'complete' ? '—' : 'not started';
}

function bestText(run: RunOverview): string {
  return run.best ? `${(100 * run.best.error).toFixed(2)}% @ ${run.best.epoch}${run.best.metric === 'validation' ? '' : ' (adv.)'}` : '—';
}

/** The run's id where its folder is <results>/<experiment>/<id>, as `fgsm run` makes it; else its folder. */
function runName(run: RunOverview, resultsDir: string): string {
  const folder = relative(resultsDir, run.dir);
  return folder === join(run.experiment, run.runId) ? run.runId : folder;
}

/** One line per run, for `fgsm report`'s list of unfinished runs. */
export function describeRun(run: RunOverview, now = Date.now()): string {
  return `${run.experiment}${run.seed === null ? '' : ` seed ${run.seed}`} ${run.runId}: ${stateText(run)}; ${where(run)}; best ${bestText(run)}; heartbeat ${ago(run.heartbeat, now)}`;
}

/** The `fgsm status` table for a terminal `width` columns wide: one row per run. */
export function renderRunTable(runs: RunOverview[], resultsDir: string, width = Infinity, now = Date.now()): string {
  return fittedTable(
    ['experiment', 'seed', 'state', 'stage/epoch', 'best so far', 'heartbeat', 'run'],
    runs.map((run) => [
      run.experiment,
      run.seed === null ? '—' : String(run.seed),
      { text: stateText(run), colour: STATE_COLOURS[run.state] },
      where(run),
      bestText(run),
      ago(run.heartbeat, now),
      runName(run, resultsDir),
    ]),
    { width, unbroken: [6] },
  );
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
export function renderArray(array: ArrayOverview, resultsDir: string, width = Infinity): string {
  const counts = new Map<string, number>();
  for (const { state } of array.tasks) counts.set(state, (counts.get(state) ?? 0) + 1);
  const summary = [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
  const table = fittedTable(
    ['task', 'state', 'stage/epoch', 'best so far', 'job', 'run folder'],
    array.tasks.map(({ task, state, detail, run, jobId }) => [
      `${task.index} ${task.label}`,
      { text: state === 'failed' ? 'failed (why: below)' : detail ? `${state}: ${detail}` : state, colour: TASK_COLOURS[state] },
      run ? where(run) : '—',
      run ? bestText(run) : '—',
      jobId ?? '—',
      run ? relative(resultsDir, run.dir) : '—',
    ]),
    { width },
  );
  const jobs = array.jobIds.length ? `job array ${array.jobIds.join(', ')}` : 'not submitted';
  const queue = array.queueKnown ? '' : ' (squeue unavailable here: queued tasks cannot be told apart)';
  // a reason is a sentence or two: whole lines under the table, not wrapped into a cell
  const why = array.tasks
    .filter((t) => t.state === 'failed')
    .map((t) => chalk.red(wrapText(`task ${t.task.index} (${t.task.label}) failed: ${t.detail}`, width)));
  return [wrapText(`Slurm ${relative(resultsDir, array.dir)} (${jobs}): ${summary}${queue}`, width), table, ...why].join('\n');
}
