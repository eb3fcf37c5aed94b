import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import type { ReportRow } from '../src/report/compare.js';
import { fgsmCli, realDataDir, tempDir } from './helpers.js';

/** Debian's chromium (.ci/run installs it), or the browser CHROMIUM names. */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/**
 * Tiny softmax networks: a and b on a few hundred MNIST digits (the page then has runs, a sweep, a transfer matrix and
 * a robustness audit), c on the embedded digits (its warning is shown).
 */
const TINY = (name: string, seed: number, source = 'auto') => `name: ${name}
seed: ${seed}
backend: wasm
data:
  source: ${source}
  limit: { train: 600, validation: 200, test: 200 }
model:
  kind: softmax
  maxColumnNorm: 1.9365
training:
  epochs: 2
  earlyStopping: { metric: validation-error, patience: 5 }
attack:
  epsilons: [0.1, 0.25]
evaluation:
  figureExamples: 8
claims: [s4.softmax.fgsm, s6.transfer.orig_to_adv]
`;

function fgsm(args: string[], cwd: string): string {
  const out = fgsmCli(args, { FGSM_DATA_DIR: realDataDir() }, { cwd });
  assert.equal(out.status, 0, `fgsm ${args.join(' ')}: ${out.stderr}`);
  return out.stdout;
}

/** What the page shows, read in the browser. */
interface PageFacts {
  images: { naturalWidth: number; src: string }[];
  svgs: { width: number; height: number }[];
  claims: Record<string, unknown>[];
  oursTexts: string[];
  sections: string[];
}

const READ_PAGE = `(() => ({
  images: [...document.images].map((img) => ({ naturalWidth: img.naturalWidth, src: img.src.slice(0, 22) })),
  svgs: [...document.querySelectorAll('figure svg')].map((svg) => { const r = svg.getBoundingClientRect(); return { width: r.width, height: r.height }; }),
  claims: [...document.querySelectorAll('table.claims tbody tr')].map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.key, JSON.parse(td.dataset.value)]))),
  oursTexts: [...document.querySelectorAll('table.claims td[data-key="ours"]')].map((td) => td.textContent),
  sections: [...document.querySelectorAll('main > section')].map((s) => s.id),
}))()`;

describe('fgsm report --html', () => {
  let dir: string;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  let facts: PageFacts;
  let rows: ReportRow[];
  let html: string;

  before(async () => {
    dir = tempDir('fgsm-html-');
    writeFileSync(join(dir, 'a.yaml'), TINY('a', 3));
    writeFileSync(join(dir, 'b.yaml'), TINY('b', 4));
    writeFileSync(join(dir, 'c.yaml'), TINY('c', 5, 'embedded'));
    fgsm(['run', 'a.yaml', 'b.yaml', 'c.yaml', '--results-dir', 'results', '-q'], dir);
    fgsm(['sweep', 'a.yaml', '--eps', '0:0.3:0.1', '--results-dir', 'results'], dir);
    fgsm(['transfer', 'a.yaml', 'b.yaml', '--results-dir', 'results'], dir);
    fgsm(['audit', 'results', '--only', 'a,b', '--limit', '100', '--transfer-from', 'a,b', '-q'], dir);
    fgsm(['report', 'results', '--html', 'report.html'], dir);
    rows = JSON.parse(fgsm(['report', 'results', '--json'], dir)) as ReportRow[];
    html = readFileSync(join(dir, 'report.html'), 'utf8');

    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM`);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: tempDir('fgsm-chromium-'),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warn') problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${String(error)}`));
    page.on('requestfailed', (request) => problems.push(`failed request: ${request.url().slice(0, 80)}`));
    // the page must need nothing but itself: every other request is refused and reported
    const self = `file://${join(dir, 'report.html')}`;
    await page.setRequestInterception(true);
    page.on('request', (request) => {
      const url = request.url();
      if (url === self || url.startsWith('data:')) void request.continue();
      else {
        problems.push(`request outside the page: ${url.slice(0, 80)}`);
        void request.abort();
      }
    });
    await page.goto(self, { waitUntil: 'load' });
    facts = (await page.evaluate(READ_PAGE)) as PageFacts;
  });

  after(async () => {
    await browser?.close();
  });

  test('opens in Chromium with no console errors and no request outside the page', () => {
    assert.deepEqual(problems, []);
    assert.doesNotMatch(html, /<script|<link|@import|src="(?!data:)/, 'no script, stylesheet or image from elsewhere');
  });

  test('every image loads, and every figure is drawn', () => {
    // examples.png of the three runs
    assert.equal(facts.images.length, 3, `images: ${JSON.stringify(facts.images)}`);
    for (const image of facts.images) {
      assert.ok(image.naturalWidth > 0, `${image.src}… did not load`);
      assert.equal(image.src, 'data:image/png;base64,');
    }
    // per run its training curve and two confusion matrices, a's sweep, the transfer heat maps of both gradients
    assert.equal(facts.svgs.length, 3 * 3 + 1 + 2);
    for (const svg of facts.svgs) assert.ok(svg.width > 100 && svg.height > 100, `a figure drawn ${svg.width} × ${svg.height}`);
    assert.deepEqual(facts.sections, ['claims', 'robustness', 'exp-a', 'exp-b', 'exp-c', 'exp-transfer', 'status']);
  });

  test("the claims table's rows are report --json's rows", () => {
    assert.ok(rows.length > 10);
    const keys = Object.keys(facts.claims[0]!);
    assert.deepEqual(keys, ['id', 'section', 'quantity', 'paper', 'ours', 'oursStableGradient', 'delta', 'verdict', 'experiment', 'runId']);
    const shown = rows.map((row) => Object.fromEntries(keys.map((key) => [key, row[key as keyof ReportRow]])));
    assert.deepEqual(facts.claims, shown);
    rows.forEach((row, i) => {
      if (row.ours !== null) assert.ok(facts.oursTexts[i]!.includes(row.ours.toFixed(2)), `row ${i}: "${facts.oursTexts[i]}" shows ${row.ours}`);
    });
  });

  test('provenance and run status: the commit, the data, the backend, each run folder', () => {
    const runs = rows.filter((row) => row.runId !== '—').map((row) => row.runId);
    for (const runId of new Set(runs)) assert.match(html, new RegExp(`id="run-[abc]-${runId}"|id="run-transfer-${runId}"`));
    assert.match(html, /<dt>code<\/dt><dd>fgsm [^<]+, commit <code>([0-9a-f]{40}|unknown)<\/code>/);
    assert.match(html, /<dt>backend<\/dt><dd>wasm \(asked for wasm\)/);
    assert.match(html, /<dt>data<\/dt><dd>dir \(FGSM_DATA_DIR\) at [^<]*; the MNIST files/);
    assert.match(html, /<dt>data<\/dt><dd>embedded/);
    assert.match(html, /class="warning">[^<]*not comparable/i, "the embedded digits' warning is shown");
    const states = [...html.matchAll(/data-key="state" data-value="&quot;(\w+)&quot;"/g)].map((m) => m[1]);
    assert.deepEqual(states, ['complete', 'complete', 'complete', 'complete']);
  });

  test("the robustness audit's table: two rows (ε = .1, .25) for every model the audit measured", () => {
    const audit = JSON.parse(readFileSync(join(dir, 'results', 'audit', 'audit.json'), 'utf8')) as { models: { name: string }[] };
    assert.equal(audit.models.length, 2);
    const shown = [...html.matchAll(/<tr data-model="([^"]+)">/g)].map((m) => m[1]);
    assert.deepEqual(
      shown,
      audit.models.flatMap((model) => [model.name, model.name]),
    );
    assert.match(html, /<a href="#robustness">/);
  });

  test('a screenshot is not blank', async () => {
    const png = PNG.sync.read(Buffer.from(await page.screenshot({ type: 'png', fullPage: true })));
    const colours = new Set<number>();
    let inked = 0;
    for (let i = 0; i < png.width * png.height; i++) {
      const [r, g, b] = [png.data[4 * i]!, png.data[4 * i + 1]!, png.data[4 * i + 2]!];
      colours.add((r << 16) | (g << 8) | b);
      if (r + g + b < 600) inked++;
    }
    assert.ok(png.height > 2000, `the page is ${png.height} pixels tall`);
    assert.ok(colours.size > 100, `${colours.size} colours`);
    assert.ok(inked / (png.width * png.height) > 0.02, `${((100 * inked) / (png.width * png.height)).toFixed(2)}% of the pixels inked`);
  });
});
