import { NOISE_KEY } from '../../core/counter-random.js';

/**
 * Threefry-2x32-20 and the draws of stream threefry-v1 in WGSL (the dropout masks, the noise controls' noise): the
 * twin of src/core/counter-random.ts, bit for bit (a test holds them equal on the device). Kernels include this text
 * and call dropoutKept, signNoise or uniformNoise.
 */
export const THREEFRY_WGSL = /* wgsl */ `
fn threefryRotate(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }

fn threefry2x32(key: vec2<u32>, counter: vec2<u32>) -> vec2<u32> {
  let rotations = array<u32, 8>(13u, 15u, 26u, 6u, 17u, 29u, 16u, 24u);
  let ks = array<u32, 3>(key.x, key.y, 0x1bd11bdau ^ key.x ^ key.y);
  var x0 = counter.x + ks[0];
  var x1 = counter.y + ks[1];
  for (var round = 0u; round < 20u; round++) {
    x0 = x0 + x1;
    x1 = threefryRotate(x1, rotations[round % 8u]);
    x1 = x1 ^ x0;
    if (round % 4u == 3u) {
      let s = (round + 1u) / 4u;
      x0 = x0 + ks[s % 3u];
      x1 = x1 + ks[(s + 1u) % 3u] + s;
    }
  }
  return vec2<u32>(x0, x1);
}

// kept when the top 24 bits fall under threshold = floor(keep · 2^24)
fn dropoutKept(seed: u32, layer: u32, row: u32, column: u32, threshold: u32) -> bool {
  return (threefry2x32(vec2<u32>(seed, layer), vec2<u32>(row, column)).x >> 8u) < threshold;
}

// the top 24 bits of the noise element (row, column) under the step's seed, keyed by NOISE_KEY where masks key a layer
fn noiseBits(seed: u32, row: u32, column: u32) -> u32 {
  return threefry2x32(vec2<u32>(seed, ${NOISE_KEY}u), vec2<u32>(row, column)).x >> 8u;
}

fn signNoise(seed: u32, row: u32, column: u32, epsilon: f32) -> f32 {
  return select(-epsilon, epsilon, noiseBits(seed, row, column) < 0x800000u);
}

// ε·(2u − 1), u = bits·2^-24: 2u − 1 is exact, the product rounds once. Its bits pass through an xor with
// opaqueZero (0, from a uniform, so unknown to the compiler): a compiler may fuse a product and the sum it feeds into
// one FMA, which rounds once where TypeScript and tfjs round twice, but not across an integer operation.
fn uniformNoise(seed: u32, row: u32, column: u32, epsilon: f32, opaqueZero: u32) -> f32 {
  let product = epsilon * (f32(noiseBits(seed, row, column)) * 0x1p-23f - 1.0);
  return bitcast<f32>(bitcast<u32>(product) ^ opaqueZero);
}
`;
