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
 * The paper's Fig. 1 / Fig. 2c–d layout for several test examples, in landscape: one column per example, its
 * rows x, sign(∇ₓJ) and x̃ = x + ε·sign(∇ₓJ), named at the left; under x and x̃ the model's prediction and
 * confidence (green when right, red when wrong), under the sign the true class. Adversarial pixels outside
 * [0, 1] are clipped for display only.
 */
export function examplesFigure(triples: ExampleTriple[], classes: number[], epsilon: number): Buffer {
  const names = [
    ['X', '(CLEAN)'],
    ['SIGN(GRAD J)', '(PERTURBATION)'],
    [`X + ${epsilon}`, 'SIGN(GRAD J)', '(ADVERSARIAL)'],
  ];
  const columns = triples.map((t) => {
    const before = prediction(t.cleanProbabilities, classes);
    const after = prediction(t.adversarialProbabilities, classes);
    const cells: [Float32Array, (v: number) => Rgb, string, Rgb][] = [
      [t.clean, grayScale, `${before.digit} ${(100 * before.confidence).toFixed(1)}%`, before.index === t.label ? GREEN : RED],
      [t.direction, signedScale, `TRUE ${classes[t.label]}`, BLACK],
      [t.adversarial, grayScale, `${after.digit} ${(100 * after.confidence).toFixed(1)}%`, after.index === t.label ? GREEN : RED],
    ];
    return cells;
  });
  const nameWidth = Math.max(...names.flat().map((line) => Raster.textWidth(line, FONT)));
  const columnWidth = Math.max(CELL, ...columns.flatMap((cells) => cells.map((c) => Raster.textWidth(c[2], FONT))));
  const rowHeight = Math.max(CELL + SPACE + TEXT, names.length * (TEXT + SPACE)) + GAP;
  const left = GAP + nameWidth + GAP;
  const raster = new Raster(left + Math.max(1, triples.length) * (columnWidth + GAP), GAP + names.length * rowHeight);
  names.forEach((lines, r) => {
    // each row's name centred beside its pictures
    const y = GAP + r * rowHeight + Math.floor((CELL - lines.length * (TEXT + SPACE) + SPACE) / 2);
    lines.forEach((line, i) => raster.text(GAP + nameWidth - Raster.textWidth(line, FONT), y + i * (TEXT + SPACE), line, BLACK, FONT));
  });
  const centred = (c: number, width: number) => left + c * (columnWidth + GAP) + Math.floor((columnWidth - width) / 2);
  columns.forEach((cells, c) => {
    cells.forEach(([values, color, label, labelColor], r) => {
      const y = GAP + r * rowHeight;
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
