import { basename, relative } from 'node:path';

/** An argument as a POSIX shell reads it back: bare when safe, else in single quotes. */
function quoted(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}

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
      : `node ${quoted(relative(cwd, script) || script)}`;
  return [
    invoked,
    ...argv
      .slice(2)
      .filter((argument) => argument !== '--fresh')
      .map(quoted),
  ].join(' ');
}
