import { accessSync, constants, existsSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { FgsmError } from './errors.js';

/**
 * The file-system failures a user causes when fgsm writes (a folder under a file, no permission, a read-only or
 * full disk) as one FgsmError each: the path, the cause and the fix. Node's own message ("ENOTDIR: not a
 * directory, mkdir …") names neither which part of the path is at fault nor what to do.
 */

type Cause = { code: string; at: string };

const errnoOf = (error: unknown): NodeJS.ErrnoException | null =>
  error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' ? (error as NodeJS.ErrnoException) : null;

/**
 * What stands in the way of writing at `path`: the nearest part of it that exists, if that is a file or a folder
 * this process may not write into. Recursive mkdir reports a read-only or forbidden ancestor as ENOENT, so the
 * code alone does not say it.
 */
function blocker(path: string): Cause | null {
  let at = path;
  while (!existsSync(at)) {
    const parent = dirname(at);
    if (parent === at) return null;
    at = parent;
  }
  if (!statSync(at).isDirectory()) return { code: 'ENOTDIR', at };
  try {
    accessSync(at, constants.W_OK);
    return null;
  } catch (error) {
    const code = errnoOf(error)?.code;
    return code ? { code, at } : null;
  }
}

function freeSpace(path: string): string {
  let at = path;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    const { bavail, bsize } = statfsSync(at);
    return ` (${((bavail * bsize) / 1024).toFixed(0)} kB free)`;
  } catch {
    return '';
  }
}

const RERUN = 'then rerun the same command: files already written are kept, and an unfinished run resumes from its last checkpoint';

function describe(cause: Cause, path: string): { message: string; fix: string } | null {
  switch (cause.code) {
    case 'ENOTDIR':
      return { message: `${cause.at} is a file, not a folder`, fix: `choose another folder, or move ${cause.at} away` };
    case 'EISDIR':
      return { message: `${cause.at} is a folder, not a file`, fix: `move ${cause.at} away, or choose another folder` };
    case 'EACCES':
    case 'EPERM':
      return {
        message: `permission denied: ${cause.at} is not writable by this user${process.getuid ? ` (uid ${process.getuid()})` : ''}`,
        fix: `choose a folder you can write to, or give this user write permission on ${cause.at}`,
      };
    case 'EROFS':
      return { message: `${cause.at} is on a read-only file system`, fix: 'choose a folder on a writable disk' };
    case 'ENOSPC':
      return { message: `no space left on the disk holding it${freeSpace(path)}`, fix: `free some space there or choose another folder, ${RERUN}` };
    case 'EDQUOT':
      return { message: 'the disk quota of this user is used up', fix: `free some space there or choose another folder, ${RERUN}` };
    case 'ENAMETOOLONG':
      return { message: 'the path is too long for the file system', fix: 'choose a folder with a shorter path' };
    default:
      return null;
  }
}

/**
 * `error`, thrown while writing `path`, as an FgsmError naming the path, the cause and the fix when the user can
 * fix it; anything else (a bug) is returned unchanged.
 */
export function fileSystemError(error: unknown, path: string): unknown {
  const errno = errnoOf(error);
  if (!errno || error instanceof FgsmError) return error;
  const probed = ['ENOTDIR', 'EEXIST', 'ENOENT', 'EACCES', 'EPERM', 'EROFS'].includes(errno.code!) ? blocker(path) : null;
  const described = describe(probed ?? { code: errno.code!, at: path }, path);
  return described ? new FgsmError(`cannot write ${path}: ${described.message}`, described.fix) : error;
}

/**
 * The bytes of a file fgsm wrote and reads back (a run's status, result, model), or null when it is not there (a
 * file where a folder above it belongs counts as not there: no run folder). A folder in its place, or a file this
 * user may not read, is an FgsmError naming it, with `fix` as its hint.
 */
export function readStateFile(path: string, fix: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = errnoOf(error)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    if (code === 'EISDIR') throw new FgsmError(`${path} is a folder, not a file`, fix);
    if (code === 'EACCES' || code === 'EPERM') throw new FgsmError(`${path}: permission denied`, `give this user read permission on ${path}`);
    throw error;
  }
}

/** A file fgsm wrote whose content is not what it wrote: the path, what is wrong and the fix. */
export function damagedFile(path: string, why: string, fix: string): FgsmError {
  return new FgsmError(`${path} is damaged: ${why}`, fix);
}

/** The JSON value of a state file (see readStateFile), or null when it is not there; empty or not JSON is damage. */
export function readJsonState(path: string, fix: string): unknown {
  const bytes = readStateFile(path, fix);
  if (bytes === null) return null;
  const text = bytes.toString('utf8');
  if (text.trim() === '') throw damagedFile(path, 'it is empty', fix);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw damagedFile(path, `not valid JSON (${(error as Error).message})`, fix);
  }
}
