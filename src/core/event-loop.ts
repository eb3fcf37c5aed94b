import { InterruptedError } from './errors.js';

/**
 * Lets the event loop turn (a signal's handler, timers) without reading from the device. On wasm tfjs's reads
 * resolve as microtasks, so a loop of steps and reads would otherwise never yield until it ends.
 */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Yields (see yieldToEventLoop), then throws InterruptedError(`message`) if `signal` has been aborted meanwhile. */
export async function stopIfAborted(signal: AbortSignal | undefined, message: string): Promise<void> {
  await yieldToEventLoop();
  if (signal?.aborted) throw new InterruptedError(message);
}
