import { PNG } from 'pngjs';
import { GLYPH_WIDTH, glyph } from './font.js';

export type Rgb = [number, number, number];

/** An RGB picture to draw MNIST images and labels into, then encode as PNG. */
export class Raster {
  private readonly png: PNG;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.png = new PNG({ width, height });
    this.fillRect(0, 0, width, height, background);
  }

  setPixel(x: number, y: number, [r, g, b]: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.png.data[i] = r;
    this.png.data[i + 1] = g;
    this.png.data[i + 2] = b;
    this.png.data[i + 3] = 255;
  }

  fillRect(x: number, y: number, w: number, h: number, color: Rgb): void {
    for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) this.setPixel(xx, yy, color);
  }

  /**
   * Draws a side×side image, each value mapped through `color`, each pixel as a scale×scale block.
   */
  image(values: ArrayLike<number>, side: number, x: number, y: number, scale: number, color: (v: number) => Rgb): void {
    for (let r = 0; r < side; r++) {
      for (let c = 0; c < side; c++) this.fillRect(x + c * scale, y + r * scale, scale, scale, color(values[r * side + c]!));
    }
  }

  /** Draws text with the 5×7 font, `scale` pixels per font pixel; returns the width drawn. */
  text(x: number, y: number, text: string, color: Rgb, scale = 1): number {
    let cursor = x;
    for (const char of text) {
      glyph(char).forEach((row, r) =>
        row.forEach((on, c) => {
          if (on) this.fillRect(cursor + c * scale, y + r * scale, scale, scale, color);
        }),
      );
      cursor += (GLYPH_WIDTH + 1) * scale;
    }
    return cursor - x;
  }

  static textWidth(text: string, scale = 1): number {
    return [...text].length * (GLYPH_WIDTH + 1) * scale;
  }

  encode(): Buffer {
    return PNG.sync.write(this.png);
  }
}

const clamp255 = (v: number): number => Math.max(0, Math.min(255, Math.round(v)));

/** Pixel intensity in [0, 1] as gray (values outside are clipped for display only). */
export const grayScale = (v: number): Rgb => {
  const g = clamp255(v * 255);
  return [g, g, g];
};

/** A signed value in [−1, 1]: black for −1, mid gray for 0, white for +1 (the paper's sign pictures). */
export const signedScale = (v: number): Rgb => grayScale((v + 1) / 2);
