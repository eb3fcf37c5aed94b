import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { fileSystemError } from './fs-errors.js';

/** A temporary path beside `path`, on the same file system, so that rename is atomic. */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Creates the folder `dir` and its parents; a user's mistake (a file in the way, a read-only disk) is an FgsmError. */
export function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw fileSystemError(error, dir);
  }
}

/**
 * Writes `data` to `path` so that a reader (or a crash) sees either the old file or the complete new one:
 * write a temporary file beside it, flush it to disk, then rename over the target. A failure leaves the old
 * file as it was and is an FgsmError when the user can fix it (see fileSystemError).
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  makeDir(dirname(path));
  const tmp = temporaryPathFor(path);
  try {
    writeFileSync(tmp, data);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw fileSystemError(error, path);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
