import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { DEFAULT_MIRRORS, type MnistFile } from './mnist-files.js';
import { verifyBytes } from './verify.js';

export interface DownloadOptions {
  /** Base URLs ending in "/", tried in order. */
  mirrors: readonly string[];
  /** Give up on one mirror after this long in all. */
  timeoutMs: number;
  /** Give up on one mirror when no byte arrives for this long. */
  stallMs: number;
  progress: Progress;
}

export function mirrorsFromEnv(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  const list = env.FGSM_MNIST_MIRRORS?.split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  return list && list.length > 0 ? list.map((m) => (m.endsWith('/') ? m : `${m}/`)) : DEFAULT_MIRRORS;
}

async function fetchBytes(url: string, options: DownloadOptions, label: string): Promise<Uint8Array> {
  const controller = new AbortController();
  let reason = '';
  const abort = (why: string) => {
    reason = why;
    controller.abort();
  };
  const overall = setTimeout(() => abort(`no complete response within ${options.timeoutMs / 1000} s`), options.timeoutMs);
  let stall = setTimeout(() => abort(`stalled: no data for ${options.stallMs / 1000} s`), options.stallMs);
  const resetStall = () => {
    clearTimeout(stall);
    stall = setTimeout(() => abort(`stalled: no data for ${options.stallMs / 1000} s`), options.stallMs);
  };
  try {
    const response = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    const total = Number(response.headers.get('content-length') ?? 0);
    options.progress.start(total || 1, label);
    const chunks: Uint8Array[] = [];
    let received = 0;
    for await (const chunk of response.body) {
      resetStall();
      chunks.push(chunk);
      received += chunk.length;
      options.progress.update(Math.min(received, total || received), `${(received / 1e6).toFixed(1)} MB`);
    }
    const bytes = new Uint8Array(received);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    return bytes;
  } catch (error) {
    // fetch reports network failures as "fetch failed" with the real reason (ENOTFOUND, ECONNREFUSED, …) in cause
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(reason || [(error as Error).message, cause?.code ?? cause?.message].filter(Boolean).join(': '));
  } finally {
    clearTimeout(overall);
    clearTimeout(stall);
    options.progress.stop();
  }
}

/**
 * Downloads one canonical MNIST .gz into `dir`, trying each mirror until one serves bytes with the canonical
 * checksum. The file is verified in memory and then written atomically: a failed or interrupted download
 * never leaves a partial file behind.
 */
export async function downloadMnistFile(file: MnistFile, dir: string, options: DownloadOptions): Promise<{ path: string; url: string }> {
  const failures: string[] = [];
  for (const mirror of options.mirrors) {
    const url = `${mirror}${file.name}.gz`;
    try {
      const bytes = await fetchBytes(url, options, `${file.name}.gz`);
      verifyBytes(file, url, bytes);
      const path = join(dir, `${file.name}.gz`);
      writeFileAtomic(path, bytes);
      options.progress.line(`downloaded ${url} (${bytes.length} bytes, checksum ok)`);
      return { path, url };
    } catch (error) {
      const message = (error as Error).message;
      failures.push(message.startsWith(url) ? message : `${url}: ${message}`);
      options.progress.line(`download failed, ${failures.at(-1)}`);
    }
  }
  throw new FgsmError(
    `could not download ${file.name}.gz from any mirror:\n  ${failures.join('\n  ')}`,
    'without network access, copy the four MNIST files into a directory and pass --data-dir DIR (or set FGSM_DATA_DIR)',
  );
}
