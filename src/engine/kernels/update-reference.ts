import type { LaneStep } from './step-record.js';
import type { UpdateShape } from './update.js';

/*
 * The update kernel's results in plain float64 (the step record's learning rate and momentum as the float32 values
 * it holds): MomentumSgd.apply then max-norm or the clamp at 0, as update.ts describes.
 */

const sign = (x: number) => (x > 0 ? 1 : x < 0 ? -1 : 0);

/** New parameters and velocities after one step of each active lane (inactive lanes' blocks are copied through). */
export function updateReference(
  shape: UpdateShape,
  parameters: ArrayLike<number>,
  gradients: ArrayLike<number>,
  velocities: ArrayLike<number>,
  lanes: readonly Pick<LaneStep, 'active' | 'learningRate' | 'momentum'>[],
): { parameters: Float64Array; velocities: Float64Array } {
  const theta = Float64Array.from(parameters);
  const v = Float64Array.from(velocities);
  const { weightDecay, l1FirstLayer } = shape.penalties;
  lanes.forEach((laneStep, lane) => {
    if (!laneStep.active) return;
    const [rate, momentum] = [Math.fround(laneStep.learningRate), Math.fround(laneStep.momentum)];
    shape.layers.forEach((layer, j) => {
      for (let col = 0; col < layer.columns; col++) {
        const first = lane * shape.laneFloats + layer.offset + col;
        let squares = 0;
        for (let row = 0; row <= layer.inputs; row++) {
          const at = first + row * layer.columns;
          const weight = row < layer.inputs;
          const decayed = j < (shape.decayedLayers ?? shape.layers.length);
          const g = gradients[at]! + (weight ? (decayed ? weightDecay * theta[at]! : 0) + (j === 0 ? l1FirstLayer * sign(theta[at]!) : 0) : 0);
          v[at] = momentum * v[at]! - rate * g;
          theta[at] = theta[at]! + v[at]!;
          if (weight && j === 0 && shape.nonNegativeFirstLayer) theta[at] = Math.max(theta[at]!, 0);
          if (weight) squares += theta[at]! ** 2;
        }
        if (shape.maxColumnNorm === null) continue;
        const scale = Math.min(1, shape.maxColumnNorm / Math.max(Math.sqrt(squares), 1e-12));
        for (let row = 0; row < layer.inputs; row++) theta[first + row * layer.columns] *= scale;
      }
    });
  });
  return { parameters: theta, velocities: v };
}
