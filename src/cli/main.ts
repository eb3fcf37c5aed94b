import chalk from 'chalk';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { BackendRequest } from '../backend/select.js';
import type { UseConfig } from '../config/cross-run.js';
import { FgsmError, InterruptedError } from '../core/errors.js';
import { packageRoot } from '../core/package-root.js';
import { createProgress, progressModeFor } from '../core/progress.js';
import type { runCrossRun } from '../pipeline/cross-run.js';
import type { RunOptions, StackSeeds } from '../pipeline/experiment.js';
import type { AttackChoice } from '../pipeline/sweep.js';
import type { SlurmRun } from './executors/slurm.js';
import { resumeCommand } from './resume-command.js';

/*
 * Only the parsing is loaded up front: each command imports what it runs when it runs (TensorFlow.js, Dawn and
 * vega take a second or two to load, which `fgsm --help` and `--version` must not spend).
 */

const collect = (value: string, previous: string[]): string[] => [...previous, value];

interface ExperimentFlags {
  set: string[];
  backend?: BackendRequest;
  /** Unset: FGSM_THREADS, read only when an experiment runs (a bad value must not break --help). */
  threads?: number;
  dataDir?: string;
  resultsDir: string;
  fresh: boolean;
  quiet: boolean;
}

/** --threads, FGSM_THREADS, --jobs: a count ≥ 1, or auto (one per core this process may use); null if neither. */
function countOrAuto(value: string): number | null {
  if (value === 'auto') return availableParallelism();
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 ? n : null;
}
const EXPECTED_COUNT = 'expected a whole number ≥ 1 or "auto"';

function parseCount(value: string): number {
  const n = countOrAuto(value);
  if (n === null) throw new InvalidArgumentError(`${EXPECTED_COUNT}, found "${value}"`);
  return n;
}

function parseEpsilon(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected an ε ≥ 0, e.g. 0.25, found "${value}"`);
  return n;
}

function parseWholeNumber(value: string): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= 1)) throw new InvalidArgumentError(`expected a whole number ≥ 1, found "${value}"`);
  return n;
}

function parseStepSize(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError(`expected a step size in (0, 1], e.g. 0.01, found "${value}"`);
  return n;
}

/** sweep's flags that choose its attack. */
interface SweepAttackFlags {
  attack?: AttackChoice['method'];
  steps?: number;
  stepSize?: number;
  restarts?: number;
  randomStart: boolean;
}

/** The attack sweep's flags choose, or null where they leave the configured one. */
function attackChoiceFrom(flags: SweepAttackFlags): AttackChoice | null {
  const choice: AttackChoice = {
    ...(flags.attack ? { method: flags.attack } : {}),
    ...(flags.steps !== undefined ? { steps: flags.steps } : {}),
    ...(flags.stepSize !== undefined ? { stepSize: flags.stepSize } : {}),
    ...(flags.restarts !== undefined ? { restarts: flags.restarts } : {}),
    ...(flags.randomStart ? {} : { randomStart: false }),
  };
  return Object.keys(choice).length > 0 ? choice : null;
}

function threadsFromEnv(): number {
  const value = process.env.FGSM_THREADS ?? '1';
  const n = countOrAuto(value);
  if (n === null) throw new FgsmError(`FGSM_THREADS: ${EXPECTED_COUNT}, found "${value}"`, 'unset it or set it to e.g. 2');
  return n;
}

/** The options of every command that runs an experiment (run, sweep). */
function withExperimentFlags(command: Command, freshMeans: string | null): Command {
  command
    .option('--set <key=value>', 'override a config key, e.g. --set training.epochs=2 (repeatable)', collect, [])
    .addOption(new Option('--backend <name>', 'tfjs backend; overrides the config').choices(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']))
    .option(
      '--threads <n>',
      'threads for the wasm backend: a number or auto (default: FGSM_THREADS, else 1); results do not depend on it',
      parseCount,
    )
    .option('--data-dir <dir>', 'directory with the four MNIST files (else data.dir, FGSM_DATA_DIR, cache, download)')
    .option('--results-dir <dir>', 'where run folders go', 'results');
  if (freshMeans) command.option('--fresh', freshMeans, false);
  return command.option('-q, --quiet', 'no progress output', false);
}

/** The flags that make a child `fgsm run` (one of --jobs) run exactly as this process would have. */
function childFlags(flags: ExperimentFlags): string[] {
  return [
    ...flags.set.flatMap((override) => ['--set', override]),
    ...(flags.backend ? ['--backend', flags.backend] : []),
    ...['--threads', String(flags.threads ?? threadsFromEnv())],
    ...(flags.dataDir ? ['--data-dir', resolve(flags.dataDir)] : []),
    ...['--results-dir', resolve(flags.resultsDir)],
    ...(flags.fresh ? ['--fresh'] : []),
    ...(flags.quiet ? ['--quiet'] : []),
  ];
}

function runOptionsFrom(flags: ExperimentFlags, signal?: AbortSignal): RunOptions {
  return {
    overrides: flags.set,
    backend: flags.backend,
    threads: flags.threads ?? threadsFromEnv(),
    dataDir: flags.dataDir,
    resultsDir: resolve(flags.resultsDir),
    fresh: flags.fresh ?? false,
    progress: createProgress(progressModeFor({ quiet: flags.quiet })),
    signal,
  };
}

interface RunFlags {
  jobs: number;
  executor?: 'in-process' | 'local' | 'slurm';
  slurmPartition?: string;
  slurmTime?: string;
  slurmGpus?: string;
  slurmArg: string[];
  slurmGrace: number;
  slurmRequeues: number;
  dryRun: boolean;
}

function slurmRunFrom(flags: ExperimentFlags & RunFlags): SlurmRun {
  if (flags.fresh) throw new FgsmError('--fresh cannot be used with --executor slurm', 'a requeued task must resume its run, not start another');
  return {
    resultsDir: flags.resultsDir,
    backend: flags.backend,
    threads: flags.threads,
    dataDir: flags.dataDir,
    settings: {
      partition: flags.slurmPartition,
      time: flags.slurmTime,
      gpus: flags.slurmGpus,
      extra: flags.slurmArg,
      graceSeconds: flags.slurmGrace,
      maxRequeues: flags.slurmRequeues,
    },
    dryRun: flags.dryRun,
    fgsm: { node: process.execPath, bin: resolve(process.argv[1]!) },
    say: (line) => console.error(line),
  };
}

/**
 * SIGINT and SIGTERM stop the runs within a few minibatches, keeping every finished epoch (see train's signal). A
 * second one quits at once when `againQuits`
 * (a user at a terminal); a Slurm task ignores it, as Slurm may signal both the batch shell (which passes it
 * on) and the task itself, and kills it anyway once its grace is over.
 */
function stopOnSignals(againQuits: boolean): AbortController {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      if (againQuits) process.exit(130);
      return;
    }
    process.stderr.write(
      `\n${signal}: stopping within a few minibatches; every finished epoch is kept${againQuits ? ' (again to quit at once; the last checkpoint is kept)' : ''}\n`,
    );
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller;
}

const percent = (rate: number | null) => (rate === null ? '—' : `${(100 * rate).toFixed(1)}%`);

/**
 * The columns output may take: the terminal's; without a terminal (a file, a pipe) COLUMNS where set, else no
 * limit; with --wide no limit.
 */
function outputWidth(wide: boolean): number {
  if (wide) return Infinity;
  if (process.stdout.isTTY) return process.stdout.columns;
  const columns = Number(process.env.COLUMNS);
  return Number.isInteger(columns) && columns > 0 ? columns : Infinity;
}

/** What an experiment over runs measured, the runs it used and the paper table of its claims. */
async function printCrossRun({ record, dir }: Awaited<ReturnType<typeof runCrossRun>>, width: number): Promise<void> {
  const [{ compareClaims }, { renderTerminal, renderTransferTable }] = await Promise.all([
    import('../report/compare.js'),
    import('../report/render.js'),
  ]);
  console.log(`\n${chalk.bold(record.experiment)} → ${dir}`);
  for (const used of record.uses)
    console.log(`  ${used.name}: ${used.experiment} run ${used.runId} (weights sha256 ${used.weightsSha256.slice(0, 12)})`);
  if (record.format === 'fgsm-transfer/1') {
    for (const matrix of record.metrics.matrices) console.log(renderTransferTable(matrix, width));
  } else if (record.format === 'fgsm-agreement/1') {
    for (const a of record.metrics.byEpsilon) {
      console.log(`  ε=${a.epsilon}, FGSM examples made on ${a.source}:`);
      for (const [key, c] of Object.entries(a.counts)) console.log(`    ${key}: ${percent(c.rate)} (${c.agree} of ${c.of})`);
    }
  } else {
    for (const m of record.metrics.byEpsilon) {
      console.log(`  ε=${m.epsilon}, ensemble of ${m.members}: clean error ${percent(m.clean.error)}`);
      console.log(`    FGSM against the whole ensemble: error ${percent(m.whole.error)}`);
      console.log(`    FGSM against one member, scored by the ensemble: error ${percent(m.member.error)} (mean over the members)`);
      for (const member of m.member.perMember)
        console.log(
          `      ${member.name}: ${percent(member.error)} (the member alone: clean ${percent(member.own.cleanError)}, FGSM ${percent(member.own.fgsmError)})`,
        );
    }
  }
  const rows = compareClaims(record);
  if (rows.length) console.log(renderTerminal(rows, width));
}

function program(): Command {
  const cli = new Command('fgsm')
    .description('Reproduces the MNIST results of Goodfellow, Shlens & Szegedy (ICLR 2015) from YAML experiments')
    .version(packageVersion(), '-V, --version', 'print the version of fgsm')
    .option('--no-color', 'no colour in the output (also when NO_COLOR is set)')
    .option('--wide', 'tables and lines at their full width, not fitted to the terminal (as when output goes to a file)', false)
    .showHelpAfterError()
    // usage errors are thrown to main(), which exits 2 as for every user error (subcommands inherit this)
    .exitOverride();
  cli.hook('preAction', () => {
    if (cli.opts<{ color: boolean }>().color !== false) return;
    chalk.level = 0;
    process.env.NO_COLOR = '1'; // the processes of --jobs inherit it
  });
  const width = () => outputWidth(cli.opts<{ wide: boolean }>().wide);

  withExperimentFlags(
    cli
      .command('run')
      .description('train, attack and evaluate each experiment; write results/ and print the table against the paper')
      .argument('<configs...>', 'experiment YAML files')
      .option(
        '--jobs <n>',
        'runs (configs, seeds) at a time, each its own process: a number or auto (one per core); default 1, in this process',
        parseCount,
        1,
      )
      .addOption(
        new Option('--executor <engine>', 'where the runs execute (default: local with --jobs > 1, else in-process)').choices([
          'in-process',
          'local',
          'slurm',
        ]),
      )
      .option('--slurm-partition <name>', 'slurm: the partition (sbatch --partition)')
      .option('--slurm-time <limit>', 'slurm: the time limit of each task, e.g. 08:00:00; a task stopped by it resumes when requeued')
      .option('--slurm-gpus <n>', 'slurm: GPUs per task (sbatch --gpus)')
      .option('--slurm-arg <option>', 'slurm: any other sbatch option, as --slurm-arg=--account=ml (repeatable)', collect, [])
      .option('--slurm-grace <seconds>', 'slurm: warn a task this long before its time limit (one epoch, checkpoint and exit)', parseCount, 300)
      .option('--slurm-requeues <n>', 'slurm: how often a task stopped at a checkpoint requeues itself', parseCount, 20)
      .option('--dry-run', 'slurm: print the batch script and what would be submitted; submit nothing', false)
      .option('--train-missing', 'an experiment over runs trains the experiments it uses that have no complete run, instead of refusing', false)
      .addOption(
        new Option(
          '--stack-seeds <mode>',
          "in this process, train a config's seeds together as one stacked network: auto (on webgpu and tensorflow), always, never",
        )
          .choices(['auto', 'always', 'never'])
          .default('auto'),
      ),
    'start a new run even if an unfinished one of the same config exists',
  ).action(async (configs: string[], flags: ExperimentFlags & RunFlags & { trainMissing: boolean; stackSeeds: StackSeeds }) => {
    const [{ documentKind, loadCrossRun }, { taskList }, { inProcessExecutor }, { localExecutor }, { slurmExecutor }, { runCrossRun }] =
      await Promise.all([
        import('../config/load.js'),
        import('./executors/executor.js'),
        import('./executors/in-process.js'),
        import('./executors/local.js'),
        import('./executors/slurm.js'),
        import('../pipeline/cross-run.js'),
      ]);
    const controller = stopOnSignals(true);
    const options = runOptionsFrom(flags, controller.signal);
    // experiments over other runs go last: the runs they use may be among the experiments given
    const overRuns = configs.filter((file) => documentKind(file) !== 'experiment');
    const tasks = taskList(
      configs.filter((file) => !overRuns.includes(file)),
      options,
    );
    const engine = flags.executor ?? (flags.jobs > 1 && tasks.length > 1 ? 'local' : 'in-process');
    if (flags.dryRun && engine !== 'slurm') {
      // it would have trained: a dry run must never do what it says it will not
      throw new FgsmError(`--dry-run shows what --executor slurm would submit; these runs would execute ${engine}`, 'add --executor slurm');
    }
    if (engine === 'slurm' && overRuns.length) {
      throw new FgsmError(
        `${overRuns.join(', ')}: an experiment over other runs cannot wait for a job array`,
        'submit the experiments it uses, then `fgsm run` it where the results folder is once the array is done',
      );
    }
    if (engine === 'local' && Number.isFinite(width())) {
      // the runs print through pipes, each line behind its "[label] ": COLUMNS tells them the width left
      process.env.COLUMNS = String(width() - Math.max(...tasks.map((task) => task.label.length)) - 3);
    }
    const executor =
      engine === 'slurm'
        ? slurmExecutor(slurmRunFrom(flags))
        : engine === 'local'
          ? localExecutor(process.argv[1]!, flags.jobs, (task) => childFlags({ ...flags, set: task.overrides }), controller.signal)
          : inProcessExecutor(options, flags.stackSeeds, width());
    if (tasks.length) await executor.execute(tasks);
    for (const file of overRuns)
      await printCrossRun(await runCrossRun(loadCrossRun(file, flags.set), { ...options, trainMissing: flags.trainMissing }), width());
  });

  cli
    .command('task', { hidden: true })
    .description('run one task of a Slurm job array (what its batch script runs)')
    .argument('<tasks>', 'the tasks.json of a submission folder')
    .argument('[index]', 'the task (default: SLURM_ARRAY_TASK_ID)')
    .option('-q, --quiet', 'no progress output', false)
    .action(async (tasks: string, index: string | undefined, opts: { quiet: boolean }) => {
      const { runArrayTask } = await import('./executors/slurm-task.js');
      const signal = stopOnSignals(false).signal;
      const progress = createProgress(progressModeFor({ quiet: opts.quiet }));
      await runArrayTask(tasks, index ?? process.env.SLURM_ARRAY_TASK_ID, { progress, signal, threads: threadsFromEnv() });
    });

  withExperimentFlags(
    cli
      .command('peek')
      .description(
        'evaluate an unfinished run (e.g. a long one still training) at its last checkpoint, stage 1 at the best epoch so far; writes <run>/provisional/',
      )
      .argument('<configs...>', 'experiment YAML files, as given to run')
      .option('--eps <range>', "attack at these ε instead of the config's: START:STOP:STEP or a list, e.g. 0.05:0.3:0.05"),
    null,
  ).action(async (configs: string[], flags: ExperimentFlags & { eps?: string }) => {
    const [{ parseEpsilons }, { runExperiment }, { compareClaims }, { renderTerminal }] = await Promise.all([
      import('../pipeline/sweep.js'),
      import('../pipeline/experiment.js'),
      import('../report/compare.js'),
      import('../report/render.js'),
    ]);
    for (const file of configs) {
      const peekEpsilons = flags.eps === undefined ? undefined : parseEpsilons(flags.eps);
      const outcome = await runExperiment(file, { ...runOptionsFrom(flags), peek: true, peekEpsilons });
      console.log(`\n${chalk.bold(outcome.result.experiment)} (${outcome.result.provisional}) → ${outcome.dir}`);
      console.log(renderTerminal(compareClaims(outcome.result), width()));
    }
  });

  withExperimentFlags(
    cli
      .command('sweep')
      .description(
        "error and confidence against ε under FGSM (or --attack bim, pgd) for an experiment's latest complete run; writes sweep.json, sweep.csv and sweep.svg",
      )
      .argument('<config>', 'experiment YAML file')
      .option('--eps <range>', 'START:STOP:STEP (inclusive), e.g. 0:0.3:0.05, or a list, e.g. 0.1,0.25 (default 0:0.3:0.025, the range of the paper)')
      .option('--train-missing', "train the experiment when it has no complete run (hours for the paper's networks), instead of refusing", false)
      .addOption(new Option('--attack <method>', 'the attack instead of the configured one').choices(['fgsm', 'bim', 'pgd']))
      .option('--steps <n>', 'bim, pgd: gradient steps', parseWholeNumber)
      .option('--step-size <α>', 'bim, pgd: the L∞ size of one step', parseStepSize)
      .option('--restarts <n>', 'pgd: runs from random starts, the worst kept per example', parseWholeNumber)
      .option('--no-random-start', 'pgd: start from x'),
    'train a new model even if a complete run of the same config exists',
  ).action(async (config: string, flags: ExperimentFlags & SweepAttackFlags & { eps?: string; trainMissing: boolean }) => {
    const [{ DEFAULT_SWEEP_GRID, parseEpsilons, sweepExperiment }, { renderSweepTable }] = await Promise.all([
      import('../pipeline/sweep.js'),
      import('../report/render.js'),
    ]);
    const epsilons = parseEpsilons(flags.eps ?? DEFAULT_SWEEP_GRID);
    const { dir, points, others } = await sweepExperiment(
      config,
      epsilons,
      { ...runOptionsFrom(flags, stopOnSignals(true).signal), trainMissing: flags.trainMissing },
      attackChoiceFrom(flags),
    );
    console.log(renderSweepTable(points, others, width()));
    console.log(`→ ${join(dir, 'sweep.csv')}, ${join(dir, 'sweep.svg')}`);
  });

  withExperimentFlags(
    cli
      .command('transfer')
      .description(
        'the transfer matrix (§6) between trained experiments: FGSM examples made on each model (rows), scored by every model (columns); writes CSV and a heat map',
      )
      .argument('<configs...>', 'experiment YAML files whose newest complete runs (on this data) are used')
      .option('--eps <range>', 'ε to attack at: START:STOP:STEP or a list (default 0.25)')
      .option('--train-missing', 'train the experiments that have no complete run instead of refusing', false),
    null,
  ).action(async (configs: string[], flags: ExperimentFlags & { eps?: string; trainMissing: boolean }) => {
    const [{ parseEpsilons }, { adHocTransfer, runTransfer }] = await Promise.all([
      import('../pipeline/sweep.js'),
      import('../pipeline/transfer.js'),
    ]);
    const loaded = adHocTransfer(configs, flags.eps === undefined ? null : parseEpsilons(flags.eps), flags.set);
    await printCrossRun(
      await runTransfer(loaded, { ...runOptionsFrom(flags, stopOnSignals(true).signal), trainMissing: flags.trainMissing }),
      width(),
    );
  });

  cli
    .command('audit')
    .description(
      "attack every complete model in a results folder past the paper's FGSM (both gradients, clipped and not, BIM, PGD, label leaking, transfer, ε = 1) and flag gradient masking; writes audit.md, audit.json, audit.csv",
    )
    .argument('[dir]', 'results directory', 'results')
    .option('--out <dir>', 'where the audit goes; a rerun resumes what it finds there (default: <dir>/audit)')
    .option('--limit <n>', 'attack only the first n test examples of each model (recorded and printed; not comparable with the paper)', parseCount)
    .option(
      '--transfer-from <experiments>',
      'experiments to make transfer examples on, in order of preference (comma-separated)',
      'maxout,maxout-adv',
    )
    .option('--only <experiments>', 'audit only these experiments, in this order (comma-separated)')
    .option('--repair', 're-evaluate the FGSM figures of records measured before a gradient fix, and rewrite their result.json and report.md', false)
    .option('--check', 'exit with status 2 when a must-hold check (PGD error ≥ FGSM error) fails on some model', false)
    .option('--table-only', 'attack nothing: write the table of the models whose figures --out already holds in full, naming the others', false)
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']))
    .option('--threads <n>', 'threads for the wasm backend: a number or auto (default: FGSM_THREADS, else 1)', parseCount)
    .option('--data-dir <dir>', 'directory with the four MNIST files (else FGSM_DATA_DIR, cache, download)')
    .option('-q, --quiet', 'no progress output', false)
    .action(
      async (
        dir: string,
        opts: {
          out?: string;
          limit?: number;
          transferFrom: string;
          only?: string;
          repair: boolean;
          check: boolean;
          tableOnly: boolean;
          backend?: BackendRequest;
          threads?: number;
          dataDir?: string;
          quiet: boolean;
        },
      ) => {
        const { auditResults } = await import('../pipeline/audit.js');
        const { renderRobustnessMarkdown } = await import('../report/robustness.js');
        const list = (text: string) =>
          text
            .split(',')
            .map((name) => name.trim())
            .filter(Boolean);
        const out = resolve(opts.out ?? join(dir, 'audit'));
        const record = await auditResults(dir, {
          backend: opts.backend,
          threads: opts.threads ?? threadsFromEnv(),
          dataDir: opts.dataDir,
          progress: createProgress(progressModeFor({ quiet: opts.quiet })),
          out,
          limit: opts.limit ?? null,
          transferSources: list(opts.transferFrom),
          only: opts.only === undefined ? null : list(opts.only),
          repair: opts.repair,
          tableOnly: opts.tableOnly,
        });
        console.log(renderRobustnessMarkdown(record));
        console.log(`→ ${join(out, 'audit.md')}, audit.json, audit.csv`);
        if (opts.check) {
          if (record.failures.length)
            throw new FgsmError(`${record.failures.length} must-hold check(s) failed:\n${record.failures.map((f) => `  ${f}`).join('\n')}`);
          console.log(chalk.green(`check: the must-hold checks (${record.mustHold.join(', ')}) hold on all ${record.models.length} models`));
        }
      },
    );

  cli
    .command('validate')
    .description('check experiment files against the schema and report every problem with its line')
    .argument('[configs...]', 'experiment YAML files')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--schema', 'print the JSON Schema of an experiment (every key, type, default and description)', false)
    .option('--resolved', 'print the resolved config (defaults filled in) as JSON', false)
    .action(async (configs: string[], opts: { set: string[]; schema: boolean; resolved: boolean }) => {
      const [{ documentKind, loadCrossRun, loadExperiment }, { experimentJsonSchema }] = await Promise.all([
        import('../config/load.js'),
        import('../config/schema.js'),
      ]);
      if (!opts.schema && configs.length === 0) {
        throw new FgsmError('validate: no experiment files given', 'name them, e.g. `fgsm validate configs/*.yaml`, or pass --schema');
      }
      if (opts.schema) console.log(JSON.stringify(experimentJsonSchema(), null, 2));
      const problems: string[] = [];
      const hints = new Set<string>();
      for (const file of configs) {
        try {
          if (documentKind(file) !== 'experiment') {
            const loaded = loadCrossRun(file, opts.set);
            const uses: Record<string, UseConfig> = loaded.config.uses;
            for (const use of Object.values(uses)) loadExperiment(typeof use === 'string' ? use : use.config);
            console.log(
              opts.resolved
                ? JSON.stringify(loaded.config, null, 2)
                : `${file}: ok (${loaded.config.name}, ${loaded.config.kind} over ${Object.keys(uses).join(', ')})`,
            );
          } else {
            const loaded = loadExperiment(file, opts.set);
            console.log(opts.resolved ? JSON.stringify(loaded.config, null, 2) : `${file}: ok (${loaded.config.name}, hash ${loaded.configHash})`);
          }
        } catch (error) {
          if (!(error instanceof FgsmError)) throw error;
          problems.push(error.message);
          if (error.hint) hints.add(error.hint);
        }
      }
      if (problems.length) throw new FgsmError(problems.join('\n'), [...hints].join('; '));
    });

  cli
    .command('report')
    .description('the paper table for the latest run of every experiment under a results directory')
    .argument('[dir]', 'results directory', 'results')
    .option('--json', 'print the rows as JSON (id, section, paper, ours, delta, verdict, …)', false)
    .option('--check', 'exit with status 2 when no run is found, or a must-hold claim fails, or one that a run here names was not measured', false)
    .option('--measured-only', 'leave out the claims no run has measured', false)
    .option('--out <dir>', 'also write report.md and report.csv into this directory')
    .option('--html <file>', 'also write the report as one self-contained HTML page: the table, figures, provenance and run status')
    .action(async (dir: string, opts: { json: boolean; check: boolean; out?: string; html?: string; measuredOnly: boolean }) => {
      const [
        { latestResults },
        compare,
        { renderCsv, renderJson, renderMarkdown, renderTerminal },
        { wrapText },
        { listRuns },
        { describeRun },
        { writeFileAtomic },
      ] = await Promise.all([
        import('../report/collect.js'),
        import('../report/compare.js'),
        import('../report/render.js'),
        import('../report/table.js'),
        import('../results/runs.js'),
        import('./status.js'),
        import('../core/atomic.js'),
      ]);
      const { compareClaims, failedChecks, resolveRelativeChecks, unmeasuredClaims, withSeedMeans } = compare;
      const results = latestResults(resolve(dir));
      if (results.length === 0) {
        // nothing to set against the paper: say so, not a table of 40 unmeasured rows
        const none = `no complete run under ${dir}`;
        if (opts.check) throw new FgsmError(`--check: ${none}, so nothing holds`, 'run the experiments first, or point at the folder they wrote');
        console.log(`${none}; \`fgsm status ${dir}\` shows unfinished ones`);
        return;
      }
      const measuredRows = withSeedMeans(resolveRelativeChecks(results.flatMap(compareClaims)));
      const rows = opts.measuredOnly ? measuredRows : [...measuredRows, ...unmeasuredClaims(measuredRows)];
      if (opts.out) {
        writeFileAtomic(join(opts.out, 'report.md'), `# fgsm: the paper vs this reproduction\n\n${renderMarkdown(rows)}`);
        writeFileAtomic(join(opts.out, 'report.csv'), renderCsv(rows));
      }
      if (opts.html) {
        // loaded here: vega and the figures are for this option only
        const { writeHtmlReport } = await import('../report/html.js');
        const bytes = await writeHtmlReport(dir, rows, opts.html);
        console.error(`wrote ${opts.html} (${(bytes / 2 ** 20).toFixed(2)} MiB)`);
      }
      const unfinished = listRuns(resolve(dir)).filter((run) => run.state !== 'complete');
      if (opts.json) process.stdout.write(renderJson(rows));
      else {
        // the runs by experiment (their ids: fgsm status, report --json)
        const runsOf = new Map<string, number>();
        for (const r of results) runsOf.set(r.experiment, (runsOf.get(r.experiment) ?? 0) + 1);
        const experiments = [...runsOf].map(([name, n]) => (n > 1 ? `${name} (${n} seeds)` : name));
        console.log(wrapText(`${results.length} complete run(s) under ${dir}: ${experiments.join(', ')}`, width()));
        console.log(renderTerminal(rows, width()));
        for (const r of results) if (r.data.warning) console.log(chalk.red(wrapText(`${r.experiment}: ${r.data.warning}`, width())));
        for (const run of unfinished) console.log(chalk.yellow(wrapText(`unfinished: ${describeRun(run)}`, width())));
      }
      if (opts.check) {
        if (results.length === 0) {
          throw new FgsmError(
            `--check: no complete run under ${dir}, so nothing holds`,
            'run the experiments first, or point at the folder they wrote',
          );
        }
        const failed = failedChecks(measuredRows);
        if (failed.length) {
          throw new FgsmError(
            `${failed.length} must-hold claim(s) failed:\n${failed.map((r) => `  ${r.id} ${r.quantity}: ours ${r.ours?.toFixed(2) ?? 'not measured (the run names this claim)'}${r.verdict === 'not comparable' ? " (on data not comparable with the paper's)" : ''}, must hold ${r.mustHold}`).join('\n')}`,
          );
        }
        const judged = measuredRows.filter((r) => r.mustHold).length;
        const unjudged = unmeasuredClaims(measuredRows).filter((r) => r.mustHold);
        if (!opts.json) {
          console.log(chalk.green(`check: all ${judged} must-hold claims of the runs here hold`));
          if (unjudged.length) console.log(wrapText(`not judged (no run here names them): ${unjudged.map((r) => r.id).join(', ')}`, width()));
        }
      }
    });

  cli
    .command('compare')
    .description(
      'runs side by side: the config keys they differ in, epochs, clean error, FGSM error at every ε with both softmax gradients, confidence on mistakes (an ablation table)',
    )
    .argument('<paths...>', 'run folders, their result.json (provisional ones too), or folders holding runs')
    .option('--at <eps>', 'the ε of the confidence and saturation columns (default .25 where every run has it)', parseEpsilon)
    .option('--markdown', 'print a Markdown table (for a README)', false)
    .option('--csv <file>', 'also write the table as CSV')
    .action(async (paths: string[], opts: { at?: number; markdown: boolean; csv?: string }) => {
      const [{ renderSideBySideCsv, renderSideBySideMarkdown, renderSideBySideTerminal, resultRecordsAt, sideBySide }, { writeFileAtomic }] =
        await Promise.all([import('../report/side-by-side.js'), import('../core/atomic.js')]);
      const found = resultRecordsAt(paths.map((path) => resolve(path)));
      const table = sideBySide(
        found.map((f) => f.record),
        opts.at,
      );
      if (opts.csv) writeFileAtomic(resolve(opts.csv), renderSideBySideCsv(table));
      console.log(opts.markdown ? renderSideBySideMarkdown(table) : renderSideBySideTerminal(table, width()));
      if (opts.csv) console.log(`→ ${opts.csv}`);
    });

  cli
    .command('status')
    .description(
      'every run under a results directory: experiment, seed, state (running, dead, interrupted, failed, complete), stage/epoch, best so far, last heartbeat; and every task of its Slurm arrays (pending, running, done, failed and why)',
    )
    .argument('[dir]', 'results directory', 'results')
    .option('--json', 'print the runs as JSON ({ runs, slurm } where the folder holds Slurm arrays)', false)
    .action(async (dir: string, opts: { json: boolean }) => {
      const [{ listRuns }, { arrayOverviews }, { renderArray, renderRunTable }] = await Promise.all([
        import('../results/runs.js'),
        import('./executors/slurm-state.js'),
        import('./status.js'),
      ]);
      const runs = listRuns(resolve(dir));
      const arrays = arrayOverviews(resolve(dir), runs);
      if (opts.json) process.stdout.write(`${JSON.stringify(arrays.length ? { runs, slurm: arrays } : runs, null, 2)}\n`);
      else {
        console.log(runs.length ? renderRunTable(runs, resolve(dir), width()) : `no runs under ${dir}`);
        for (const array of arrays) console.log(`\n${renderArray(array, resolve(dir), width())}`);
      }
    });

  const data = cli.command('data').description('MNIST: download, verify, info');
  const dataDirOption = new Option('--data-dir <dir>', 'directory to check (default: FGSM_DATA_DIR, else the user cache)');
  const targetDir = async (dir?: string) => {
    const { cacheDir, explicitDataDir } = await import('../data/source.js');
    return explicitDataDir(dir, null)?.dir ?? cacheDir();
  };
  data
    .command('download')
    .description('download the four canonical MNIST files into the user cache (or --data-dir), verifying checksums')
    .addOption(dataDirOption)
    .option('-q, --quiet', 'no progress output', false)
    .action(async (opts: { dataDir?: string; quiet: boolean }) => {
      const [{ downloadMissing }, { MNIST_FILES }] = await Promise.all([import('../data/source.js'), import('../data/mnist-files.js')]);
      const dir = await targetDir(opts.dataDir);
      const downloaded = await downloadMissing(dir, { progress: createProgress(progressModeFor({ quiet: opts.quiet })) });
      console.log(`${dir}: ${downloaded} file(s) downloaded, ${MNIST_FILES.length - downloaded} already present and verified`);
    });
  data
    .command('verify')
    .description('check the MNIST files against the canonical checksums')
    .addOption(dataDirOption)
    .action(async (opts: { dataDir?: string }) => {
      const { inspectDir } = await import('../data/verify.js');
      const dir = await targetDir(opts.dataDir);
      const statuses = inspectDir(dir);
      for (const s of statuses)
        console.log(`${s.ok ? chalk.green('ok  ') : chalk.red('BAD ')} ${s.path ?? s.file.name}${s.problem ? `\n     ${s.problem}` : ''}`);
      if (statuses.some((s) => !s.ok)) throw new FgsmError(`${dir}: some MNIST files are missing or corrupted`, 'run `fgsm data download`');
    });
  data
    .command('info')
    .description('where MNIST would be read from, the canonical files and their checksums')
    .addOption(dataDirOption)
    .action(async (opts: { dataDir?: string }) => {
      const [{ cacheDir, explicitDataDir }, { mirrorsFromEnv }, { MNIST_FILES }] = await Promise.all([
        import('../data/source.js'),
        import('../data/download.js'),
        import('../data/mnist-files.js'),
      ]);
      const explicit = explicitDataDir(opts.dataDir, null);
      console.log(`data directory: ${explicit ? `${explicit.dir} (${explicit.origin})` : 'none given (--data-dir, data.dir or FGSM_DATA_DIR)'}`);
      console.log(`user cache:     ${cacheDir()}`);
      console.log(`mirrors:        ${mirrorsFromEnv().join(', ')}`);
      for (const f of MNIST_FILES) {
        console.log(`  ${f.name}.gz  ${f.count} ${f.kind}  ${f.gzBytes} bytes  sha256 ${f.gzSha256}`);
        console.log(`  ${f.name}  (uncompressed)  ${f.rawBytes} bytes  sha256 ${f.rawSha256}`);
      }
    });

  cli
    .command('doctor')
    .description('which tfjs backends load here, which `auto` would use, and how to fix the others')
    .action(async () => {
      const [{ doctorFindings }, { wrapText }, { cacheDir }] = await Promise.all([
        import('../backend/doctor.js'),
        import('../report/table.js'),
        import('../data/source.js'),
      ]);
      const { attempts, autoWouldUse, webgpu, installed } = doctorFindings();
      const say = (line: string, indent = '  ') => console.log(wrapText(line, width(), indent));
      const column = ' '.repeat(20);
      for (const a of attempts) {
        const line = wrapText(`${(a.ok ? 'loads' : 'no').padEnd(8)} ${a.backend.padEnd(10)} ${a.detail}`, width(), column);
        console.log(line.replace(/^\w+/, (word) => (a.ok ? chalk.green : chalk.yellow)(word)));
        if (!a.ok && a.fix) say(`         fix: ${a.fix}`, column);
      }
      say(`auto would use: ${autoWouldUse ?? 'nothing (no backend loads)'}`);
      for (const line of webgpu) say(`webgpu: ${line}`, '        ');
      say(
        `installed: ${Object.entries(installed)
          .map(([k, v]) => `${k}@${v}`)
          .join(', ')}`,
      );
      say(`node ${process.version}; MNIST cache ${cacheDir()}`);
    });
  return cli;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Runs the CLI; user errors (usage errors included) print without a stack and exit 2, an interruption exits
 * 130, bugs exit 1. NO_COLOR (https://no-color.org) and --no-color win over FORCE_COLOR: the user asked.
 */
export async function main(argv: string[]): Promise<void> {
  if (process.env.NO_COLOR) chalk.level = 0;
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2; // commander has printed the message and the usage
    } else if (error instanceof InterruptedError) {
      console.error(chalk.yellow(error.message));
      console.error(`resume with: ${resumeCommand()}`);
      process.exitCode = 130;
    } else if (error instanceof FgsmError) {
      console.error(chalk.red(`fgsm: ${error.message}`));
      if (error.hint) console.error(`hint: ${error.hint}`);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  }
}
