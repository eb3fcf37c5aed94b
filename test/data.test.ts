import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { createProgress } from '../src/core/progress.js';
import { makeSplits } from '../src/data/dataset.js';
import { downloadMnistFile } from '../src/data/download.js';
import { encodeIdx, parseIdx } from '../src/data/idx.js';
import { MNIST_FILES } from '../src/data/mnist-files.js';
import { resolveMnist } from '../src/data/source.js';
import { inspectDir, verifyBytes } from '../src/data/verify.js';
import type { DataConfig } from '../src/config/schema.js';
import { realDataDir, tempDir } from './helpers.js';

const quiet = createProgress('quiet');
const labelsFile = MNIST_FILES.find((f) => f.name === 't10k-labels-idx1-ubyte')!;
const imagesFile = MNIST_FILES.find((f) => f.name === 't10k-images-idx3-ubyte')!;

describe('IDX parser', () => {
  test('reads the real test files (gzipped and not): dimensions, labels, pixels', () => {
    const gz = readFileSync(join(realDataDir(), 't10k-labels-idx1-ubyte.gz'));
    const labels = parseIdx(gz, 't10k-labels', 1);
    assert.deepEqual(labels.dims, [10000]);
    assert.deepEqual([...labels.data.subarray(0, 10)], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    const images = parseIdx(gunzipSync(readFileSync(join(realDataDir(), 't10k-images-idx3-ubyte.gz'))), 't10k-images', 3);
    assert.deepEqual(images.dims, [10000, 28, 28]);
    assert.equal(Math.max(...images.data.subarray(0, 784)), 255);
  });

  test('rejects truncated, trailing, wrong-magic and corrupted-gzip bytes, naming the file', () => {
    const good = encodeIdx([3], new Uint8Array([1, 2, 3]));
    assert.deepEqual([...parseIdx(good, 'x', 1).data], [1, 2, 3]);
    assert.throws(() => parseIdx(good.subarray(0, good.length - 1), 'lbl', 1), /lbl: 10 bytes, expected 11 .*truncated/);
    assert.throws(() => parseIdx(new Uint8Array([...good, 0]), 'lbl', 1), /trailing data/);
    assert.throws(() => parseIdx(good, 'img', 3), /img: IDX magic number 0x00000801, expected 0x00000803/);
    const gz = gzipSync(good);
    assert.throws(() => parseIdx(gz.subarray(0, gz.length - 6), 'cut.gz', 1), /cut\.gz: corrupted or truncated gzip/);
    assert.throws(() => parseIdx(new Uint8Array([0, 0]), 'tiny', 1), /too short/);
    assert.throws(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0]), 'header', 3), /header: 5 bytes is too short for an IDX header with 3/);
  });
});

describe('checksums', () => {
  test('the real files verify; a corrupted copy names the file and the expected checksum', () => {
    assert.ok(inspectDir(realDataDir()).every((s) => s.ok));
    const bytes = new Uint8Array(readFileSync(join(realDataDir(), 't10k-labels-idx1-ubyte.gz')));
    bytes[100] = bytes[100]! ^ 0xff;
    assert.throws(
      () => verifyBytes(labelsFile, 'some/path.gz', bytes),
      (error: Error) => {
        assert.match(error.message, new RegExp(`some/path\\.gz: checksum mismatch: SHA-256 [0-9a-f]{64}, expected ${labelsFile.gzSha256}`));
        return true;
      },
    );
    const raw = gunzipSync(readFileSync(join(realDataDir(), 't10k-labels-idx1-ubyte.gz')));
    assert.equal(verifyBytes(labelsFile, 'raw', raw).gzip, false);
  });

  test('one algorithm everywhere: errors quote the SHA-256 that `fgsm data info` shows, gzipped or not', () => {
    const raw = gunzipSync(readFileSync(join(realDataDir(), 't10k-labels-idx1-ubyte.gz')));
    assert.equal(verifyBytes(labelsFile, 'raw', raw).sha256, labelsFile.rawSha256);
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 0xff;
    assert.throws(
      () => verifyBytes(labelsFile, 'raw', raw),
      new RegExp(`raw: checksum mismatch: SHA-256 [0-9a-f]{64}, expected ${labelsFile.rawSha256} \\(uncompressed`),
    );
    for (const file of MNIST_FILES)
      assert.deepEqual(
        Object.keys(file).filter((key) => /md5/i.test(key)),
        [],
        file.name,
      );
  });
});

describe('download from a local mirror', () => {
  let server: Server;
  let base: string;
  let stalledResponses = 0;
  before(async () => {
    server = createServer((request, response) => {
      const [, mirror, name] = (request.url ?? '').split('/');
      const path = join(realDataDir(), name ?? '');
      if (!name || !existsSync(path)) {
        response.writeHead(404).end();
      } else if (mirror === 'good') {
        response.writeHead(200, { 'content-length': readFileSync(path).length }).end(readFileSync(path));
      } else if (mirror === 'corrupt') {
        const bytes = Buffer.from(readFileSync(path));
        bytes[bytes.length >> 1] ^= 0xff;
        response.writeHead(200).end(bytes);
      } else if (mirror === 'stall') {
        stalledResponses++;
        response.writeHead(200, { 'content-length': 1e6 });
        response.write(Buffer.alloc(10));
        setTimeout(() => response.destroy(), 3000).unref(); // sends nothing more: the client must give up first
      } else {
        response.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const options = (mirrors: string[]) => ({ mirrors: mirrors.map((m) => `${base}/${m}/`), timeoutMs: 20_000, stallMs: 300, progress: quiet });

  test('downloads and verifies a file, written atomically', async () => {
    const dir = tempDir();
    const { path, url } = await downloadMnistFile(labelsFile, dir, options(['good']));
    assert.equal(url, `${base}/good/t10k-labels-idx1-ubyte.gz`);
    assert.deepEqual(readFileSync(path), readFileSync(join(realDataDir(), 't10k-labels-idx1-ubyte.gz')));
    assert.deepEqual(readdirSync(dir), ['t10k-labels-idx1-ubyte.gz']);
  });

  test('falls back past a 404, a corrupted file and a stalled server to a good mirror', async () => {
    const dir = tempDir();
    const { url } = await downloadMnistFile(imagesFile, dir, options(['missing', 'corrupt', 'stall', 'good']));
    assert.match(url, /\/good\//);
    assert.ok(stalledResponses > 0);
    assert.ok(inspectDir(dir).find((s) => s.file === imagesFile)!.ok);
  });

  test('when every mirror fails: an error listing each failure, and nothing written', async () => {
    const dir = tempDir();
    await assert.rejects(downloadMnistFile(labelsFile, dir, options(['corrupt', 'stall', 'missing'])), (error: Error) => {
      assert.match(error.message, /could not download t10k-labels-idx1-ubyte\.gz from any mirror/);
      assert.match(error.message, /corrupt\/t10k-labels-idx1-ubyte\.gz: checksum mismatch/);
      assert.match(error.message, /stall\/t10k-labels-idx1-ubyte\.gz: stalled: no data for 0\.3 s/);
      assert.match(error.message, /missing\/t10k-labels-idx1-ubyte\.gz: HTTP 404/);
      return true;
    });
    assert.deepEqual(readdirSync(dir), []);
  });

  test('resolveMnist downloads into an empty cache through FGSM_MNIST_MIRRORS', async () => {
    const cache = tempDir();
    process.env.FGSM_MNIST_MIRRORS = `${base}/good/`;
    try {
      const raw = await resolveMnist({ source: 'auto', explicit: null, cache, progress: quiet });
      assert.equal(raw.provenance.kind, 'download');
      assert.equal(raw.train.count, 60000);
      assert.equal(raw.provenance.files.length, 4);
      const again = await resolveMnist({ source: 'auto', explicit: null, cache, progress: quiet });
      assert.equal(again.provenance.kind, 'cache');
    } finally {
      delete process.env.FGSM_MNIST_MIRRORS;
    }
  });
});

const dataConfig = (patch: Partial<DataConfig> = {}): DataConfig => ({
  source: 'auto',
  dir: null,
  train: 'train',
  validation: true,
  digits: null,
  limit: { train: null, validation: null, test: null },
  ...patch,
});

describe('data sources and splits', () => {
  test('a named directory is used as is; a broken one is an error, not a fallback', async () => {
    const raw = await resolveMnist({ source: 'auto', explicit: { dir: realDataDir(), origin: 'FGSM_DATA_DIR' }, cache: tempDir(), progress: quiet });
    assert.equal(raw.provenance.kind, 'dir');
    assert.equal(raw.provenance.reason, 'FGSM_DATA_DIR');
    const broken = tempDir();
    for (const f of MNIST_FILES) copyFileSync(join(realDataDir(), `${f.name}.gz`), join(broken, `${f.name}.gz`));
    writeFileSync(join(broken, 'train-labels-idx1-ubyte.gz'), 'not a gzip file');
    await assert.rejects(
      resolveMnist({ source: 'auto', explicit: { dir: broken, origin: '--data-dir' }, cache: tempDir(), progress: quiet }),
      /train-labels-idx1-ubyte\.gz: checksum mismatch: SHA-256 [0-9a-f]+, expected 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 \(uncompressed/,
    );
  });

  test('with no directory, no cache and no network: the embedded subset, with a warning that lists each failure', async () => {
    process.env.FGSM_MNIST_MIRRORS = 'http://127.0.0.1:9/,http://127.0.0.1:7/';
    const lines: string[] = [];
    const progress = { ...quiet, line: (message: string) => lines.push(message) };
    try {
      const raw = await resolveMnist({ source: 'auto', explicit: null, cache: tempDir(), progress, stallMs: 500, timeoutMs: 2000 });
      assert.equal(raw.provenance.kind, 'embedded');
      const failed = lines.find((line) => line.startsWith('MNIST download failed'))!;
      assert.match(
        failed,
        /from any mirror:\n {2}http:\/\/127\.0\.0\.1:9\/train-images-idx3-ubyte\.gz: .+\n {2}http:\/\/127\.0\.0\.1:7\/train-images/,
      );
      assert.match(raw.provenance.warning!, /NOT comparable to the paper/);
      assert.equal(raw.train.count + raw.test.count, 10000);
    } finally {
      delete process.env.FGSM_MNIST_MIRRORS;
    }
  });

  test('splits: first 50,000 / last 10,000 / test; all-train; digit filter; limits', async () => {
    const raw = await resolveMnist({ source: 'dir', explicit: { dir: realDataDir(), origin: 'test' }, cache: tempDir(), progress: quiet });
    const paper = makeSplits(raw, dataConfig());
    assert.deepEqual([paper.train.n, paper.validation!.n, paper.test.n], [50000, 10000, 10000]);
    assert.equal(paper.validation!.y[0], raw.train.labels[50000]);
    assert.equal(paper.validation!.x[200], raw.train.images[50000 * 784 + 200]! / 255);
    assert.equal(makeSplits(raw, dataConfig({ train: 'all-train', validation: false })).train.n, 60000);
    const pair = makeSplits(raw, dataConfig({ digits: [3, 7], limit: { train: 500, validation: null, test: null } }));
    assert.equal(pair.train.n, 500);
    assert.equal(pair.test.n, 1010 + 1028);
    assert.ok(pair.test.y.every((c) => c === 0 || c === 1));
    assert.deepEqual(pair.classes, [3, 7]);
  });
});
