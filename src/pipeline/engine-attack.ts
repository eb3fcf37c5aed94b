import * as tf from '@tensorflow/tfjs-core';
import type { AttackConfig } from '../config/schema.js';
import type { Progress } from '../core/progress.js';
import type { Split } from '../data/dataset.js';
import type { TrainingEngine } from '../engine/training-engine.js';
import { ResidentFgsm, residentFgsmSupport } from '../engine/resident-fgsm.js';
import { GpuRuntime } from '../engine/runtime.js';
import type { NamedModel } from '../eval/transfer.js';
import type { Classifier, ModelSpec } from '../models/classifier.js';

/** The test set's attack on the WebGPU engine, and how to let it go once the evaluation is done. */
export interface EngineAttack {
  attack: ResidentFgsm;
  release(): void;
}

/**
 * The attack of an evaluation on the WebGPU engine wherever the webgpu backend runs and the engine runs this attack
 * (whichever path trained the model: the attacks draw no dropout); the training engine's own where there is one, so
 * that its seeds share the resident test set. A line says which path attacks, and why not the engine.
 */
export async function engineAttack(
  spec: ModelSpec,
  attack: AttackConfig,
  test: Split,
  progress: Progress,
  {
    trainingEngine = null,
    purpose = 'evaluation',
    runtime = null,
  }: { trainingEngine?: TrainingEngine | null; purpose?: string; runtime?: GpuRuntime | null } = {},
): Promise<EngineAttack | null> {
  if (tf.getBackend() !== 'webgpu') return null;
  const notHere = (why: string): null => {
    progress.line(`${purpose}: tfjs's webgpu ops (the WebGPU engine does not run this attack: ${why})`);
    return null;
  };
  const unsupported = residentFgsmSupport(spec, attack);
  if (unsupported) return notHere(unsupported);
  runtime ??= GpuRuntime.ofTfjsBackend();
  const tooLarge = ResidentFgsm.cannotHold(runtime, spec, test, attack.epsilons.length);
  if (tooLarge) return notHere(tooLarge);
  const how = attack.method === 'fgsm' ? 'one gradient per batch for every ε' : `${attack.steps} steps per ε`;
  progress.line(`${purpose}: ${attack.method.toUpperCase()} on the WebGPU engine (test set resident, ${how})`);
  if (trainingEngine) return { attack: await trainingEngine.residentFgsm(test), release: () => {} };
  const own = await ResidentFgsm.create(runtime, spec, test);
  return { attack: own, release: () => own.dispose() };
}

/**
 * The engines of `models` over one test set, each as engineAttack makes it (null where it does not), and one release
 * for all. They share one runtime, so that work recorded on one is ordered with the others' (an ensemble's gradient
 * runs across its members' engines, EnsembleFgsm).
 */
export async function engineAttacks(
  models: readonly NamedModel[],
  attack: AttackConfig,
  test: Split,
  progress: Progress,
  purpose: string,
): Promise<{ engines: Map<Classifier, ResidentFgsm>; release(): void }> {
  const engines = new Map<Classifier, ResidentFgsm>();
  const made: EngineAttack[] = [];
  const release = () => {
    for (const engine of made.splice(0)) engine.release();
  };
  const runtime = tf.getBackend() === 'webgpu' ? GpuRuntime.ofTfjsBackend() : null;
  try {
    for (const { name, model } of models) {
      const engine = await engineAttack(model.spec, attack, test, progress, { purpose: `${purpose}: ${name}`, runtime });
      if (!engine) continue;
      made.push(engine);
      engines.set(model, engine.attack);
    }
  } catch (error) {
    release();
    throw error;
  }
  return { engines, release };
}
