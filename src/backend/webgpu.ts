import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/**
 * The webgpu backend: @tensorflow/tfjs-backend-webgpu on Dawn's Node binding (npm `webgpu`), which runs on
 * Vulkan (Linux, Windows), Metal (macOS) or D3D12 (Windows). `auto` takes a hardware adapter (whole runs work:
 * every read on a run's path is asynchronous). A software adapter (Mesa's lavapipe, SwiftShader) is real WebGPU
 * but a CPU, slower than wasm: it runs when asked for by name, never under `auto`.
 */

/** What a result records about the adapter: enough to tell two GPUs, or two drivers of one GPU, apart. */
export interface WebgpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  /** The driver: Dawn puts its name and version here (e.g. "llvmpipe: Mesa 25.0.7 …", "NVIDIA: 550.54"). */
  description: string;
  software: boolean;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; maxComputeInvocationsPerWorkgroup: number };
}

export type WebgpuProbe = { ok: true; adapter: WebgpuAdapter } | { ok: false; detail: string; fix: string };

const require = createRequire(import.meta.url);
let gpu: GPU | null = null;
/** The adapter the registered backend runs on. */
let registered: WebgpuAdapter | null = null;

/** Where Linux's Vulkan loader would be found (the usual library folders and LD_LIBRARY_PATH); null if absent. */
export function vulkanLoader(): string | null {
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/lib',
  ];
  return dirs.map((dir) => join(dir, 'libvulkan.so.1')).find((path) => existsSync(path)) ?? null;
}

/** The Vulkan drivers (ICD manifests) the loader would consider: file names, e.g. lvp_icd.json, nvidia_icd.json. */
export function vulkanDrivers(): string[] {
  const override = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (override) return override.split(':').filter(Boolean);
  const dirs = ['/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/share/vulkan/icd.d'];
  return dirs.flatMap((dir) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : []));
}

/**
 * Linux's device nodes through which a Vulkan driver reaches a GPU (DRM render nodes for Mesa's AMD and Intel
 * drivers, NVIDIA's own, WSL2's). With none of them no hardware adapter can exist, so `auto` need not ask
 * Dawn, whose probe of a software adapter prints warnings about its limits into every run's output.
 */
function gpuDeviceNodes(): string[] {
  const dri = existsSync('/dev/dri')
    ? readdirSync('/dev/dri')
        .filter((f) => f.startsWith('renderD'))
        .map((f) => `/dev/dri/${f}`)
    : [];
  return [...dri, ...['/dev/nvidia0', '/dev/nvidiactl', '/dev/dxg'].filter((path) => existsSync(path))];
}

const DRIVER_FIX =
  process.platform === 'linux'
    ? 'install the GPU driver with its Vulkan driver (NVIDIA: the proprietary driver; AMD/Intel: mesa-vulkan-drivers) and the Vulkan loader (Debian/Ubuntu: apt install libvulkan1); without a GPU, Mesa 25 lavapipe (bookworm-backports: mesa-vulkan-drivers) runs --backend webgpu on the CPU'
    : process.platform === 'darwin'
      ? 'WebGPU needs Metal: macOS 11 or later on a Mac with a Metal GPU'
      : 'update the GPU driver (WebGPU uses D3D12 or Vulkan)';

/** Why no adapter came, in the words a user can act on. */
function noAdapterReason(): string {
  if (process.platform !== 'linux') return 'Dawn found no WebGPU adapter';
  if (!vulkanLoader()) return 'no Vulkan loader (libvulkan.so.1) is installed';
  const drivers = vulkanDrivers();
  return `the Vulkan loader offers no adapter (Vulkan drivers: ${drivers.length ? drivers.join(', ') : 'none installed'})`;
}

function software(info: GPUAdapterInfo): boolean {
  // isFallbackAdapter is Dawn's own verdict (a CPU device); the names catch drivers that do not say so
  return info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(`${info.device} ${info.description}`);
}

function describeAdapter(adapter: GPUAdapter): WebgpuAdapter {
  const { info, limits } = adapter;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    software: software(info),
    limits: {
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    },
  };
}

/** One line for results and `fgsm doctor`: vendor, architecture, device, driver, and whether it is software. */
export function adapterLine(a: WebgpuAdapter): string {
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ');
  return `WebGPU adapter ${name} (driver: ${a.description || 'not reported'})${a.software ? ', software (CPU)' : ''}`;
}

/**
 * Dawn's GPU object, made once per process. tfjs-backend-webgpu reads the WebGPU globals (GPUBufferUsage, …)
 * and navigator.gpu, as in a browser; Node 20 has no navigator, later Nodes one without gpu.
 */
async function dawn(): Promise<GPU> {
  if (gpu) return gpu;
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  gpu = create([]);
  const holder = globalThis as { navigator?: { gpu?: GPU } };
  if (holder.navigator) Object.defineProperty(holder.navigator, 'gpu', { value: gpu, configurable: true });
  else holder.navigator = { gpu };
  return gpu;
}

/** The adapter Dawn would give tfjs (high-performance: a discrete GPU before an integrated one before a CPU), or why none. */
async function requestAdapter(): Promise<{ adapter: GPUAdapter } | { ok: false; detail: string; fix: string }> {
  try {
    const adapter = await (await dawn()).requestAdapter({ powerPreference: 'high-performance' });
    return adapter ? { adapter } : { ok: false, detail: noAdapterReason(), fix: DRIVER_FIX };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!;
    const missing = /Cannot find (package|module)/.test(message);
    return { ok: false, detail: missing ? 'the webgpu package is not installed' : message, fix: missing ? 'reinstall: npm ci' : DRIVER_FIX };
  }
}

/** The adapter the webgpu backend would run on, without activating it (`fgsm doctor`). */
export async function probeWebgpu(): Promise<WebgpuProbe> {
  const found = await requestAdapter();
  return 'adapter' in found ? { ok: true, adapter: describeAdapter(found.adapter) } : found;
}

/**
 * Registers tfjs's WebGPU backend on `adapter` (the package's own registration would request an adapter of its
 * own; this one is the adapter vetted and recorded). The device asks for the adapter's largest buffers and
 * workgroups, as the package's registration does.
 */
async function register(adapter: GPUAdapter): Promise<void> {
  const Backend = withQueueWriteUploads((await import('@tensorflow/tfjs-backend-webgpu')).WebGPUBackend);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  const factory = async (): Promise<tf.KernelBackend> => {
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
      requiredLimits: {
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
    // tfjs reads synchronously through an OffscreenCanvas, which Node lacks: fgsm reads with data() only (a test keeps it so)
    return new Backend(device, adapter.info);
  };
  tf.registerBackend('webgpu', factory, 0);
}

/**
 * tfjs's WebGPU backend, uploading host values (minibatches, dropout masks, scalars: ~27 a maxout J̃ step) with
 * queue.writeBuffer into a pooled buffer. tfjs creates a mapped staging buffer per upload and copies it in the
 * command encoder; on an H100 machine (Dawn on Vulkan) that cost ~0.3 ms of host time per buffer and made every
 * queue.submit slow (~2.7 ms): maxout J̃ went from 1,942 to 6,061 examples/s with this change (measured 2026-11-27; docs/gpu.md).
 * The write is ordered correctly: a buffer in tfjs's free pool is referenced by no command still being recorded
 * (tfjs frees those at the submit), and writeBuffer runs after every command submitted before it, as tfjs's own
 * uniform buffers rely on.
 */
function withQueueWriteUploads(Base: typeof WebGPUBackend): typeof WebGPUBackend {
  return class QueueWriteUploads extends Base {
    override uploadToGPU(dataId: object): void {
      const data = this.tensorMap.get(dataId);
      if (data.resource != null || data.values == null || data.values.length === 0) return super.uploadToGPU(dataId);
      const values =
        data.values instanceof Float32Array || data.values instanceof Int32Array ? data.values : Int32Array.from(data.values as Uint8Array);
      const buffer = this.bufferManager.acquireBuffer(values.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
      this.queue.writeBuffer(buffer, 0, values);
      data.resource = buffer;
      // as tfjs's own upload does: the values now live on the device only (tfjs types them as always present)
      (data as { values: unknown }).values = null;
    }
  };
}

/**
 * Activates the webgpu backend. `auto` takes a hardware adapter only; asked for by name, a software adapter
 * runs too (and says so). The first adapter activated stays for the process. Returns it, or why not.
 */
export async function activateWebgpu(requested: 'auto' | 'webgpu'): Promise<WebgpuProbe> {
  if (!registered) {
    if (requested === 'auto' && process.platform === 'linux' && gpuDeviceNodes().length === 0) {
      return {
        ok: false,
        detail:
          'no GPU device (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg): auto takes no CPU-emulated GPU, --backend webgpu runs on one if installed',
        fix: DRIVER_FIX,
      };
    }
    const found = await requestAdapter();
    if (!('adapter' in found)) return found;
    const described = describeAdapter(found.adapter);
    if (requested === 'auto' && described.software) return refuseSoftware(described);
    await register(found.adapter);
    registered = described;
  }
  if (requested === 'auto' && registered.software) return refuseSoftware(registered);
  if (!(await tf.setBackend('webgpu'))) return { ok: false, detail: 'the webgpu backend failed to initialise', fix: DRIVER_FIX };
  return { ok: true, adapter: registered };
}

function refuseSoftware(adapter: WebgpuAdapter): WebgpuProbe {
  return {
    ok: false,
    detail: `only a software adapter (${adapter.device || adapter.description}): auto takes no CPU-emulated GPU, --backend webgpu does`,
    fix: DRIVER_FIX,
  };
}

/** The version of Dawn's Node binding installed (the npm package `webgpu`). */
export function dawnVersion(): string {
  return (require('webgpu/package.json') as { version: string }).version;
}

const MiB = (bytes: number): string => `${Math.round(bytes / 2 ** 20)} MiB`;

/** `fgsm doctor`'s webgpu section: the adapter (vendor, architecture, driver, limits) and the Vulkan loader (the fix is the attempt's). */
export async function webgpuDoctorLines(): Promise<string[]> {
  const probe = await probeWebgpu();
  const lines: string[] = [];
  if (probe.ok) {
    const { adapter } = probe;
    lines.push(`${adapterLine(adapter)}${adapter.software ? ': used by --backend webgpu, never by auto' : ''}`);
    lines.push(
      `limits: buffers up to ${MiB(adapter.limits.maxBufferSize)}, storage bindings up to ${MiB(adapter.limits.maxStorageBufferBindingSize)}, ` +
        `${adapter.limits.maxComputeInvocationsPerWorkgroup} invocations per workgroup`,
    );
  } else {
    lines.push(`no adapter: ${probe.detail}`);
  }
  if (process.platform === 'linux') {
    const loader = vulkanLoader();
    const drivers = vulkanDrivers();
    lines.push(`Vulkan loader: ${loader ?? 'not found (libvulkan.so.1)'}; Vulkan drivers: ${drivers.length ? drivers.join(', ') : 'none'}`);
  }
  return lines;
}
