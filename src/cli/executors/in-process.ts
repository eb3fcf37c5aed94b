import chalk from 'chalk';
import { compareClaims } from '../../report/compare.js';
import { renderTerminal } from '../../report/render.js';
import { runExperiment, type RunOptions } from '../../pipeline/experiment.js';
import type { Executor, RunTask } from './executor.js';

/** Runs the tasks one after another in this process, printing each one's table against the paper. */
export function inProcessExecutor(options: RunOptions): Executor {
  return {
    async execute(tasks: readonly RunTask[]) {
      for (const { file, overrides } of tasks) {
        const outcome = await runExperiment(file, { ...options, overrides });
        const rows = compareClaims(outcome.result);
        console.log(`\n${chalk.bold(outcome.result.experiment)} → ${outcome.dir}`);
        if (outcome.result.data.warning) console.log(chalk.red.bold(outcome.result.data.warning));
        console.log(rows.length ? renderTerminal(rows) : 'this experiment names no claims of the paper');
      }
    },
  };
}
