import type { ExampleTriple } from '../eval/evaluate.js';
import { grayScale, Raster, signedScale, type Rgb } from './raster.js';

const SIDE = 28;
const SCALE = 3;
const CELL = SIDE * SCALE;
const GAP = 12;
const LABEL = 12;
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
  const columnWidth = Math.max(CELL, ...headers.map((h) => Raster.textWidth(h))) + GAP;
  const rowHeight = CELL + LABEL + GAP;
  const top = 16;
  const raster = new Raster(columnWidth * 3 + GAP, top + rowHeight * Math.max(1, triples.length));
  headers.forEach((h, c) => raster.text(GAP + c * columnWidth, 4, h, BLACK));
  triples.forEach((t, r) => {
    const y = top + r * rowHeight;
    const before = prediction(t.cleanProbabilities, classes);
    const after = prediction(t.adversarialProbabilities, classes);
    const cells: [Float32Array, (v: number) => Rgb, string, Rgb][] = [
      [t.clean, grayScale, `${before.digit} ${(100 * before.confidence).toFixed(1)}%`, before.index === t.label ? GREEN : RED],
      [t.direction, signedScale, `TRUE ${classes[t.label]}`, BLACK],
      [t.adversarial, grayScale, `${after.digit} ${(100 * after.confidence).toFixed(1)}%`, after.index === t.label ? GREEN : RED],
    ];
    cells.forEach(([values, color, label, labelColor], c) => {
      const x = GAP + c * columnWidth;
      raster.image(values, SIDE, x, y, SCALE, color);
      raster.text(x, y + CELL + 3, label, labelColor);
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
  const raster = new Raster(cell * 2 + GAP * 3, cell + 16 + GAP);
  const maxAbs = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
  raster.text(GAP, 4, 'W', BLACK);
  raster.text(GAP * 2 + cell, 4, 'SIGN(W)', BLACK);
  raster.image(
    w.map((v) => v / maxAbs),
    SIDE,
    GAP,
    16,
    scale,
    signedScale,
  );
  raster.image(
    w.map((v) => Math.sign(v)),
    SIDE,
    GAP * 2 + cell,
    16,
    scale,
    signedScale,
  );
  return raster.encode();
}
