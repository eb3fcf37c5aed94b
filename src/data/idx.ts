import { gunzipSync } from 'node:zlib';
import { FgsmError } from '../core/errors.js';

/**
 * The IDX format of the MNIST files: a big-endian header (two zero bytes, a type byte 0x08 = unsigned byte,
 * the number of dimensions), one 32-bit size per dimension, then the data. Gzipped files are unpacked first.
 */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const GZIP_MAGIC = [0x1f, 0x8b];

export function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];
}

/** Parses IDX bytes (gzipped or not) from `file`, expecting `expectedDims` dimensions. */
export function parseIdx(bytes: Uint8Array, file: string, expectedDims: 1 | 3): IdxArray {
  let raw = bytes;
  if (isGzip(bytes)) {
    try {
      raw = gunzipSync(bytes);
    } catch (error) {
      throw new FgsmError(
        `${file}: corrupted or truncated gzip data (${(error as Error).message})`,
        'delete the file and download it again: fgsm data download',
      );
    }
  }
  if (raw.length < 4) throw new FgsmError(`${file}: ${raw.length} bytes is too short for an IDX file`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = view.getUint32(0);
  const expectedMagic = 0x800 + expectedDims;
  if (magic !== expectedMagic) {
    throw new FgsmError(
      `${file}: IDX magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x${expectedMagic.toString(16).padStart(8, '0')} (unsigned bytes, ${expectedDims} dimension(s))`,
      'is this an MNIST file of the right kind (images have 3 dimensions, labels 1)?',
    );
  }
  if (raw.length < 4 + 4 * expectedDims) {
    throw new FgsmError(`${file}: ${raw.length} bytes is too short for an IDX header with ${expectedDims} dimension(s)`);
  }
  const dims: number[] = [];
  for (let i = 0; i < expectedDims; i++) dims.push(view.getUint32(4 + 4 * i));
  const header = 4 + 4 * expectedDims;
  const expectedLength = header + dims.reduce((a, b) => a * b, 1);
  if (raw.length !== expectedLength) {
    throw new FgsmError(
      `${file}: ${raw.length} bytes, expected ${expectedLength} for dimensions ${dims.join('×')} (${raw.length < expectedLength ? 'truncated' : 'trailing data'})`,
      'delete the file and download it again: fgsm data download',
    );
  }
  return { dims, data: raw.subarray(header) };
}

/** Encodes an unsigned-byte IDX array: the inverse of parseIdx (the tests build their damaged files with it). */
export function encodeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x800 + dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}
