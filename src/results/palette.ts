/**
 * One colour per series, the same in every figure. Vega's default scheme colours series by their place in the
 * legend, so a series changed colour when another one sorted before it (training turned orange once a stage-2
 * series appeared). The order here is the legends' order.
 */
export const SERIES_COLOURS = {
  'training (minibatches)': '#4c78a8',
  'stage 2 training, all 60,000 (minibatches)': '#72b7b2',
  validation: '#f58518',
  'validation, FGSM': '#e45756',
  'FGSM error rate': '#54a24b',
  'mean confidence on mistakes': '#b279a2',
} as const;

export type Series = keyof typeof SERIES_COLOURS;

/** A vega-lite colour scale for the series a figure draws, in the palette's order. */
export function seriesColourScale(present: Iterable<Series>): { domain: Series[]; range: string[] } {
  const drawn = new Set(present);
  const domain = (Object.keys(SERIES_COLOURS) as Series[]).filter((s) => drawn.has(s));
  return { domain, range: domain.map((s) => SERIES_COLOURS[s]) };
}
