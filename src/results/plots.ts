import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { TrainingSummary } from '../train/loop.js';
import { SERIES_COLOURS, seriesColourScale, type Series } from './palette.js';

/** Renders a vega-lite spec to SVG in Node (no browser). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Type sizes that read at the SVG's natural size (vega's 10-px labels did not), and the legend below the plot
 * with its labels whole: at the right, vega's 160-px label limit cut "training (minibatches)" short.
 */
const CONFIG = {
  title: { fontSize: 15 },
  axis: { labelFontSize: 12, titleFontSize: 13 },
  legend: { orient: 'bottom', direction: 'vertical', labelFontSize: 12, labelLimit: 0 },
} as const;

const frame = (title: string) =>
  ({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, width: 480, height: 280, config: CONFIG }) as const;

/** Percentages with as many decimals as a tick needs: 0.3%, 2%, 8.5%. */
const PERCENT = '.2~%';

/**
 * A y scale fitted to the errors drawn: logarithmic when they span a decade or more (a maxout network's first
 * epochs near 90%, its last near 1%), linear otherwise, where a log axis flattens them (a softmax's 7–10% took a
 * sixth of the fixed 1–100% log axis). A log axis has no place for an error of 0: it is drawn on the floor.
 */
function errorScale(errors: number[]): { type: 'log' | 'linear'; domain?: number[]; nice: boolean; zero?: boolean; clamp?: boolean } {
  const positive = errors.filter((e) => e > 0);
  const low = Math.min(...positive);
  const high = Math.max(...errors);
  return positive.length > 0 && high / low >= 10
    ? { type: 'log', domain: [low / 1.1, Math.min(1, high * 1.1)], nice: false, clamp: true }
    : { type: 'linear', zero: false, nice: true };
}

/**
 * Training and validation error (clean, and adversarial when measured) per epoch, the epoch whose parameters
 * stage 1 kept marked by a labelled rule. Stage 2's epochs follow stage 1's on the axis, in their own series.
 */
export function trainingCurveSvg(training: Pick<TrainingSummary, 'history' | 'chosenEpoch' | 'bestEpoch'>, title: string): Promise<string> {
  const { history, chosenEpoch } = training;
  const values = history.flatMap((r, i) => {
    const epoch = i + 1;
    const point = (error: number, series: Series) => ({ epoch, error, series });
    return [
      point(r.trainError, r.stage === 1 ? 'training (minibatches)' : 'stage 2 training, all 60,000 (minibatches)'),
      ...(r.validationError === null ? [] : [point(r.validationError, 'validation')]),
      ...(r.adversarialValidationError === null ? [] : [point(r.adversarialValidationError, 'validation, FGSM')]),
    ];
  });
  const marker = chosenEpoch === training.bestEpoch ? `best epoch ${chosenEpoch}` : `parameters of epoch ${chosenEpoch}`;
  // the label sits on the side of the rule with room for it
  const onRight = chosenEpoch <= history.length / 2;
  return renderSvg({
    ...frame(title),
    layer: [
      {
        data: { values },
        mark: { type: 'line', point: history.length <= 60 },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
          y: { field: 'error', type: 'quantitative', title: 'error rate', axis: { format: PERCENT }, scale: errorScale(values.map((v) => v.error)) },
          color: { field: 'series', type: 'nominal', title: null, scale: seriesColourScale(values.map((v) => v.series)) },
        },
      },
      {
        data: { values: [{ epoch: chosenEpoch, label: marker }] },
        layer: [
          { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' } },
          {
            mark: { type: 'text', align: onRight ? 'left' : 'right', dx: onRight ? 4 : -4, baseline: 'top', fontSize: 12, color: 'dimgray' },
            encoding: { y: { value: 4 }, text: { field: 'label' } },
          },
        ],
        encoding: { x: { field: 'epoch', type: 'quantitative' } },
      },
    ],
  });
}

export interface SweepPoint {
  epsilon: number;
  error: number;
  meanConfidenceOnMistakes: number | null;
}

/**
 * FGSM error and confidence on mistakes against ε: two quantities, so each has its own axis (left and right,
 * titled in its line's colour) though both run from 0 to 100%.
 */
export function sweepSvg(points: SweepPoint[], title: string): Promise<string> {
  const point = (epsilon: number, value: number, series: Series) => ({ epsilon, value, series });
  const values = points.flatMap((p) => [
    point(p.epsilon, p.error, 'FGSM error rate'),
    ...(p.meanConfidenceOnMistakes === null ? [] : [point(p.epsilon, p.meanConfidenceOnMistakes, 'mean confidence on mistakes')]),
  ]);
  const drawn = seriesColourScale(values.map((v) => v.series));
  const line = (series: Series, orient: 'left' | 'right') => ({
    transform: [{ filter: { field: 'series', equal: series } }],
    mark: { type: 'line' as const, point: true },
    encoding: {
      y: {
        field: 'value',
        type: 'quantitative' as const,
        title: series,
        scale: { domain: [0, 1] },
        axis: { format: '.0%', orient, titleColor: SERIES_COLOURS[series], grid: orient === 'left' },
      },
      color: { field: 'series', type: 'nominal' as const, title: null, scale: drawn },
    },
  });
  return renderSvg({
    ...frame(title),
    data: { values },
    encoding: { x: { field: 'epsilon', type: 'quantitative', title: 'ε (L∞ step of FGSM)' } },
    layer: drawn.domain.map((series, i) => line(series, i === 0 ? 'left' : 'right')),
    resolve: { scale: { y: 'independent' } },
  });
}

/** What a heat map shows: labelled rows and columns, a value per cell printed in it, and what colours it. */
interface Heatmap {
  rows: string[];
  columns: string[];
  /** The printed value of each cell, [row][column]. */
  values: number[][];
  /** The colour of each cell, in [0, 1] (the printed value where omitted). */
  shades?: number[][];
  rowTitle: string;
  columnTitle: string;
  /** d3 formats of the printed values and of the legend's ticks. */
  format: string;
  legendTitle: string;
  legendFormat: string;
  /** The side of a cell in pixels. */
  cell: number;
  fontSize: number;
  scheme: 'reds' | 'blues';
  /** sqrt: small shades stay visible beside a large diagonal. */
  scaleType: 'linear' | 'sqrt';
}

/**
 * A title in lines no wider than the plot, so that it does not widen the canvas of a small figure (the 15-px
 * bold type is about 8.5 px a character).
 */
function wrapTitle(title: string, width: number): string[] {
  const budget = Math.max(20, Math.floor(width / 8.5));
  const lines: string[] = [];
  for (const word of title.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && `${last} ${word}`.length <= budget) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** A compact heat map: cells of a fixed size, each printing its value, the colour legend beside it as tall as the plot. */
function heatmapSvg(map: Heatmap, title: string): Promise<string> {
  const values = map.values.flatMap((row, r) =>
    row.map((value, c) => ({ row: map.rows[r], column: map.columns[c], value, shade: map.shades?.[r]?.[c] ?? value })),
  );
  const axis = (title: string, sort: string[]) => ({ type: 'nominal' as const, sort, axis: { labelLimit: 0, labelAngle: 0 }, title });
  const width = map.cell * map.columns.length;
  const height = map.cell * map.rows.length;
  return renderSvg({
    ...frame(''),
    title: { text: wrapTitle(title, width + 120) },
    width,
    height,
    config: { ...CONFIG, legend: { orient: 'right', direction: 'vertical', labelFontSize: 12, labelLimit: 0, gradientLength: height } },
    data: { values },
    encoding: { y: { field: 'row', ...axis(map.rowTitle, map.rows) }, x: { field: 'column', ...axis(map.columnTitle, map.columns) } },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: 'shade',
            type: 'quantitative',
            title: map.legendTitle,
            scale: { type: map.scaleType, domain: [0, 1], scheme: map.scheme },
            legend: { format: map.legendFormat },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: map.fontSize },
        encoding: {
          text: { field: 'value', type: 'quantitative', format: map.format },
          color: { condition: { test: 'datum.shade > 0.6', value: 'white' }, value: 'black' },
        },
      },
    ],
  });
}

/**
 * A transfer matrix as a heat map: rows are the models the FGSM examples were made on, columns the models that
 * scored them, each cell its error rate printed in it.
 */
export function transferHeatmapSvg(names: string[], errors: number[][], title: string): Promise<string> {
  return heatmapSvg(
    {
      rows: names,
      columns: names,
      values: errors,
      rowTitle: 'examples made on',
      columnTitle: 'scored by',
      format: '.1%',
      legendTitle: 'FGSM error',
      legendFormat: '.0%',
      cell: 72,
      fontSize: 13,
      scheme: 'reds',
      scaleType: 'linear',
    },
    title,
  );
}

/**
 * A confusion matrix (counts, [true][predicted]) as a heat map, each cell shaded by its share of its true class so
 * that rows of different sizes compare.
 */
export function confusionSvg(classes: number[], counts: number[][], title: string): Promise<string> {
  const labels = classes.map(String);
  return heatmapSvg(
    {
      rows: labels,
      columns: labels,
      values: counts,
      shades: counts.map((row) => {
        const total = row.reduce((a, b) => a + b, 0) || 1;
        return row.map((count) => count / total);
      }),
      rowTitle: 'true class',
      columnTitle: 'predicted class',
      format: 'd',
      legendTitle: 'share of true class',
      legendFormat: '.0%',
      cell: 34,
      fontSize: 11,
      scheme: 'blues',
      scaleType: 'sqrt',
    },
    title,
  );
}
