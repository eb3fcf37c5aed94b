/**
 * The four canonical MNIST files (LeCun, Cortes & Burges) with their published checksums. A file is accepted
 * gzipped (checked by the SHA-256 and MD5 of the .gz) or uncompressed (checked by the MD5 of the raw IDX).
 */
export interface MnistFile {
  /** Canonical file name without .gz. */
  name: string;
  part: 'train' | 'test';
  kind: 'images' | 'labels';
  count: number;
  gzBytes: number;
  gzSha256: string;
  gzMd5: string;
  rawBytes: number;
  rawMd5: string;
}

export const MNIST_FILES: readonly MnistFile[] = [
  {
    name: 'train-images-idx3-ubyte',
    part: 'train',
    kind: 'images',
    count: 60000,
    gzBytes: 9912422,
    gzSha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
    gzMd5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    rawBytes: 47040016,
    rawMd5: '6bbc9ace898e44ae57da46a324031adb',
  },
  {
    name: 'train-labels-idx1-ubyte',
    part: 'train',
    kind: 'labels',
    count: 60000,
    gzBytes: 28881,
    gzSha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
    gzMd5: 'd53e105ee54ea40749a09fcbcd1e9432',
    rawBytes: 60008,
    rawMd5: 'a25bea736e30d166cdddb491f175f624',
  },
  {
    name: 't10k-images-idx3-ubyte',
    part: 'test',
    kind: 'images',
    count: 10000,
    gzBytes: 1648877,
    gzSha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    gzMd5: '9fb629c4189551a2d022fa330f9573f3',
    rawBytes: 7840016,
    rawMd5: '2646ac647ad5339dbf082846283269ea',
  },
  {
    name: 't10k-labels-idx1-ubyte',
    part: 'test',
    kind: 'labels',
    count: 10000,
    gzBytes: 4542,
    gzSha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
    gzMd5: 'ec29112dd5afa0611ce80d1b7f02629c',
    rawBytes: 10008,
    rawMd5: '27ae3e4e09519cfbb04c329615203637',
  },
];

/** Mirrors of the canonical .gz files, tried in order (FGSM_MNIST_MIRRORS, comma-separated, replaces them). */
export const DEFAULT_MIRRORS: readonly string[] = [
  'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'https://storage.googleapis.com/cvdf-datasets/mnist/',
  'http://yann.lecun.com/exdb/mnist/',
];

export const IMAGE_SIZE = 28 * 28;
