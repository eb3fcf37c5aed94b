import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { EpochRecord } from '../train/loop.js';

/** Renders a vega-lite spec to SVG in Node (no browser). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const frame = (title: string) => ({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, width: 480, height: 280 }) as const;

/**
 * Training and validation error (clean, and adversarial when measured) per epoch, the chosen epoch marked by a
 * rule. Stage 2's epochs follow stage 1's on the axis, in their own series.
 */
export function trainingCurveSvg(history: EpochRecord[], chosenEpoch: number, title: string): Promise<string> {
  const values = history.flatMap((r, i) => {
    const epoch = i + 1;
    return [
      { epoch, error: r.trainError, series: r.stage === 1 ? 'training (minibatches)' : 'stage 2 training, all 60,000 (minibatches)' },
      ...(r.validationError === null ? [] : [{ epoch, error: r.validationError, series: 'validation' }]),
      ...(r.adversarialValidationError === null ? [] : [{ epoch, error: r.adversarialValidationError, series: 'validation, FGSM' }]),
    ];
  });
  return renderSvg({
    ...frame(title),
    layer: [
      {
        data: { values },
        mark: { type: 'line', point: history.length <= 60 },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
          y: { field: 'error', type: 'quantitative', title: 'error rate', axis: { format: '.1%' }, scale: { type: 'log' } },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
      {
        data: { values: [{ epoch: chosenEpoch }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
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

/** FGSM error and confidence on mistakes against ε. */
export function sweepSvg(points: SweepPoint[], title: string): Promise<string> {
  const values = points.flatMap((p) => [
    { epsilon: p.epsilon, value: p.error, series: 'error rate' },
    ...(p.meanConfidenceOnMistakes === null
      ? []
      : [{ epsilon: p.epsilon, value: p.meanConfidenceOnMistakes, series: 'mean confidence on mistakes' }]),
  ]);
  return renderSvg({
    ...frame(title),
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epsilon', type: 'quantitative', title: 'ε (L∞ step of FGSM)' },
      y: { field: 'value', type: 'quantitative', title: null, axis: { format: '.0%' }, scale: { domain: [0, 1] } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  });
}
