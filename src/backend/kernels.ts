import * as tf from '@tensorflow/tfjs-core';

/*
 * The operations whose best form depends on the backend (DESIGN.md, "Kernels per backend"): models call these
 * and never ask which backend runs.
 */

/**
 * On the pieces at their unit's maximum (`atMax`, [n, pieces, units], 1 or 0), keeps only the last piece of each
 * tie: pylearn2 computed a unit as p = T.maximum(cur, p) over the pieces in order, and Theano's maximum gives the
 * gradient of a tie to its first argument, so the last tied piece takes it all. Ties are rare but real (exact
 * float equality, a few per epoch on MNIST), so they are found with one vectorised count and fixed on the host: cheap where
 * a read is (wasm, cpu, tensorflow).
 */
function lastTiedPieceOnHost(atMax: tf.Tensor3D): tf.Tensor3D {
  const [n, pieces, units] = atMax.shape;
  const mostAtMax = tf.tidy(
    () => tf.max(tf.avgPool(tf.reshape(atMax, [n, 1, pieces, units]) as tf.Tensor4D, [1, pieces], [1, pieces], 'valid')).dataSync()[0]!,
  );
  if (mostAtMax * pieces < 1.5) return atMax;
  const mask = atMax.dataSync().slice();
  for (let i = 0; i < n; i++) {
    for (let u = 0; u < units; u++) {
      let last = -1;
      for (let p = 0; p < pieces; p++) {
        const at = (i * pieces + p) * units + u;
        if (mask[at] === 0) continue;
        if (last >= 0) mask[last] = 0;
        last = at;
      }
    }
  }
  return tf.tensor3d(mask, [n, pieces, units]);
}

/**
 * The same mask without reading back: pieces at the maximum are numbered 1..pieces in order, and the one with
 * the largest number is the last (small integers, exact in float32). WebGPU in Node cannot read a tensor
 * synchronously at all, and a GPU would stall on the read. (Not a reverse tf.cumsum: tfjs-backend-webgpu 4.22
 * caches its shader under a key without the axis length, and reuses one compiled for another piece count.)
 */
function lastTiedPieceOnDevice(atMax: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const numbered = tf.mul(atMax, tf.reshape(tf.range(1, atMax.shape[1] + 1), [1, atMax.shape[1], 1]));
    return tf.cast(tf.equal(numbered, tf.max(numbered, 1, true)), 'float32') as tf.Tensor3D;
  });
}

/**
 * On the pieces at their unit's maximum (`atMax`, [n, pieces, units], 1 or 0), keeps only the last piece of
 * each tie, as pylearn2 did (see lastTiedPieceOnHost).
 */
export function lastTiedPiece(atMax: tf.Tensor3D): tf.Tensor3D {
  return tf.getBackend() === 'webgpu' ? lastTiedPieceOnDevice(atMax) : lastTiedPieceOnHost(atMax);
}
