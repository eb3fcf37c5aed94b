import { createHash } from 'node:crypto';
import type { Splits } from './dataset.js';
import type { DataProvenance } from './source.js';

/**
 * What a run was trained and evaluated on, as a short id and in words. Two runs (or two invocations of one run)
 * with equal ids read the same bytes into the same splits, wherever the files lay; a run never mixes two ids.
 */
export interface DataIdentity {
  id: string;
  description: string;
}

export type Counts = { train: number; validation: number; test: number };

export function countsOf(splits: Pick<Splits, 'train' | 'validation' | 'test'>): Counts {
  return { train: splits.train.n, validation: splits.validation?.n ?? 0, test: splits.test.n };
}

export function dataIdentity(provenance: Pick<DataProvenance, 'kind' | 'files'>, counts: Counts): DataIdentity {
  const embedded = provenance.kind === 'embedded';
  const files = [...provenance.files].sort((a, b) => a.name.localeCompare(b.name)).map((f) => `${f.name}:${f.sha256}`);
  const id = createHash('sha256')
    .update(JSON.stringify({ source: embedded ? 'embedded-subset' : 'mnist-files', files, counts }))
    .digest('hex')
    .slice(0, 12);
  const what = embedded ? 'the embedded 10k subset' : `the MNIST files (sha256 ${provenance.files.map((f) => f.sha256.slice(0, 8)).join(' ')})`;
  return { id, description: `${what}; train ${counts.train}, validation ${counts.validation}, test ${counts.test}` };
}
