import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { FgsmError } from '../core/errors.js';
import { damagedFile, readJsonState, readStateFile } from '../core/fs-errors.js';
import { digest } from '../data/verify.js';
import { buildModel } from './build.js';
import type { Classifier, ModelSpec } from './classifier.js';

/**
 * Models are saved in TensorFlow.js's weights format: `model.json` holds the spec and a standard
 * `weightsManifest` ({paths, weights: [{name, shape, dtype}]}), `weights.bin` the float32 data, so
 * tf.io.decodeWeights (or any tfjs weights loader) reads them back.
 */
export const MODEL_FORMAT = 'fgsm-model/1';

export async function encodeTensors(named: Record<string, tf.Tensor>): Promise<{ specs: tf.io.WeightsManifestEntry[]; data: Uint8Array }> {
  const { data, specs } = await tf.io.encodeWeights(named);
  const buffer = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
  return { specs, data: new Uint8Array(buffer) };
}

export function decodeTensors(data: Uint8Array, specs: tf.io.WeightsManifestEntry[]): Record<string, tf.Tensor> {
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  return tf.io.decodeWeights(buffer, specs);
}

export function namedParameters(model: Classifier): Record<string, tf.Tensor> {
  return Object.fromEntries(model.parameters.map((p) => [p.name, p.variable]));
}

/** Assigns `values` (by parameter name) to the model's parameters; every parameter must be present. */
export function assignParameters(model: Classifier, values: Record<string, tf.Tensor>, origin: string): void {
  for (const p of model.parameters) {
    const value = values[p.name];
    if (!value || value.shape.join() !== p.variable.shape.join()) {
      throw new FgsmError(`${origin}: parameter ${p.name} ${value ? `has shape [${value.shape}]` : 'is missing'}, expected [${p.variable.shape}]`);
    }
    p.variable.assign(value);
  }
}

export async function saveModel(dir: string, model: Classifier): Promise<void> {
  const { specs, data } = await encodeTensors(namedParameters(model));
  writeFileAtomic(join(dir, 'weights.bin'), data);
  writeJsonAtomic(join(dir, 'model.json'), {
    format: MODEL_FORMAT,
    spec: model.spec,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    weightsSha256: digest('sha256', data),
  });
}

interface ModelManifest {
  format?: string;
  spec: ModelSpec;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  /** Absent in models saved before it was recorded. */
  weightsSha256?: string;
}

/** The manifest and weights of the model saved in `dir`, checked; a missing or damaged file is an error naming it. */
function readSaved(dir: string): { path: string; manifest: ModelManifest; weights: Buffer } {
  const path = join(dir, 'model.json');
  const fix = `restore ${dir} from a copy, or train the model again (\`fgsm run\` with --fresh starts a separate run)`;
  const manifest = readJsonState(path, fix) as ModelManifest | null;
  if (manifest === null) throw new FgsmError(`${path}: no saved model there`, fix);
  if (typeof manifest !== 'object' || Array.isArray(manifest)) throw damagedFile(path, 'not a saved model (expected a JSON object)', fix);
  if (manifest.format !== MODEL_FORMAT) throw new FgsmError(`${path}: format ${String(manifest.format)}, expected ${MODEL_FORMAT}`, fix);
  const group = manifest.weightsManifest?.[0];
  if (!group || !Array.isArray(group.paths) || typeof group.paths[0] !== 'string' || !Array.isArray(group.weights) || !manifest.spec)
    throw damagedFile(path, 'not a complete saved model (expected spec and weightsManifest)', fix);
  const weightsPath = join(dir, group.paths[0]);
  const weights = readStateFile(weightsPath, fix);
  if (weights === null) throw new FgsmError(`${weightsPath}: missing (the weights of ${path})`, fix);
  if (manifest.weightsSha256 !== undefined && digest('sha256', weights) !== manifest.weightsSha256)
    throw damagedFile(weightsPath, 'it does not match the checksum in model.json', fix);
  const bytes = group.weights.reduce((sum, w) => sum + 4 * w.shape.reduce((n, d) => n * d, 1), 0);
  if (weights.byteLength !== bytes) throw damagedFile(weightsPath, `${weights.byteLength} bytes, model.json describes ${bytes}`, fix);
  return { path, manifest, weights };
}

export function loadModel(dir: string): Classifier {
  const { path, manifest, weights } = readSaved(dir);
  const values = decodeTensors(weights, manifest.weightsManifest[0]!.weights);
  // maxout models saved before the sigmoid top (or its sigmoidLoss, or the dropout stream) existed have no `top`
  // (theirs was the softmax), no `sigmoidLoss` (theirs was the sum) or no `dropout.stream` (theirs was sfc32-rows)
  const spec =
    manifest.spec.kind === 'maxout'
      ? {
          ...manifest.spec,
          top: manifest.spec.top ?? 'softmax',
          sigmoidLoss: manifest.spec.sigmoidLoss ?? 'sum',
          dropout: manifest.spec.dropout && { ...manifest.spec.dropout, stream: manifest.spec.dropout.stream ?? 'sfc32-rows' },
        }
      : manifest.spec;
  const model = buildModel(spec, 0, 0);
  assignParameters(model, values, path);
  tf.dispose(Object.values(values));
  return model;
}
