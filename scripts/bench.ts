/**
 * npm run bench: throughput of the paths a reproduction spends its time in, on the backend `auto` picks
 * (or --backend NAME). Softmax training in examples/s (batch 100, the paper recipe's step incl. max-norm), and
 * FGSM generation on the 10,000 MNIST test images in images/s, ours against a straightforward tfjs version
 * (tf.matMul with its default gradient). Data: FGSM_DATA_DIR, else the cache, else the embedded subset.
 */
import * as tf from '@tensorflow/tfjs';
import { fastGradientSign } from '../src/attacks/fgsm.js';
import { initBackend, type BackendRequest } from '../src/backend/select.js';
import { createProgress } from '../src/core/progress.js';
import { makeSplits, type Split } from '../src/data/dataset.js';
import { cacheDir, explicitDataDir, resolveMnist } from '../src/data/source.js';
import { buildModel } from '../src/models/build.js';
import type { Classifier } from '../src/models/classifier.js';
import { train } from '../src/train/loop.js';
import { TrainingSchema, type TrainingConfig } from '../src/config/schema.js';

const quiet = createProgress('quiet');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

function best<T>(runs: number, fn: () => T): { seconds: number; value: T } {
  let seconds = Infinity;
  let value!: T;
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    value = fn();
    seconds = Math.min(seconds, (performance.now() - started) / 1000);
  }
  return { seconds, value };
}

function fgsmImagesPerSecond(model: Classifier, test: Split, batch: number): number {
  const { seconds } = best(3, () => {
    for (let start = 0; start < test.n; start += batch) {
      const end = Math.min(test.n, start + batch);
      tf.tidy(() => {
        const x = tf.tensor2d(test.x.subarray(start * 784, end * 784), [end - start, 784]);
        const result = fastGradientSign(model, x, tf.tensor1d(test.y.subarray(start, end), 'int32'), {
          epsilons: [0.25],
          clip: null,
          labels: 'true',
          target: null,
        });
        result.adversarial[0]!.dataSync();
        return undefined;
      });
    }
  });
  return test.n / seconds;
}

/** The same attack written the straightforward way: tf.matMul, whose gradient uses transposed matMuls. */
function naiveFgsmImagesPerSecond(model: Classifier, test: Split, batch: number): number {
  const [w, b] = model.parameters.map((p) => p.variable);
  const { seconds } = best(3, () => {
    for (let start = 0; start < test.n; start += batch) {
      const end = Math.min(test.n, start + batch);
      tf.tidy(() => {
        const x = tf.tensor2d(test.x.subarray(start * 784, end * 784), [end - start, 784]);
        const y = tf.oneHot(tf.tensor1d(test.y.subarray(start, end), 'int32'), 10);
        const g = tf.grad((input: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(input as tf.Tensor2D, w as tf.Tensor2D), b!)))(x);
        tf.add(x, tf.mul(tf.sign(g), 0.25)).dataSync();
        return undefined;
      });
    }
  });
  return test.n / seconds;
}

async function trainingExamplesPerSecond(model: Classifier, split: Split, epochs: number): Promise<number> {
  const config: TrainingConfig = TrainingSchema.parse({ epochs, earlyStopping: { metric: 'none' } });
  const summary = await train({ model, train: split, validation: null, config, seed: 1, checkpointDir: null, progress: quiet });
  const seconds = summary.history.reduce((s, r) => s + r.seconds, 0);
  return (split.n * epochs) / seconds;
}

async function main(): Promise<void> {
  const raw = await resolveMnist({ source: 'auto', explicit: explicitDataDir(undefined, null), cache: cacheDir(), progress: quiet });
  const backend = await initBackend((arg('--backend') as BackendRequest | undefined) ?? 'auto');
  const splits = makeSplits(raw, {
    source: 'auto',
    dir: null,
    train: 'train',
    validation: false,
    digits: null,
    limit: { train: null, validation: null, test: null },
  });
  const softmax = buildModel({ kind: 'softmax', inputSize: 784, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], maxColumnNorm: 1.9365 }, 0.005, 1);

  const rows: [string, number, string][] = [];
  rows.push(['softmax training, batch 100', await trainingExamplesPerSecond(softmax, splits.train, 2), 'examples/s']);
  for (const batch of [10000, 2000]) {
    rows.push([
      `FGSM generation, softmax, ${splits.test.n} test images, batch ${batch}`,
      fgsmImagesPerSecond(softmax, splits.test, batch),
      'images/s',
    ]);
  }
  rows.push([`  same, naive tfjs (default matMul gradient), batch 2000`, naiveFgsmImagesPerSecond(softmax, splits.test, 2000), 'images/s']);
  softmax.dispose();

  console.log(`backend: ${backend.name} (${backend.reason}); data: ${raw.provenance.kind}; Node ${process.version}; tfjs ${tf.version_core}`);
  for (const [what, value, unit] of rows) console.log(`${what.padEnd(72)} ${Math.round(value).toLocaleString('en-US').padStart(10)} ${unit}`);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ backend: backend.name, data: raw.provenance.kind, rows }));
}

await main();
