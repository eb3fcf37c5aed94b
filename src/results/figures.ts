import type { ExampleTriple } from '../eval/evaluate.js';
import { GLYPH_HEIGHT } from './font.js';
import { grayScale, Raster, signedScale, type Rgb } from './raster.js';

const SIDE = 28;
const SCALE = 4;
const CELL = SIDE * SCALE;
/** The 5×7 font at 2×: 14-pixel capitals, readable at the PNG's natural size (at 1× they were 7 pixels). */
const FONT = 2;
const TEXT = GLYPH_HEIGHT * FONT;
const GAP = 16;
/** Space between a picture and its label. */
const SPACE = 6;
const BLACK: Rgb = [0, 0, 0];
const RED: Rgb = [200, 0, 0];
const GREEN: Rgb = [0, 120, 0];

function prediction(probabilities: Float32Array, classes: number[]): { digit: number; index: number; confidence: number } {
  let index = 0;
  for (let j = 1; j < probabilities.length; j++) if (probabilities[j]! > probabilities[index]!) index = j;
  return { digit: classes[index]!, index, confidence: probabilities[index]! };
}

/**
 * The paper's Fig. 1 / Fig. 2c–d layout for several test examples: each row shows x, sign(∇ₓJ) and
 * x̃ = x + ε·sign(∇ₓJ), with the model's prediction and confidence (green when right, red when wrong).
 * Adversarial pixels outside [0, 1] are clipped for display only.
 */
export function examplesFigure(triples: ExampleTriple[], classes: number[], epsilon: number): Buffer {
  const headers = ['X (CLEAN)', 'SIGN(GRAD J)', `X + ${epsilon} SIGN`];
  const rows = triples.map((t) => {
    const before = prediction(t.cleanProbabilities, classes);
    const after = prediction(t.adversarialProbabilities, classes);
    const cells: [Float32Array, (v: number) => Rgb, string, Rgb][] = [
      [t.clean, grayScale, `${before.digit} ${(100 * before.confidence).toFixed(1)}%`, before.index === t.label ? GREEN : RED],
      [t.direction, signedScale, `TRUE ${classes[t.label]}`, BLACK],
      [t.adversarial, grayScale, `${after.digit} ${(100 * after.confidence).toFixed(1)}%`, after.index === t.label ? GREEN : RED],
    ];
    return cells;
  });
  const texts = [...headers, ...rows.flatMap((cells) => cells.map((c) => c[2]))];
  const columnWidth = Math.max(CELL, ...texts.map((h) => Raster.textWidth(h, FONT)));
  const rowHeight = CELL + SPACE + TEXT + GAP;
  const top = GAP + TEXT + SPACE;
  const raster = new Raster(GAP + 3 * (columnWidth + GAP), top + rowHeight * Math.max(1, triples.length));
  // each column centres its picture, header and labels
  const centred = (c: number, width: number) => GAP + c * (columnWidth + GAP) + Math.floor((columnWidth - width) / 2);
  headers.forEach((h, c) => raster.text(centred(c, Raster.textWidth(h, FONT)), GAP, h, BLACK, FONT));
  rows.forEach((cells, r) => {
    const y = top + r * rowHeight;
    cells.forEach(([values, color, label, labelColor], c) => {
      raster.image(values, SIDE, centred(c, CELL), y, SCALE, color);
      raster.text(centred(c, Raster.textWidth(label, FONT)), y + CELL + SPACE, label, labelColor, FONT);
    });
  });
  return raster.encode();
}

/**
 * Fig. 2a–b: the weight vector w of logistic regression as an image (scaled by its largest magnitude:
 * black negative, gray zero, white positive) and sign(w), the direction of the optimal max-norm perturbation.
 */
export function weightsFigure(w: Float32Array): Buffer {
  const scale = 5;
  const cell = SIDE * scale;
  const top = GAP + TEXT + SPACE;
  const raster = new Raster(GAP + 2 * (cell + GAP), top + cell + GAP);
  const maxAbs = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
  const pictures: [string, Float32Array][] = [
    ['W', w.map((v) => v / maxAbs)],
    ['SIGN(W)', w.map((v) => Math.sign(v))],
  ];
  pictures.forEach(([title, values], c) => {
    const x = GAP + c * (cell + GAP);
    raster.text(x, GAP, title, BLACK, FONT);
    raster.image(values, SIDE, x, top, scale, signedScale);
  });
  return raster.encode();
}
