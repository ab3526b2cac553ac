import type { RgbImage } from './png';

/**
 * An object's cutout as a colour thumbnail, the way survey images are usually shown (Lupton et al.
 * 2004): three bands as red, green and blue, each less its sky, scaled together by an asinh of
 * their mean intensity so faint outskirts and a bright core both show and colours keep their ratios.
 */

/** The bands drawn as red, green and blue: i, r, g of a 5-band SDSS cutout (u g r i z), else the first three. */
export function compositeBands(channels: number): [number, number, number] {
  if (channels < 3) throw new RangeError(`a colour composite needs 3 bands, the image has ${channels}`);
  return channels === 5 ? [3, 2, 1] : [0, 1, 2];
}

/**
 * Intensity → [0, 1]: 0 at and below the sky, 1 at `top`; linear well below `softening`,
 * logarithmic above it, so a pixel at a few percent of the peak is still seen.
 */
export function asinhStretch(intensity: number, softening: number, top: number): number {
  if (!(intensity > 0)) return 0;
  return Math.min(1, Math.asinh(intensity / softening) / Math.asinh(top / softening));
}

/** The q-quantile of the finite values (nearest rank); 0 when there are none. */
function quantile(values: ArrayLike<number>, q: number): number {
  const finite: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) finite.push(values[i]);
  finite.sort((a, b) => a - b);
  return finite.length ? finite[Math.min(finite.length - 1, Math.floor(q * finite.length))] : 0;
}

/** Of the intensities, the one drawn at full brightness: a high quantile, so a few hot pixels do not darken the rest. */
const TOP_QUANTILE = 0.995;
/** The softening is at least this share of the top: a noiseless image is still stretched, not turned into a mask. */
const MIN_SOFTENING = 1 / 50;

/** One object's [C, H, W] pixels (row-major) as an RGB image of H × W. */
export function rgbComposite(pixels: Float32Array, channels: number, height: number, width: number): RgbImage {
  const plane = height * width;
  if (pixels.length !== channels * plane) throw new RangeError(`${pixels.length} pixels for a [${channels}, ${height}, ${width}] image`);
  // Each band less its sky (its median: a cutout's object covers a minority of it); non-finite pixels as sky.
  const bands = compositeBands(channels).map((b) => {
    const band = Float64Array.from(pixels.subarray(b * plane, (b + 1) * plane));
    const sky = quantile(band, 0.5);
    return band.map((v) => (Number.isFinite(v) ? v - sky : 0));
  });
  const intensity = bands[0].map((r, p) => (r + bands[1][p] + bands[2][p]) / 3);
  const centre = quantile(intensity, 0.5);
  const noise =
    1.4826 *
    quantile(
      intensity.map((v) => Math.abs(v - centre)),
      0.5,
    );
  // A source smaller than the quantile's share of the pixels (a point) is scaled by its own peak.
  const top = quantile(intensity, TOP_QUANTILE) || intensity.reduce((a, b) => Math.max(a, b), 0);
  const rgb = new Uint8Array(plane * 3);
  if (!(top > 0)) return { width, height, rgb };
  const softening = Math.max(noise, top * MIN_SOFTENING);
  for (let p = 0; p < plane; p++) {
    const i = intensity[p];
    if (!(i > 0)) continue;
    const scale = asinhStretch(i, softening, top) / i;
    const colour = bands.map((band) => Math.max(0, band[p] * scale));
    // A colour brighter than white is dimmed as a whole, keeping its hue rather than clipping a band.
    const brightest = colour.reduce((a, b) => Math.max(a, b), 1);
    colour.forEach((c, k) => (rgb[p * 3 + k] = Math.round((255 * c) / brightest)));
  }
  return { width, height, rgb };
}
