import * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '../models/classifier.js';
import type { GpuRuntime } from './runtime.js';

/** One layer's place in a lane's packed block: W (inputs × columns, row-major) then b (one row). */
export interface PackedLayer {
  inputs: number;
  columns: number;
  /** Element offset of W inside a lane's block; b follows at offset + inputs · columns. */
  offset: number;
}

/** Where a model parameter (the one of `layer` and `role`) lies in a lane's block: `floats` values from `within`. */
export interface ParameterSlot {
  layer: number;
  role: Parameter['role'];
  within: number;
  floats: number;
}

/**
 * The engine's layout of a network's parameters: per lane one block of every layer's [W; b] in order, a layer
 * being the (inputs + 1) × columns matrix whose last row is the bias, so that one GEMM over [A, 1] makes both its
 * outputs and its gradients. Gradients and velocities use the same layout. Each layer's W and b are its model
 * parameters of role weight and bias, unless `slots` places the parameters otherwise (the RBF network's).
 */
export class PackedLayout {
  readonly layers: PackedLayer[];
  readonly laneFloats: number;
  readonly slots: readonly ParameterSlot[];

  constructor(shapes: readonly { inputs: number; columns: number }[], slots?: readonly ParameterSlot[]) {
    let offset = 0;
    this.layers = shapes.map(({ inputs, columns }) => {
      const layer = { inputs, columns, offset };
      offset += (inputs + 1) * columns;
      return layer;
    });
    this.laneFloats = offset;
    this.slots =
      slots ??
      this.layers.flatMap((layer, j) => [
        { layer: j + 1, role: 'weight' as const, within: layer.offset, floats: layer.inputs * layer.columns },
        { layer: j + 1, role: 'bias' as const, within: layer.offset + layer.inputs * layer.columns, floats: layer.columns },
      ]);
  }

  /**
   * Records copies of tfjs tensors (each model parameter, or its velocity, by the parameter's name) into `packed`,
   * on the device: no host round trip. tfjs submits its pending work first (readToGPU), so the copies see every
   * update tfjs made.
   */
  copyIn(runtime: GpuRuntime, parameters: readonly Parameter[], valueOf: (p: Parameter) => tf.Tensor, packed: GPUBuffer, lanes: number): void {
    const refs: tf.Tensor[] = [];
    const backend = tf.backend() as unknown as { uploadToGPU(dataId: object): void };
    for (const { layer, role, within, floats } of this.slots) {
      const tensor = valueOf(parameterOf(parameters, layer, role));
      backend.uploadToGPU(tensor.dataId); // a tensor made from host values lives on the host until first used
      const { buffer, tensorRef } = tensor.dataToGPU();
      refs.push(tensorRef);
      for (let lane = 0; lane < lanes; lane++) runtime.copy(buffer!, lane * floats * 4, packed, (lane * this.laneFloats + within) * 4, floats * 4);
    }
    runtime.submit();
    tf.dispose(refs);
  }

  /** The reverse of copyIn: each tensor of `parameters` (or their velocities) assigned from `packed`, on the device. */
  copyOut(runtime: GpuRuntime, parameters: readonly Parameter[], variableOf: (p: Parameter) => tf.Variable, packed: GPUBuffer, lanes: number): void {
    const scratch: { variable: tf.Variable; buffer: GPUBuffer }[] = [];
    for (const { layer, role, within, floats } of this.slots) {
      const variable = variableOf(parameterOf(parameters, layer, role));
      const buffer = runtime.buffer(`${variable.name} out`, lanes * floats * 4);
      for (let lane = 0; lane < lanes; lane++) runtime.copy(packed, (lane * this.laneFloats + within) * 4, buffer, lane * floats * 4, floats * 4);
      scratch.push({ variable, buffer });
    }
    runtime.submit();
    for (const { variable, buffer } of scratch) {
      // tfjs copies the buffer into one of its own and submits the copy at once: the buffer may go after it
      const value = tf.tensor({ buffer }, variable.shape, 'float32');
      variable.assign(value);
      value.dispose();
    }
    for (const { buffer } of scratch) runtime.release(buffer);
  }
}

function parameterOf(parameters: readonly Parameter[], layer: number, role: Parameter['role']): Parameter {
  const found = parameters.find((p) => p.layer === layer && p.role === role);
  if (!found) throw new Error(`the network has no ${role} in layer ${layer}`);
  return found;
}
