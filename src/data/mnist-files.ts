/**
 * The four canonical MNIST files (LeCun, Cortes & Burges) with their checksums. A file is accepted gzipped
 * (checked by the SHA-256 of the .gz) or uncompressed (by the SHA-256 of the raw IDX). One algorithm, so that
 * an error, `fgsm data info` and a result's provenance show the same kind of number. The raw SHA-256s were
 * computed from the canonical .gz files, whose published MD5s (.gz f68b3c2d…, d53e105e…, 9fb629c4…, ec29112d…;
 * raw 6bbc9ace…, a25bea73…, 2646ac64…, 27ae3e4e…) they match.
 */
export interface MnistFile {
  /** Canonical file name without .gz. */
  name: string;
  part: 'train' | 'test';
  kind: 'images' | 'labels';
  count: number;
  gzBytes: number;
  gzSha256: string;
  rawBytes: number;
  rawSha256: string;
}

export const MNIST_FILES: readonly MnistFile[] = [
  {
    name: 'train-images-idx3-ubyte',
    part: 'train',
    kind: 'images',
    count: 60000,
    gzBytes: 9912422,
    gzSha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
    rawBytes: 47040016,
    rawSha256: 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
  },
  {
    name: 'train-labels-idx1-ubyte',
    part: 'train',
    kind: 'labels',
    count: 60000,
    gzBytes: 28881,
    gzSha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
    rawBytes: 60008,
    rawSha256: '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
  },
  {
    name: 't10k-images-idx3-ubyte',
    part: 'test',
    kind: 'images',
    count: 10000,
    gzBytes: 1648877,
    gzSha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    rawBytes: 7840016,
    rawSha256: '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
  },
  {
    name: 't10k-labels-idx1-ubyte',
    part: 'test',
    kind: 'labels',
    count: 10000,
    gzBytes: 4542,
    gzSha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
    rawBytes: 10008,
    rawSha256: 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
  },
];

/** Mirrors of the canonical .gz files, tried in order (FGSM_MNIST_MIRRORS, comma-separated, replaces them). */
export const DEFAULT_MIRRORS: readonly string[] = [
  'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'https://storage.googleapis.com/cvdf-datasets/mnist/',
  'http://yann.lecun.com/exdb/mnist/',
];

export const IMAGE_SIZE = 28 * 28;
