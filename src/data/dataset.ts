import type { DataConfig } from '../config/schema.js';
import { IMAGE_SIZE } from './mnist-files.js';
import type { RawMnist, RawPart } from './source.js';

/** Examples of one split: pixels in [0, 1] (uint8 / 255), row-major 784 per example; labels are class indices. */
export interface Split {
  name: 'train' | 'validation' | 'test';
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export interface Splits {
  train: Split;
  validation: Split | null;
  test: Split;
  /** The digit each class index stands for (0..9, or e.g. [3, 7]). */
  classes: number[];
}

function makeSplit(name: Split['name'], part: RawPart, from: number, to: number, classes: number[], limit: number | null): Split {
  const classOf = new Int32Array(10).fill(-1);
  classes.forEach((digit, index) => (classOf[digit] = index));
  const keep: number[] = [];
  for (let i = from; i < to && (limit === null || keep.length < limit); i++) {
    if (classOf[part.labels[i]!]! >= 0) keep.push(i);
  }
  const x = new Float32Array(keep.length * IMAGE_SIZE);
  const y = new Int32Array(keep.length);
  keep.forEach((source, row) => {
    const pixels = part.images.subarray(source * IMAGE_SIZE, (source + 1) * IMAGE_SIZE);
    for (let j = 0; j < IMAGE_SIZE; j++) x[row * IMAGE_SIZE + j] = pixels[j]! / 255;
    y[row] = classOf[part.labels[source]!]!;
  });
  return { name, x, y, n: keep.length };
}

/**
 * The paper's splits: train = the first 50,000 training examples (or all 60,000 with all-train),
 * validation = the last 10,000, test = the 10,000 test examples; then the digit filter and size limits.
 */
export function makeSplits(raw: RawMnist, config: DataConfig): Splits {
  const classes = config.digits ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const trainEnd = config.train === 'all-train' ? raw.train.count : raw.train.count - raw.validationSize;
  return {
    train: makeSplit('train', raw.train, 0, trainEnd, classes, config.limit.train),
    validation: config.validation
      ? makeSplit('validation', raw.train, raw.train.count - raw.validationSize, raw.train.count, classes, config.limit.validation)
      : null,
    test: makeSplit('test', raw.test, 0, raw.test.count, classes, config.limit.test),
    classes,
  };
}

/** All examples of `first` then all of `second`, as one training split (stage 2: the 50,000 and the 10,000). */
export function joinSplits(first: Split, second: Split): Split {
  const x = new Float32Array(first.x.length + second.x.length);
  x.set(first.x);
  x.set(second.x, first.x.length);
  const y = new Int32Array(first.n + second.n);
  y.set(first.y);
  y.set(second.y, first.n);
  return { name: 'train', x, y, n: first.n + second.n };
}
