import { IMAGE_SIZE } from './mnist-files.js';
import type { Split } from './dataset.js';

export interface Batch {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

/**
 * The rows `order[start..end)` of a split, copied into one contiguous buffer. Batches are built from
 * typed arrays rather than sliced out of one big tensor: on wasm each tf.slice copied the whole source.
 */
export function gatherBatch(split: Split, order: Int32Array, start: number, end: number): Batch {
  const n = end - start;
  const x = new Float32Array(n * IMAGE_SIZE);
  const y = new Int32Array(n);
  for (let row = 0; row < n; row++) {
    const source = order[start + row]!;
    x.set(split.x.subarray(source * IMAGE_SIZE, (source + 1) * IMAGE_SIZE), row * IMAGE_SIZE);
    y[row] = split.y[source]!;
  }
  return { x, y, n };
}
