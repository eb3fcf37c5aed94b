import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { examplesFigure } from '../src/results/figures.js';
import { confusionSvg, sweepSvg, trainingCurveSvg, transferHeatmapSvg, type SweepPoint } from '../src/results/plots.js';
import type { EpochRecord } from '../src/train/loop.js';

/** Renders an SVG to PNG with librsvg, as a reader's viewer does: real fonts, not vega's text-width estimate. */
function rasterise(svg: string): PNG {
  const out = spawnSync('rsvg-convert', ['--format', 'png'], { input: svg, maxBuffer: 1 << 28 });
  if (out.error) throw new Error(`rsvg-convert could not run (${out.error.message}): install it, e.g. \`apt-get install librsvg2-bin\``);
  assert.equal(out.status, 0, `rsvg-convert failed: ${out.stderr.toString()}`);
  return PNG.sync.read(out.stdout);
}

const CANVAS = /width="(\d+)" height="(\d+)" viewBox="0 0 \d+ \d+"/;

function canvasSize(svg: string): { width: number; height: number } {
  const m = CANVAS.exec(svg);
  assert.ok(m, 'the SVG declares its canvas size');
  return { width: Number(m[1]), height: Number(m[2]) };
}

/**
 * Renders the figure with a margin around its canvas and says where anything was drawn in that margin: text
 * there is what a viewer, which shows only the canvas, cuts off.
 */
function inkOutsideCanvas(svg: string): string[] {
  const { width, height } = canvasSize(svg);
  const m = 200;
  const png = rasterise(
    svg.replace(CANVAS, `width="${width + 2 * m}" height="${height + 2 * m}" viewBox="${-m} ${-m} ${width + 2 * m} ${height + 2 * m}"`),
  );
  const sides = new Set<string>();
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      if (png.data[(y * png.width + x) * 4 + 3] === 0) continue;
      if (x < m) sides.add('left');
      else if (x >= m + width) sides.add('right');
      else if (y < m) sides.add('top');
      else if (y >= m + height) sides.add('bottom');
    }
  }
  return [...sides];
}

const unescape = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');

const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]!));

/** Each line's series (from its aria label) with its stroke colour, and each legend entry's label with its symbol's colour. */
function seriesColours(svg: string): [string, string][] {
  const lines = [...svg.matchAll(/aria-label="[^"]*series: ([^";]+)"[^>]*aria-roledescription="line mark"[^>]*stroke="(#[0-9a-f]{6})"/g)];
  const legend = [
    ...svg.matchAll(/role-legend-symbol[^>]*><path[^>]*?(?:stroke|fill)="(#[0-9a-f]{6})"[^]*?role-legend-label[^>]*><text[^>]*>([^<]*)<\/text>/g),
  ];
  return [...lines.map((m) => [unescape(m[1]!), m[2]!] as [string, string]), ...legend.map((m) => [unescape(m[2]!), m[1]!] as [string, string])];
}

/** The y pixel coordinates of every line's vertices. */
function lineYs(svg: string): number[] {
  return [...svg.matchAll(/aria-roledescription="line mark"[^>]*?d="([^"]+)"|d="([^"]+)"[^>]*aria-roledescription="line mark"/g)].flatMap((m) =>
    [...(m[1] ?? m[2]!).matchAll(/[ML][\d.e-]+,([\d.e-]+)/g)].map((p) => Number(p[1])),
  );
}

/** Checks that hold for every chart: natural-size rendering, nothing cut off, legible type. */
function assertLegible(svg: string, name: string): PNG {
  const { width, height } = canvasSize(svg);
  const png = rasterise(svg);
  assert.deepEqual([png.width, png.height], [width, height], `${name}: rendered at its natural size`);
  assert.deepEqual(inkOutsideCanvas(svg), [], `${name}: something is drawn outside the canvas`);
  const truncated = texts(svg).filter((t) => t.includes('…'));
  assert.deepEqual(truncated, [], `${name}: vega shortened these labels`);
  const sizes = [...svg.matchAll(/font-size="([\d.]+)px"/g)].map((m) => Number(m[1]));
  assert.ok(Math.min(...sizes) >= 11, `${name}: text of ${Math.min(...sizes)}px is too small to read at natural size`);
  return png;
}

function epoch(stage: 1 | 2, e: number, trainError: number, validationError: number | null, adversarial: number | null = null): EpochRecord {
  return {
    stage,
    epoch: e,
    learningRate: 0.1,
    momentum: 0.5,
    trainLoss: 1,
    trainError,
    validationError,
    adversarialValidationError: adversarial,
    heldOutLoss: null,
    seconds: 1,
  };
}

/** A softmax-like run: errors between 7% and 10%, the best epoch the 12th. */
const softmaxHistory = Array.from({ length: 20 }, (_, i) => epoch(1, i + 1, 0.1 - 0.025 * Math.sqrt(i / 19), 0.09 - 0.02 * Math.sqrt(i / 19)));

/** A maxout-like run: errors from 90% down to 0.3%, FGSM validation error, then stage 2. */
const maxoutHistory = [
  ...Array.from({ length: 40 }, (_, i) =>
    epoch(1, i + 1, 0.9 * Math.exp(-i / 4) + 0.005, 0.6 * Math.exp(-i / 4) + 0.012, 0.95 * Math.exp(-i / 20) + 0.1),
  ),
  ...Array.from({ length: 15 }, (_, i) => epoch(2, i + 1, 0.004 - 0.0001 * i, null)),
];

const sweepPoints: SweepPoint[] = Array.from({ length: 13 }, (_, i) => ({
  epsilon: i * 0.025,
  error: Math.min(0.99, 0.011 + 0.08 * i),
  meanConfidenceOnMistakes: i === 0 ? null : 0.5 + 0.03 * i,
}));

const curve = (history: EpochRecord[], chosenEpoch: number, title: string) =>
  trainingCurveSvg({ history, chosenEpoch, bestEpoch: chosenEpoch }, title);

describe('figures', () => {
  test('the cut-off check sees text that runs past the canvas', () => {
    const svg = (x: number) =>
      `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40" viewBox="0 0 100 40"><rect width="100" height="40" fill="white"/><text x="${x}" y="25" font-size="14px">cut off</text></svg>`;
    assert.deepEqual(inkOutsideCanvas(svg(70)), ['right']);
    assert.deepEqual(inkOutsideCanvas(svg(5)), []);
  });

  test('training curves: legible at natural size, every legend label whole, the best epoch labelled', async () => {
    const one = await curve([epoch(1, 1, 0.2, null), epoch(1, 2, 0.1, null), epoch(1, 3, 0.08, null)], 3, 'logreg: error per epoch');
    const many = await curve(maxoutHistory, 30, 'maxout-adv: error per epoch');
    assertLegible(one, 'training curve, 1 series');
    assertLegible(many, 'training curve, 4 series');
    const labels = texts(many);
    for (const series of ['training (minibatches)', 'stage 2 training, all 60,000 (minibatches)', 'validation', 'validation, FGSM']) {
      assert.ok(labels.includes(series), `the legend names "${series}" in full`);
    }
    assert.ok(labels.includes('best epoch 30'), 'the rule at the best epoch is labelled');
  });

  test('a softmax curve (errors 7–10%) fills the plot instead of lying flat on a 1–100% axis', async () => {
    const ys = lineYs(await curve(softmaxHistory, 12, 'softmax: error per epoch'));
    const span = Math.max(...ys) - Math.min(...ys);
    assert.ok(span >= 140, `the curves span ${span.toFixed(0)} of the plot's 280 pixels`);
  });

  test('sweep: legible, one y-axis title per quantity', async () => {
    const svg = await sweepSvg(sweepPoints, 'maxout: FGSM on 10000 test examples');
    assertLegible(svg, 'sweep');
    const titles = [...svg.matchAll(/aria-label="Y-axis titled '([^']*)'/g)].map((m) => unescape(m[1]!));
    assert.deepEqual(titles.sort(), ['FGSM error rate', 'mean confidence on mistakes']);
  });

  test('each series has one colour in every figure, and no two series share one', async () => {
    const svgs = [
      await curve(softmaxHistory, 12, 'a'),
      await curve(maxoutHistory, 30, 'b'),
      await curve([epoch(1, 1, 0.2, null), epoch(1, 2, 0.1, null)], 2, 'c'),
      await sweepSvg(sweepPoints, 'd'),
    ];
    const colours = new Map<string, Set<string>>();
    for (const [series, colour] of svgs.flatMap(seriesColours)) colours.set(series, (colours.get(series) ?? new Set()).add(colour));
    assert.ok(colours.size >= 5, `found the colours of ${[...colours.keys()].join(', ')}`);
    for (const [series, set] of colours) assert.equal(set.size, 1, `"${series}" is drawn in ${[...set].join(' and ')}`);
    const all = [...colours.values()].map((s) => [...s][0]);
    assert.equal(new Set(all).size, all.length, 'two series share a colour');
  });

  const image = (v: number) => new Float32Array(784).fill(v);
  const probabilities = (k: number, p: number) => Float32Array.from({ length: 10 }, (_, j) => (j === k ? p : (1 - p) / 9));
  const triple = {
    label: 7,
    clean: image(0.2),
    direction: image(1),
    adversarial: image(0.45),
    cleanProbabilities: probabilities(7, 0.99),
    adversarialProbabilities: probabilities(3, 0.9),
  };

  test('examples.png: landscape for the default 8 examples, the rows named whole at the left', () => {
    const png = PNG.sync.read(
      examplesFigure(
        Array.from({ length: 8 }, () => triple),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        0.25,
      ),
    );
    assert.ok(png.width > 2 * png.height, `${png.width} × ${png.height} is not landscape`);
    // the names are the only black ink left of the first picture (the clean image's 0.2 gray): find their extent
    const black = (x: number, y: number) => png.data[(y * png.width + x) * 4] === 0 && png.data[(y * png.width + x) * 4 + 1] === 0;
    const firstPicture = [...Array(png.width).keys()].find((x) =>
      [...Array(png.height).keys()].some((y) => png.data[(y * png.width + x) * 4] === 51),
    )!;
    const inked: number[] = [];
    for (let x = 0; x < firstPicture; x++) if ([...Array(png.height).keys()].some((y) => black(x, y))) inked.push(x);
    assert.ok(inked.length > 100, 'the row names are drawn left of the pictures');
    assert.ok(
      inked[0]! >= 8 && inked.at(-1)! < firstPicture - 8,
      `the names run from x = ${inked[0]} to ${inked.at(-1)}, the first picture starts at ${firstPicture}`,
    );
  });

  test('examples.png: labels drawn large enough to read, nothing past the edge', () => {
    const png = PNG.sync.read(examplesFigure([triple, triple], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0.25));
    // the prediction labels are the only green (right) and red (wrong) pixels: measure their glyphs' height
    const rows = (rgb: [number, number, number]) => {
      const ys = new Set<number>();
      for (let i = 0; i < png.width * png.height; i++)
        if (png.data[i * 4] === rgb[0] && png.data[i * 4 + 1] === rgb[1] && png.data[i * 4 + 2] === rgb[2]) ys.add(Math.floor(i / png.width));
      return [...ys];
    };
    const green = rows([0, 120, 0]);
    assert.ok(green.length > 0, 'a green (right) prediction label');
    // the first label's rows: consecutive from the topmost green row
    let glyphHeight = 1;
    while (green.includes(green[0]! + glyphHeight)) glyphHeight++;
    assert.ok(glyphHeight >= 14, `labels are ${glyphHeight} pixels tall`);
    assert.ok(rows([200, 0, 0]).length > 0, 'a red (wrong) prediction label');
    for (let x = 0; x < png.width; x++)
      for (const y of [0, png.height - 1]) assert.equal(png.data[(y * png.width + x) * 4], 255, `ink on the edge at (${x}, ${y})`);
    for (let y = 0; y < png.height; y++)
      for (const x of [0, png.width - 1]) assert.equal(png.data[(y * png.width + x) * 4], 255, `ink on the edge at (${x}, ${y})`);
  });

  /** Where the legend of a vega SVG is drawn (its group's translation), and the canvas. */
  function legendPlace(svg: string): { x: number; y: number } {
    const m = /aria-roledescription="legend"[^>]*><g transform="translate\(([\d.]+),([\d.]+)\)"/.exec(svg);
    assert.ok(m, 'the figure has a legend');
    return { x: Number(m[1]), y: Number(m[2]) };
  }

  test('transfer heat map: compact, its legend beside the matrix, the title whole', async () => {
    const svg = await transferHeatmapSvg(
      ['original', 'adversarial'],
      [
        [0.927, 0.234],
        [0.516, 0.196],
      ],
      'transfer: FGSM ε=0.25 error, made on row, scored by column',
    );
    assertLegible(svg, 'transfer heat map');
    const { width, height } = canvasSize(svg);
    assert.ok(width <= 420 && height <= 300, `the 2 × 2 heat map takes ${width} × ${height} pixels`);
    const legend = legendPlace(svg);
    assert.ok(legend.x >= 2 * 72 && legend.y < 72, `the legend is at (${legend.x}, ${legend.y}) of the plot, not beside it`);
    const title = [...svg.matchAll(/<tspan[^>]*>([^<]*)<\/tspan>/g)].map((m) => unescape(m[1]!));
    assert.deepEqual(title, ['transfer: FGSM ε=0.25 error,', 'made on row, scored by column'], 'the title in two lines no wider than the figure');
  });

  test('confusion matrix: every count printed, legible, its legend beside it', async () => {
    const counts = Array.from({ length: 10 }, (_, r) => Array.from({ length: 10 }, (_, c) => (r === c ? 950 + r : r + c)));
    const svg = await confusionSvg([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], counts, 'softmax: clean test set');
    assertLegible(svg, 'confusion matrix');
    const printed = texts(svg);
    for (const row of counts) for (const count of row) assert.ok(printed.includes(String(count)), `the count ${count} is printed`);
    assert.ok(legendPlace(svg).x >= 10 * 34, 'the legend is right of the matrix');
  });
});
