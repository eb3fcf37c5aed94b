import { createHash } from 'node:crypto';
import type { Split } from '../data/dataset.js';
import { IMAGE_SIZE } from '../data/mnist-files.js';
import type { GpuRuntime } from './runtime.js';

/**
 * The training examples on the device, uploaded once: every distinct split a lane trains on (stage 1's training
 * split, stage 2's training and validation joined), one after another in one images buffer and one labels buffer,
 * so that a minibatch is a list of row indices. Splits with the same examples (each seed's stage 2 joins its own
 * copy) share their rows.
 */
export class ResidentData {
  images: GPUBuffer | null = null;
  labels: GPUBuffer | null = null;
  /** Bumped whenever the buffers are remade: kernels bound to the old ones must be rebuilt. */
  version = 0;
  private readonly parts: { split: Split; fingerprint: string; base: number }[] = [];

  constructor(private readonly runtime: GpuRuntime) {}

  /** The first row of `split`'s examples in the resident buffers, uploading them if new. */
  baseOf(split: Split): number {
    const known = this.parts.find((part) => part.split === split);
    if (known) return known.base;
    const fingerprint = fingerprintOf(split);
    const same = this.parts.find((part) => part.fingerprint === fingerprint);
    if (same) {
      this.parts.push({ split, fingerprint, base: same.base });
      return same.base;
    }
    const base = this.rows;
    this.parts.push({ split, fingerprint, base });
    this.upload();
    return base;
  }

  get rows(): number {
    const distinct = new Map(this.parts.map((part) => [part.base, part.split.n]));
    return [...distinct.values()].reduce((a, b) => a + b, 0);
  }

  dispose(): void {
    if (this.images) this.runtime.release(this.images);
    if (this.labels) this.runtime.release(this.labels);
    this.images = this.labels = null;
  }

  private upload(): void {
    this.dispose();
    const distinct = [...new Map(this.parts.map((part) => [part.base, part.split])).entries()];
    const rows = this.rows;
    const images = new Float32Array(rows * IMAGE_SIZE);
    const labels = new Uint32Array(rows);
    for (const [base, split] of distinct) {
      images.set(split.x.subarray(0, split.n * IMAGE_SIZE), base * IMAGE_SIZE);
      labels.set(split.y.subarray(0, split.n), base);
    }
    this.images = this.runtime.bufferWith('resident images', images);
    this.labels = this.runtime.bufferWith('resident labels', labels);
    this.version++;
  }
}

/** A content hash of a split (its labels and pixels): equal for two copies of the same examples. */
function fingerprintOf(split: Split): string {
  const bytes = (a: Float32Array | Int32Array, n: number) => new Uint8Array(a.buffer, a.byteOffset, n * a.BYTES_PER_ELEMENT);
  const hash = createHash('sha256')
    .update(bytes(split.y, split.n))
    .update(bytes(split.x, split.n * IMAGE_SIZE));
  return `${split.n}:${hash.digest('hex')}`;
}
