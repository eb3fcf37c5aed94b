import chalk from 'chalk';
import { compareClaims } from '../../report/compare.js';
import { renderTerminal } from '../../report/render.js';
import { wrapText } from '../../report/table.js';
import { runSeeds, runExperiment, type RunOptions, type RunOutcome, type StackSeeds } from '../../pipeline/experiment.js';
import type { Executor, RunTask } from './executor.js';

/**
 * Runs the tasks one after another in this process, printing each one's table against the paper (`width`
 * columns wide at most). The seeds of one experiment go together to runSeeds, which trains them as one stacked
 * network where `stackSeeds` says so.
 */
export function inProcessExecutor(options: RunOptions, stackSeeds: StackSeeds, width = Infinity): Executor {
  return {
    async execute(tasks: readonly RunTask[]) {
      for (let i = 0; i < tasks.length;) {
        const { file, seed } = tasks[i]!;
        const seeds: number[] = [];
        while (seed !== null && tasks[i + seeds.length]?.file === file && tasks[i + seeds.length]?.seed != null)
          seeds.push(tasks[i + seeds.length]!.seed!);
        const outcomes =
          seeds.length > 1
            ? await runSeeds(file, seeds, stackSeeds, options)
            : [await runExperiment(file, { ...options, overrides: tasks[i]!.overrides })];
        for (const outcome of outcomes) print(outcome, width);
        i += Math.max(1, seeds.length);
      }
    },
  };
}

function print(outcome: RunOutcome, width: number): void {
  const rows = compareClaims(outcome.result);
  console.log(`\n${chalk.bold(outcome.result.experiment)} → ${outcome.dir}`);
  if (outcome.result.data.warning) console.log(chalk.red.bold(wrapText(outcome.result.data.warning, width)));
  console.log(rows.length ? renderTerminal(rows, width) : 'this experiment names no claims of the paper');
}
