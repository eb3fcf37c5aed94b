import * as tf from '@tensorflow/tfjs-core';

/*
 * The engine's hold on a WebGPU device: buffers, compute pipelines built once, and one command encoder that
 * records many dispatches (many training steps) before a single submit. It counts what the host does per step,
 * which is what sets the speed of small networks on a fast GPU: dispatches, bytes written from the host,
 * reads back to the host, submits. Tests bound those counts; `npm run bench` reports them.
 */

/** How a kernel sees each of its bindings, in binding order (all in group 0). */
export type Binding =
  /** a uniform buffer bound once (the kernel's shapes and offsets) */
  | 'uniform'
  /** a uniform buffer of STEP_RECORD_BYTES-byte records, one chosen per dispatch by a dynamic offset (per-step constants) */
  | 'step'
  /** a storage buffer the kernel only reads */
  | 'read'
  /** a storage buffer the kernel writes (and may read) */
  | 'write';

export interface Kernel {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly bindings: readonly Binding[];
}

export interface EngineCounters {
  dispatches: number;
  /** Bytes written from the host into device buffers (queue.writeBuffer). */
  uploadedBytes: number;
  /** Device→host reads (each waits for the work queued before it). */
  reads: number;
  submits: number;
  /** Host milliseconds spent recording and submitting training steps (what bounds the step rate on a fast GPU). */
  recordingMilliseconds: number;
}

/**
 * The size of one per-step record: a multiple of the device's uniform-buffer offset alignment (256 bytes on every
 * adapter), room for MAX_LANES lanes of 32 bytes.
 */
export const STEP_RECORD_BYTES = 512;

const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class GpuRuntime {
  readonly counters: EngineCounters = { dispatches: 0, uploadedBytes: 0, reads: 0, submits: 0, recordingMilliseconds: 0 };
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly live = new Set<GPUBuffer>();
  private readonly kernels = new Map<string, Kernel>();

  constructor(readonly device: GPUDevice) {}

  /** The device of tfjs's active webgpu backend: parameters then move between tfjs and the engine on the device. */
  static ofTfjsBackend(): GpuRuntime {
    const backend = tf.backend() as unknown as { device?: GPUDevice };
    if (tf.getBackend() !== 'webgpu' || !backend.device) throw new Error(`the engine runs on the webgpu backend, not ${tf.getBackend()}`);
    return new GpuRuntime(backend.device);
  }

  /** A storage buffer of `bytes` (rounded up to 4), zeroed. */
  buffer(label: string, bytes: number): GPUBuffer {
    const buffer = this.device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: STORAGE() });
    this.live.add(buffer);
    return buffer;
  }

  /** A storage buffer holding `data`. */
  bufferWith(label: string, data: ArrayBufferView): GPUBuffer {
    const buffer = this.buffer(label, data.byteLength);
    this.write(buffer, data);
    return buffer;
  }

  /** A uniform buffer of `bytes`; `data` written into it when given. */
  uniform(label: string, bytes: number, data?: ArrayBufferView): GPUBuffer {
    const buffer = this.device.createBuffer({ label, size: Math.ceil(bytes / 16) * 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.live.add(buffer);
    if (data) this.write(buffer, data);
    return buffer;
  }

  /**
   * Host values into a buffer. queue.writeBuffer lands before the next submit: pending dispatches are submitted
   * first, so that a write never overtakes work recorded before it.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView, offsetBytes = 0): void {
    if (this.encoder) this.submit();
    this.device.queue.writeBuffer(buffer, offsetBytes, data.buffer, data.byteOffset, data.byteLength);
    this.counters.uploadedBytes += data.byteLength;
  }

  /** A compute pipeline for `code` (entry point `main`), built once per name; WGSL errors are thrown with the kernel's name. */
  async kernel(name: string, code: string, bindings: readonly Binding[]): Promise<Kernel> {
    const key = `${name}\n${code}`;
    const cached = this.kernels.get(key);
    if (cached) return cached;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: name, code });
    const layout = this.device.createBindGroupLayout({
      label: name,
      entries: bindings.map((binding, i) => ({
        binding: i,
        visibility: GPUShaderStage.COMPUTE,
        buffer:
          binding === 'step'
            ? { type: 'uniform', hasDynamicOffset: true, minBindingSize: STEP_RECORD_BYTES }
            : { type: binding === 'uniform' ? 'uniform' : binding === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    let pipeline: GPUComputePipeline | null = null;
    let failure: string | null = null;
    try {
      pipeline = await this.device.createComputePipelineAsync({
        label: name,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
      });
    } catch (error) {
      failure = (error as Error).message;
    }
    const scoped = await this.device.popErrorScope();
    if (!pipeline || scoped) {
      const info = await module.getCompilationInfo();
      const messages = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
      throw new Error(`engine kernel ${name}: ${messages || scoped?.message || failure}`);
    }
    const kernel = { name, pipeline, layout, bindings };
    this.kernels.set(key, kernel);
    return kernel;
  }

  /** The bind group of one use of a kernel, built once: buffers in binding order (a step buffer is bound one record at a time). */
  bind(kernel: Kernel, buffers: readonly GPUBuffer[]): GPUBindGroup {
    if (buffers.length !== kernel.bindings.length)
      throw new Error(`${kernel.name}: ${buffers.length} buffers for ${kernel.bindings.length} bindings`);
    const limit = this.device.limits.maxStorageBufferBindingSize;
    buffers.forEach((buffer, i) => {
      const binding = kernel.bindings[i];
      if ((binding === 'read' || binding === 'write') && buffer.size > limit)
        throw new Error(`${kernel.name}: buffer ${buffer.label || i} holds ${buffer.size} bytes, more than this device binds (${limit})`);
    });
    return this.device.createBindGroup({
      label: kernel.name,
      layout: kernel.layout,
      entries: buffers.map((buffer, i) => ({
        binding: i,
        resource: kernel.bindings[i] === 'step' ? { buffer, size: STEP_RECORD_BYTES } : { buffer },
      })),
    });
  }

  /** Records one dispatch; `step` picks the per-step record (kernels with a 'step' binding). */
  dispatch(kernel: Kernel, group: GPUBindGroup, workgroups: readonly [number, number?, number?], step?: number): void {
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(kernel.pipeline);
    const dynamic = kernel.bindings.includes('step');
    if (dynamic && step === undefined) throw new Error(`${kernel.name} needs a step record`);
    this.pass.setBindGroup(0, group, dynamic ? [step! * STEP_RECORD_BYTES] : []);
    const [x, y = 1, z = 1] = workgroups;
    this.pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
  }

  /** Records a copy between buffers (after the dispatches recorded so far). */
  copy(source: GPUBuffer, sourceOffset: number, target: GPUBuffer, targetOffset: number, bytes: number): void {
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(source, sourceOffset, target, targetOffset, bytes);
  }

  /**
   * Runs `work` (recording and submitting; it may start a read) inside error scopes and resolves to its result once
   * the device has judged that work, rejecting with the first validation or out-of-memory error: a command buffer
   * made invalid would otherwise be skipped without a word. The scopes open and close before `checked` returns, so
   * several checked pieces of work may be in flight at once (pipelined) without mixing their scopes.
   */
  checked<T>(what: string, work: () => Promise<T>): Promise<T> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: Promise<T>;
    try {
      result = work();
    } catch (error) {
      result = Promise.reject(error as Error);
    }
    const judged = Promise.all([this.device.popErrorScope(), this.device.popErrorScope()]);
    result.catch(() => undefined); // handled below, once the device has judged the work
    return judged.then(async ([validation, memory]) => {
      const value = await result; // the work's own failure first
      const error = validation ?? memory;
      if (error) throw new Error(`the GPU refused ${what}: ${error.message.split('\n')[0]}`);
      return value;
    });
  }

  /** Sends everything recorded so far to the device (no wait). */
  submit(): void {
    this.endPass();
    if (!this.encoder) return;
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.counters.submits++;
  }

  /** `bytes` of `buffer` from `offset`, once the work queued before has run: the only wait on the device. */
  async read(buffer: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      this.copy(buffer, offset, staging, 0, bytes);
      this.submit();
      this.counters.reads++;
      await staging.mapAsync(GPUMapMode.READ);
      return staging.getMappedRange().slice(0);
    } finally {
      staging.destroy();
    }
  }

  release(buffer: GPUBuffer): void {
    if (this.live.delete(buffer)) buffer.destroy();
  }

  /** Buffers made by this runtime and not yet released: a test's leak check. */
  get liveBuffers(): number {
    return this.live.size;
  }

  /** Releases every buffer (pipelines are kept: they hold no memory worth freeing and are built once). */
  dispose(): void {
    this.submit();
    for (const buffer of this.live) buffer.destroy();
    this.live.clear();
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }
}

/**
 * One use of a kernel, bound once to its buffers and to a uniform of its own (its shapes and offsets): record(step)
 * adds its dispatch with that step's record; dispose releases its uniform, while the buffers it was given stay the
 * caller's.
 */
export class BoundKernel {
  constructor(
    private readonly runtime: GpuRuntime,
    private readonly kernel: Kernel,
    private readonly group: GPUBindGroup,
    private readonly uniform: GPUBuffer,
    readonly grid: readonly [number, number?, number?],
  ) {}

  record(step: number): void {
    this.runtime.dispatch(this.kernel, this.group, this.grid, step);
  }

  dispose(): void {
    this.runtime.release(this.uniform);
  }
}
