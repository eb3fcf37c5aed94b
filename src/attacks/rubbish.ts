import { stream } from '../core/rng.js';

/**
 * Appendix A's "rubbish class" inputs: `samples` draws of N(0, I_dim), which look like no digit at all.
 * Seeded from the experiment's seed through the stream "rubbish".
 */
export function rubbishInputs(samples: number, dim: number, seed: number): Float32Array {
  return stream(seed, 'rubbish').fillNormal(new Float32Array(samples * dim));
}
