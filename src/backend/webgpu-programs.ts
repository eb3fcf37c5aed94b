import * as tf from '@tensorflow/tfjs-core';

/*
 * Fused kernels for the webgpu backend, written against tfjs-backend-webgpu's program interface (a WGSL body the
 * backend wraps with its buffer and uniform declarations; see its ClipProgram). Each replaces a chain of small
 * element-wise kernels with one dispatch, which is what a step costs on a GPU (DESIGN.md, "Kernels per backend").
 * Sizes travel as uniforms, never baked into the shader text: the backend caches a compiled shader by its key and
 * the inputs' ranks, not by their lengths.
 */

interface Uniform {
  type: 'int32' | 'float32';
  data: number[];
}

/** What tfjs-backend-webgpu needs of a program: inputs by name, a flat dispatch over the output, the WGSL body. */
interface FlatProgram {
  variableNames: string[];
  uniforms: string;
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size: true;
  getUserCode(): string;
}

const WORKGROUP = 64;

function flatProgram(shaderKey: string, variableNames: string[], uniforms: string, outputShape: number[], body: string): FlatProgram {
  const size = outputShape.reduce((a, b) => a * b, 1);
  return {
    variableNames,
    uniforms,
    outputShape,
    shaderKey,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${body}
        }
      }`,
  };
}

function run(program: FlatProgram, inputs: tf.Tensor[], uniforms: Uniform[]): tf.Tensor {
  const backend = tf.backend() as unknown as {
    runWebGPUProgram(program: FlatProgram, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms: Uniform[]): tf.TensorInfo;
  };
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(program, inputs, 'float32', uniforms));
}

/**
 * μ·v − η·g in one dispatch (three element-wise kernels otherwise). `momentum` and `rate` hold one value per
 * stacked network (one for a single network); v's elements are grouped by network, `perNetwork` each.
 */
export function fusedMomentumVelocity(velocity: tf.Tensor, gradient: tf.Tensor, momentum: tf.Tensor, rate: tf.Tensor): tf.Tensor {
  const program = flatProgram(
    'fgsm-momentum-velocity',
    ['velocity', 'gradient', 'momentum', 'rate'],
    'perNetwork : i32,',
    velocity.shape,
    `let network = index / uniforms.perNetwork;
          setOutputAtIndex(index, momentum[network] * velocity[index] - rate[network] * gradient[index]);`,
  );
  return run(program, [velocity, gradient, momentum, rate], [{ type: 'int32', data: [velocity.size / momentum.size] }]);
}

/**
 * Per column of w ([in, out], or [networks, in, out]): min(1, maxNorm / ‖column‖₂), shaped to broadcast over w.
 * One dispatch (five kernels otherwise): a thread per column sums its squares.
 */
export function fusedColumnNormScale(w: tf.Tensor, maxNorm: number): tf.Tensor {
  const [rows, columns] = w.shape.slice(-2) as [number, number];
  const program = flatProgram(
    'fgsm-column-norm-scale',
    ['weights'],
    'rows : i32, columns : i32, maxNorm : f32,',
    [...w.shape.slice(0, -2), 1, columns],
    `let network = index / uniforms.columns;
          let first = network * uniforms.rows * uniforms.columns + (index - network * uniforms.columns);
          var sum = 0.0;
          for (var row = 0; row < uniforms.rows; row++) {
            let value = weights[first + row * uniforms.columns];
            sum = sum + value * value;
          }
          setOutputAtIndex(index, min(1.0, uniforms.maxNorm / max(sqrt(sum), 1e-12)));`,
  );
  return run(
    program,
    [w],
    [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [columns] },
      { type: 'float32', data: [maxNorm] },
    ],
  );
}

/**
 * The input gradient of maxout units: each unit's upstream gradient to the piece at its maximum, on a tie to the
 * last such piece (pylearn2's T.maximum chain; see lastTiedPiece in kernels.ts). z [n, pieces × units] with
 * piece p of unit u in column p·units + u, the maxima and dy [n, units]. One dispatch (about nine otherwise):
 * a thread per element of z compares it with its unit's maximum and looks at the later pieces for a tie.
 */
export function fusedMaxoutGradient(z: tf.Tensor, maxima: tf.Tensor, dy: tf.Tensor, pieces: number): tf.Tensor {
  const units = z.shape[1]! / pieces;
  const program = flatProgram(
    'fgsm-maxout-gradient',
    ['preActivations', 'maxima', 'upstream'],
    'units : i32, pieces : i32,',
    z.shape,
    `let width = uniforms.units * uniforms.pieces;
          let row = index / width;
          let piece = (index - row * width) / uniforms.units;
          let unit = index - row * width - piece * uniforms.units;
          let top = maxima[row * uniforms.units + unit];
          var gradient = 0.0;
          if (preActivations[index] == top) {
            gradient = upstream[row * uniforms.units + unit];
            for (var later = piece + 1; later < uniforms.pieces; later++) {
              if (preActivations[row * width + later * uniforms.units + unit] == top) {
                gradient = 0.0;
              }
            }
          }
          setOutputAtIndex(index, gradient);`,
  );
  return run(
    program,
    [z, maxima, dy],
    [
      { type: 'int32', data: [units] },
      { type: 'int32', data: [pieces] },
    ],
  );
}
