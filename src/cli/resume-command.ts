import { basename, relative } from 'node:path';
import { shellWord } from './executors/slurm-script.js';

/**
 * The command that resumes what this invocation was doing: the same command line without --fresh (which would
 * start yet another run instead of resuming the one just interrupted), invoked as the user invoked it.
 */
export function resumeCommand(argv: readonly string[] = process.argv, cwd = process.cwd()): string {
  const script = argv[1] ?? 'fgsm';
  const invoked = /node_modules[/\\]\.bin[/\\]fgsm$/.test(script)
    ? 'npx fgsm'
    : basename(script) === 'fgsm'
      ? 'fgsm'
      : `node ${shellWord(relative(cwd, script) || script)}`;
  return [
    invoked,
    ...argv
      .slice(2)
      .filter((argument) => argument !== '--fresh')
      .map(shellWord),
  ].join(' ');
}
