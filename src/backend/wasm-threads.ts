import * as tf from '@tensorflow/tfjs-core';
import { BackendWasm, getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';

/** The tfjs backend name the threaded build registers under (the stock single-thread one stays "wasm"). */
export const THREADED_WASM = 'wasm-threads';

const require = createRequire(import.meta.url);
let activeThreads: number | null = null;

interface EmscriptenModule {
  cwrap(name: string, returns: string | null, args: string[]): (...args: number[]) => number;
  PThread: { runningWorkers: { unref(): void }[] };
  tfjs?: unknown;
}
type Factory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;

/** The part of the WebAssembly global used here (this project compiles without the DOM typings). */
interface WebAssemblyApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => { buffer: ArrayBufferLike };
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: unknown; module: unknown }>;
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/** Why this Node cannot run the threaded build, or null when it can. */
function unsupported(): string | null {
  try {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return memory.buffer instanceof SharedArrayBuffer ? null : 'WebAssembly shared memory is not available';
  } catch (error) {
    return `WebAssembly threads are not available (${(error as Error).message})`;
  }
}

/**
 * The emscripten pthread worker as a real file. tfjs hands it to the build as a blob: URL, which browsers run
 * and Node's worker_threads cannot. Named by content, so processes share it and a stale one is never used.
 */
function workerFile(packageDir: string, version: string): string {
  const { wasmWorkerContents } = require(join(packageDir, 'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  // the module holds the worker as a template string whose "\n" escapes became newlines; tfjs re-escapes them too
  const source = wasmWorkerContents.replace(/\n/g, '\\n');
  const file = join(tmpdir(), `fgsm-tfjs-wasm-${version}-pthread-worker-${source.length}.cjs`);
  writeFileAtomic(file, source);
  return file;
}

/**
 * Activates tfjs-backend-wasm's multithreaded SIMD build with `threads` XNNPACK threads, registered as
 * backend "wasm-threads" with the stock wasm kernels. tfjs 4.22 never uses this build in Node (its flag
 * WASM_HAS_MULTITHREAD_SUPPORT is false there, tensorflow/tfjs#3830); three things make it work:
 * - the pthread worker is loaded from a real file (see workerFile);
 * - tfjs caps its thread pool at half the logical cores it is told of (it assumes hyper-threading), so the
 *   build is told of 2 × threads cores;
 * - the pool's workers are unref'd: they wait forever for work and would otherwise keep the process alive.
 * Throws with the reason when it cannot; the caller falls back or reports.
 */
export async function activateThreadedWasm(threads: number): Promise<void> {
  if (activeThreads !== null) {
    // one build per process: its pool is fixed when it starts
    if (activeThreads !== threads) throw new Error(`this process already runs the threaded build with ${activeThreads} threads`);
    if (!(await tf.setBackend(THREADED_WASM))) throw new Error('the threaded wasm backend failed to initialise');
    return;
  }
  const reason = unsupported();
  if (reason) throw new Error(reason);
  const packageDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const version = (require(join(packageDir, 'package.json')) as { version: string }).version;
  const buildDir = join(packageDir, 'wasm-out');
  const factoryFile = join(buildDir, 'tfjs-backend-wasm-threaded-simd.js');
  const factory = require(factoryFile) as Factory;
  const worker = workerFile(packageDir, version);
  const module = await factory({
    locateFile: (file: string) => (file.endsWith('.worker.js') ? worker : join(buildDir, file)),
    // each worker evaluates this file to get the factory (a path, not tfjs's Blob)
    mainScriptUrlOrBlob: factoryFile,
    instantiateWasm: (imports: { env: Record<string, unknown> }, receive: (instance: unknown, module: unknown) => void): Record<string, never> => {
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      void WebAssembly.instantiate(readFileSync(join(buildDir, 'tfjs-backend-wasm-threaded-simd.wasm')), imports).then((result) =>
        receive(result.instance, result.module),
      );
      return {};
    },
  });
  // the bridge tfjs's own init() builds (backend_wasm.js)
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  setThreadsCount(threads);
  const backend = new BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
  for (const running of module.PThread.runningWorkers) running.unref();
  if (getThreadsCount() !== threads) throw new Error(`asked for ${threads} threads, the build started ${getThreadsCount()}`);
  activeThreads = threads;
  tf.registerBackend(THREADED_WASM, () => backend);
  for (const kernel of tf.getKernelsForBackend('wasm')) tf.registerKernel({ ...kernel, backendName: THREADED_WASM });
  if (!(await tf.setBackend(THREADED_WASM))) throw new Error('the threaded wasm backend failed to initialise');
}
