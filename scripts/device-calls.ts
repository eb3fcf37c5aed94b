/**
 * What the host asks of a WebGPU device, counted by wrapping the device's own methods: whoever drives it (tfjs's
 * webgpu backend, the engine) is counted alike. Dispatches, bytes written from the host (queue.writeBuffer and
 * buffers mapped at creation, tfjs's staging uploads), reads (buffers mapped for reading: every GPUBuffer's
 * mapAsync, as tfjs reuses its staging buffers) and submits.
 */
export interface DeviceCalls {
  dispatches: number;
  uploadedBytes: number;
  uploads: number;
  reads: number;
  submits: number;
}

export function countDeviceCalls(device: GPUDevice): { counts: DeviceCalls; restore: () => void } {
  const counts: DeviceCalls = { dispatches: 0, uploadedBytes: 0, uploads: 0, reads: 0, submits: 0 };
  const queue = device.queue;
  const originals = {
    createCommandEncoder: device.createCommandEncoder,
    createBuffer: device.createBuffer,
    writeBuffer: queue.writeBuffer,
    submit: queue.submit,
    mapAsync: GPUBuffer.prototype.mapAsync,
  };
  GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, mode: GPUMapModeFlags, offset?: number, size?: number) {
    if (mode & GPUMapMode.READ) counts.reads++;
    return originals.mapAsync.call(this, mode, offset, size);
  };
  device.createCommandEncoder = function (descriptor?: GPUCommandEncoderDescriptor) {
    const encoder = originals.createCommandEncoder.call(device, descriptor);
    const beginComputePass = encoder.beginComputePass.bind(encoder);
    encoder.beginComputePass = (passDescriptor?: GPUComputePassDescriptor) => {
      const pass = beginComputePass(passDescriptor);
      const dispatch = pass.dispatchWorkgroups.bind(pass);
      pass.dispatchWorkgroups = (x: number, y?: number, z?: number) => {
        counts.dispatches++;
        dispatch(x, y, z);
      };
      return pass;
    };
    return encoder;
  };
  device.createBuffer = function (descriptor: GPUBufferDescriptor) {
    const buffer = originals.createBuffer.call(device, descriptor);
    if (descriptor.mappedAtCreation && descriptor.usage & GPUBufferUsage.COPY_SRC) {
      counts.uploads++;
      counts.uploadedBytes += descriptor.size;
    }
    return buffer;
  };
  queue.writeBuffer = function (
    buffer: GPUBuffer,
    offset: number,
    data: ArrayBuffer | ArrayBufferView | SharedArrayBuffer,
    dataOffset?: number,
    size?: number,
  ) {
    counts.uploads++;
    const elementBytes =
      ArrayBuffer.isView(data) && 'BYTES_PER_ELEMENT' in data ? (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT : 1;
    counts.uploadedBytes += size !== undefined ? size * elementBytes : data.byteLength - (dataOffset ?? 0) * elementBytes;
    originals.writeBuffer.call(queue, buffer, offset, data, dataOffset, size);
  } as GPUQueue['writeBuffer'];
  queue.submit = function (buffers: Iterable<GPUCommandBuffer>) {
    counts.submits++;
    originals.submit.call(queue, buffers);
  };
  return {
    counts,
    restore: () => {
      device.createCommandEncoder = originals.createCommandEncoder;
      device.createBuffer = originals.createBuffer;
      queue.writeBuffer = originals.writeBuffer;
      queue.submit = originals.submit;
      GPUBuffer.prototype.mapAsync = originals.mapAsync;
    },
  };
}
