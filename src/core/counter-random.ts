/**
 * A counter-based generator: Threefry-2x32 with 20 rounds (Salmon, Moraes, Dror & Shaw, "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011; the generator JAX uses). Each value is a pure function of a key and a counter, so a
 * GPU thread draws the value of its own element with no state and no order, and this TypeScript draws the same
 * bits (src/engine/kernels/threefry.ts is the WGSL twin; a test holds them equal).
 */

const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24];
const PARITY = 0x1bd11bda;

/** Threefry-2x32-20 of counter (c0, c1) under key (k0, k1): two 32-bit words. */
export function threefry2x32(k0: number, k1: number, c0: number, c1: number): [number, number] {
  const ks = [k0 >>> 0, k1 >>> 0, (PARITY ^ k0 ^ k1) >>> 0];
  let x0 = (c0 + ks[0]!) >>> 0;
  let x1 = (c1 + ks[1]!) >>> 0;
  for (let round = 0; round < 20; round++) {
    x0 = (x0 + x1) >>> 0;
    const r = ROTATIONS[round % 8]!;
    x1 = ((x1 << r) | (x1 >>> (32 - r))) >>> 0;
    x1 = (x1 ^ x0) >>> 0;
    if (round % 4 === 3) {
      const s = (round + 1) / 4;
      x0 = (x0 + ks[s % 3]!) >>> 0;
      x1 = (x1 + ks[(s + 1) % 3]! + s) >>> 0;
    }
  }
  return [x0, x1];
}

/**
 * The dropout draw of dropout stream threefry-v1: the element (row, column) of layer `layer`'s mask under the
 * step's `seed` is kept when the top 24 bits of Threefry(key (seed, layer), counter (row, column)) fall under
 * keep · 2²⁴ (keep = 1 keeps all; 0.5 is exact). Rows count within one network's minibatch, so the rows of
 * [x; x̃] that hold x get the masks a pass over x alone would.
 */
export function dropoutThreshold(keep: number): number {
  return Math.floor(keep * 2 ** 24);
}

/** A rows × width mask of layer `layer` under `seed`: `scale` where kept, 0 elsewhere (threefry-v1). */
export function counterDropoutMask(rows: number, width: number, keep: number, scale: number, seed: number, layer: number): Float32Array {
  const threshold = dropoutThreshold(keep);
  const out = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < width; column++) {
      out[row * width + column] = threefry2x32(seed, layer, row, column)[0] >>> 8 < threshold ? scale : 0;
    }
  }
  return out;
}

/**
 * The key word of the noise controls' draw under threefry-v1. The dropout draw keys Threefry with (seed, layer),
 * layer 0 for the input and i + 1 for hidden layer i, so the largest u32, which no network's layers reach, keeps a
 * step's noise independent of every mask drawn under the same seed.
 */
export const NOISE_KEY = 0xffffffff;

export type NoiseDistribution = 'sign' | 'uniform';

/**
 * §6's noise controls under threefry-v1: the rows × width noise of one network's minibatch under its step's dropout
 * `seed`. With b the top 24 bits of Threefry(key (seed, NOISE_KEY), counter (row, column)), sign gives +ε where
 * b < 2²³ and −ε elsewhere; uniform gives ε·(2u − 1) with u = b·2⁻²⁴, in float32: 2u − 1 is exact there, so the
 * product rounds once, as the engine's kernel rounds it, and x + noise once more on either side.
 */
export function counterNoise(rows: number, width: number, distribution: NoiseDistribution, epsilon: number, seed: number): Float32Array {
  const e = Math.fround(epsilon);
  const out = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < width; column++) {
      const bits = threefry2x32(seed, NOISE_KEY, row, column)[0] >>> 8;
      out[row * width + column] = distribution === 'sign' ? (bits < 2 ** 23 ? e : -e) : Math.fround(e * (bits * 2 ** -23 - 1));
    }
  }
  return out;
}
