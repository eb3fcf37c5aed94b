import '@tensorflow/tfjs-backend-cpu'; // registers the cpu backend (the umbrella @tensorflow/tfjs did; fgsm depends on tfjs-core)
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { FgsmError } from '../core/errors.js';
import { activateThreadedWasm, THREADED_WASM } from './wasm-threads.js';
import { activateWebgpu, adapterLine, dawnVersion } from './webgpu.js';

/**
 * Which TensorFlow.js backend runs the experiment. `auto` tries tensorflow (@tensorflow/tfjs-node-gpu, CUDA;
 * or @tensorflow/tfjs-node on CPU) → webgpu (a hardware adapter only) → wasm → cpu, and records why each one
 * before the chosen failed. A backend
 * asked for by name that cannot load is an error with the reason and the fix, never a silent fallback.
 */
export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type BackendRequest = BackendName | 'auto';

export interface BackendAttempt {
  backend: BackendName;
  ok: boolean;
  /** Which package provided it, or why it did not load. */
  detail: string;
  fix?: string;
  /** The device it computes on, where the loader knows (webgpu: the adapter and its driver). */
  device?: string;
}

export interface BackendChoice {
  name: BackendName;
  requested: BackendRequest;
  /** One sentence: which backend ran and why. */
  reason: string;
  attempts: BackendAttempt[];
  /** The devices the backend computes on, as far as it tells. */
  device: string;
  /** Which package provided it, and on how many threads. */
  detail: string;
  /** Threads the wasm kernels run on; null for backends that manage their own (tensorflow, cpu). */
  threads: number | null;
}

export interface BackendOptions {
  /**
   * Threads for the wasm backend (default 1: tfjs's stock single-thread build). More than one starts the
   * multithreaded build (see wasm-threads.ts); where it cannot start, wasm runs on one thread and says why.
   */
  wasmThreads?: number;
}

// tfjs-core's gradients and chained ops, which its Node build leaves out (see tfjs-core-registrations.js): every
// path that computes loads this module first, since only it activates a backend
try {
  createRequire(import.meta.url)('./tfjs-core-registrations.cjs');
} catch (error) {
  throw new FgsmError(`tfjs-core's gradients are not built: ${(error as Error).message.split('\n')[0]!}`, 'build: npm run build');
}

const ORDER: BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
const NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

const TENSORFLOW_FIX =
  `npm install @tensorflow/tfjs-node-gpu@${tf.version_core} (CUDA 11.2 + cuDNN 8.1 on the library path) ` +
  `or @tensorflow/tfjs-node@${tf.version_core} (CPU); the version must equal @tensorflow/tfjs-core's`;

async function loadTensorflow(): Promise<BackendAttempt> {
  const reasons: string[] = [];
  for (const name of NODE_PACKAGES) {
    const specifier: string = name; // a variable: the packages are optional and have no types here
    try {
      await import(specifier);
    } catch (error) {
      const message = (error as Error).message.split('\n')[0]!;
      reasons.push(`${name}: ${/Cannot find (package|module)/.test(message) ? 'not installed' : message}`);
      continue;
    }
    if (!tf.findBackend('tensorflow')) {
      reasons.push(`${name} loaded but registered no "tensorflow" backend with this @tensorflow/tfjs-core (two different tfjs versions installed?)`);
      continue;
    }
    if (await tf.setBackend('tensorflow')) return { backend: 'tensorflow', ok: true, detail: name };
    reasons.push(`${name}: the tensorflow backend failed to initialise`);
  }
  return { backend: 'tensorflow', ok: false, detail: reasons.join('; '), fix: TENSORFLOW_FIX };
}

async function loadWasm(threads = 1): Promise<BackendAttempt> {
  let fallback = '';
  if (threads > 1) {
    try {
      await activateThreadedWasm(threads);
      return { backend: 'wasm', ok: true, detail: `@tensorflow/tfjs-backend-wasm, threaded SIMD build (${threads} threads)` };
    } catch (error) {
      fallback = `; ${threads} threads were asked for, but the threaded build did not start: ${(error as Error).message.split('\n')[0]!}`;
    }
  }
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) return { backend: 'wasm', ok: true, detail: `@tensorflow/tfjs-backend-wasm (single thread${fallback})` };
    return { backend: 'wasm', ok: false, detail: 'the wasm backend failed to initialise', fix: 'reinstall: npm ci' };
  } catch (error) {
    return { backend: 'wasm', ok: false, detail: (error as Error).message.split('\n')[0]!, fix: 'reinstall: npm ci' };
  }
}

async function loadCpu(): Promise<BackendAttempt> {
  return (await tf.setBackend('cpu'))
    ? { backend: 'cpu', ok: true, detail: '@tensorflow/tfjs-backend-cpu plain-JavaScript kernels (slow)' }
    : { backend: 'cpu', ok: false, detail: 'the cpu backend failed to initialise' };
}

async function loadWebgpu(requested: BackendRequest): Promise<BackendAttempt> {
  const result = await activateWebgpu(requested === 'auto' ? 'auto' : 'webgpu');
  if (!result.ok) return { backend: 'webgpu', ok: false, detail: result.detail, fix: result.fix };
  return {
    backend: 'webgpu',
    ok: true,
    detail: `@tensorflow/tfjs-backend-webgpu on Dawn (webgpu@${dawnVersion()})`,
    device: adapterLine(result.adapter),
  };
}

type Loader = (requested: BackendRequest, threads?: number) => Promise<BackendAttempt>;
const LOADERS: Record<BackendName, Loader> = {
  tensorflow: loadTensorflow,
  webgpu: loadWebgpu,
  wasm: (_, threads) => loadWasm(threads),
  cpu: loadCpu,
};

function deviceOf(name: BackendName, attempt: BackendAttempt): string {
  if (attempt.device) return attempt.device;
  if (name !== 'tensorflow') return 'CPU';
  return attempt.detail.endsWith('-gpu') ? 'GPU (CUDA) where present, else CPU' : 'CPU (libtensorflow)';
}

/** Loads and activates a backend; see the module comment for the rules. */
export async function initBackend(requested: BackendRequest, options: BackendOptions = {}): Promise<BackendChoice> {
  const candidates = requested === 'auto' ? ORDER : [requested];
  const attempts: BackendAttempt[] = [];
  for (const name of candidates) {
    const attempt = await LOADERS[name](requested, options.wasmThreads);
    attempts.push(attempt);
    if (!attempt.ok) continue;
    await tf.ready();
    const skipped = attempts.filter((a) => !a.ok).map((a) => `${a.backend}: ${a.detail}`);
    const reason =
      requested === 'auto'
        ? `auto chose ${name}${skipped.length ? ` (${skipped.join('; ')})` : ' (the first in the order tensorflow → webgpu → wasm → cpu)'}`
        : `${name} was requested`;
    const threads = name === 'wasm' ? (tf.getBackend() === THREADED_WASM ? options.wasmThreads! : 1) : null;
    return { name, requested, reason, detail: attempt.detail, attempts, device: deviceOf(name, attempt), threads };
  }
  const failed = attempts[attempts.length - 1]!;
  throw new FgsmError(`backend ${requested} cannot load: ${failed.detail}`, failed.fix ?? 'try --backend auto');
}

/** What `fgsm doctor` reports: every backend probed in turn (each probe activates it briefly). */
export async function probeBackends(): Promise<{ attempts: BackendAttempt[]; autoWouldUse: BackendName | null }> {
  const attempts: BackendAttempt[] = [];
  for (const name of ORDER) attempts.push(await LOADERS[name]('auto'));
  return { attempts, autoWouldUse: attempts.find((a) => a.ok)?.backend ?? null };
}

export function installedTfjsVersions(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const versions: Record<string, string> = { '@tensorflow/tfjs-core': tf.version_core };
  for (const name of [
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-backend-webgpu',
    'webgpu',
    ...NODE_PACKAGES,
  ]) {
    try {
      versions[name] = (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      // not installed: absent from the record
    }
  }
  return versions;
}
