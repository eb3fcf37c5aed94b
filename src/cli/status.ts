import chalk from 'chalk';
import Table from 'cli-table3';
import { relative } from 'node:path';
import type { RunOverview } from '../results/runs.js';
import { describeOwner } from '../results/run-lock.js';

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
  if (run.state === 'running') return `running (${describeOwner(run.lock).replace(/, last heartbeat.*$/, '')})`;
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
