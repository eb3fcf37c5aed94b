import { basename, extname } from 'node:path';
import { loadForRun, type RunOptions } from '../../pipeline/experiment.js';

/**
 * One run of `fgsm run`: a config file, the --set overrides that make it (its seed among them when the config
 * lists several), and a label for its output.
 */
export interface RunTask {
  label: string;
  file: string;
  seed: number | null;
  overrides: string[];
}

/**
 * Where the runs of one `fgsm run` execute: in this process, as local processes (--jobs), or as a Slurm job array.
 * Every engine takes the same task list; another one (Kubernetes jobs, say) is one more file beside these.
 * `execute` returns when the engine is done with the list (for Slurm: once submitted), and throws a FgsmError when
 * runs failed, an InterruptedError when it was stopped.
 */
export interface Executor {
  execute(tasks: readonly RunTask[]): Promise<void>;
}

/** The runs of these configs: each config once, or once per seed of its `seeds` list. */
export function taskList(configs: readonly string[], options: Pick<RunOptions, 'backend' | 'overrides'>): RunTask[] {
  return configs.flatMap((file): RunTask[] => {
    const name = basename(file, extname(file));
    const seeds = loadForRun(file, options).config.seeds;
    return seeds
      ? seeds.map((seed) => ({ label: `${name} seed ${seed}`, file, seed, overrides: [...options.overrides, `seed=${seed}`, 'seeds=null'] }))
      : [{ label: name, file, seed: null, overrides: [...options.overrides] }];
  });
}
