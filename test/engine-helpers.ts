import { initBackend } from '../src/backend/select.js';
import { GpuRuntime } from '../src/engine/runtime.js';

/**
 * The engine's runtime on tfjs's webgpu backend, on whatever adapter is here (Mesa's lavapipe where there is no GPU,
 * as CI installs it). Shapes in engine tests stay small: lavapipe is a CPU.
 */
export async function engineRuntime(): Promise<GpuRuntime> {
  await initBackend('webgpu');
  return GpuRuntime.ofTfjsBackend();
}

/** The largest |a − b| / max(|b|, floor) over two arrays of equal length. */
export function maxRelativeDifference(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  let most = 0;
  for (let i = 0; i < a.length; i++) most = Math.max(most, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return most;
}
