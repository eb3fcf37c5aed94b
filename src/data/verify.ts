import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FgsmError } from '../core/errors.js';
import { isGzip } from './idx.js';
import { MNIST_FILES, type MnistFile } from './mnist-files.js';

export interface VerifiedFile {
  file: MnistFile;
  path: string;
  bytes: Uint8Array;
  gzip: boolean;
  sha256: string;
}

export const digest = (algorithm: 'sha256', bytes: Uint8Array): string => createHash(algorithm).update(bytes).digest('hex');

/** The path of `file` in `dir`: the .gz if present, else the uncompressed file; null if neither. */
export function findInDir(dir: string, file: MnistFile): string | null {
  for (const candidate of [`${file.name}.gz`, file.name]) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  return null;
}

/** Checks bytes against the canonical checksums; a mismatch is an error naming the file and both sums. */
export function verifyBytes(file: MnistFile, path: string, bytes: Uint8Array): VerifiedFile {
  const gzip = isGzip(bytes);
  const sha256 = digest('sha256', bytes);
  const expected = gzip ? file.gzSha256 : file.rawSha256;
  if (sha256 !== expected) {
    const expectedBytes = gzip ? file.gzBytes : file.rawBytes;
    throw new FgsmError(
      `${path}: checksum mismatch: SHA-256 ${sha256}, expected ${expected} (${gzip ? 'gzipped' : 'uncompressed'} ${file.name}; ` +
        `${bytes.length} bytes, expected ${expectedBytes}${bytes.length < expectedBytes ? ', truncated' : ''})`,
      `the file is corrupted or not canonical MNIST: delete it and run \`fgsm data download\`, or point --data-dir at good copies`,
    );
  }
  return { file, path, bytes, gzip, sha256 };
}

export function verifyFile(file: MnistFile, path: string): VerifiedFile {
  return verifyBytes(file, path, readFileSync(path));
}

export interface DirStatus {
  file: MnistFile;
  path: string | null;
  ok: boolean;
  problem?: string;
}

/** Checks every MNIST file in `dir` without throwing: for `fgsm data verify` and the source resolution. */
export function inspectDir(dir: string): DirStatus[] {
  return MNIST_FILES.map((file) => {
    const path = findInDir(dir, file);
    if (!path) return { file, path, ok: false, problem: `missing: neither ${file.name}.gz nor ${file.name} in ${dir}` };
    try {
      verifyFile(file, path);
      return { file, path, ok: true };
    } catch (error) {
      return { file, path, ok: false, problem: (error as Error).message };
    }
  });
}
