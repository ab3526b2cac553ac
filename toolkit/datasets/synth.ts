import type { ObjectSink } from '../locations';
import { BANDS, IMAGE_ELEMENTS, IMAGE_SIDE } from '../../functions/commons/partitions/galaxy';
import { writePartitions, type PartitionManifest, type PartitionTensors, type WriteProgress } from './partition-writer';

/**
 * A synthetic SDSS-like galaxy sample. Each object is drawn from its own seeded generator, so the
 * dataset depends on (seed, object index) alone: the same seed gives the same galaxies whatever
 * the partition size. Physics is deliberately simple but monotone in redshift, so a model can
 * learn z: fainter (distance modulus), smaller (angular diameter distance), redder (k-correction
 * and colours), with scatter from luminosity, size and type that keeps it from being trivial.
 *
 * Units: magnitudes are AB (u g r i z); image pixels are fluxes in nanomaggies (zero point 22.5)
 * at SDSS's 0.396″ per pixel, with sky noise per band.
 */

const PIXEL_ARCSEC = 0.396;
const HUBBLE_DISTANCE_MPC = 4283; // c / H0 for H0 = 70
const SKY_NOISE = [0.3, 0.08, 0.1, 0.15, 0.45]; // nanomaggies per pixel, u g r i z
const PSF_SIGMA_PX = 1.2;

/** lowbias32: a good 32-bit integer hash (the same one the model fixture's weight rule uses). */
export function lowbias32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** mulberry32: small, fast, and good enough for simulation noise. */
class Random {
  private state: number;
  private spare: number | undefined;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = 1 - this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

export interface Galaxy {
  redshift: number;
  magnitudes: number[];
  /** Half-light radius in pixels, before the PSF. */
  radiusPx: number;
  sersic: number;
}

const profile = new Float32Array(IMAGE_SIDE * IMAGE_SIDE);

/** Draws galaxy `index` of dataset `seed` into images[at..] (5×32×32) and returns its parameters. */
export function drawGalaxy(seed: number, index: number, image: Float32Array, at: number): Galaxy {
  const rng = new Random(lowbias32((seed ^ lowbias32(index + 1)) >>> 0));
  // SDSS-main-like redshifts: a gamma(3) bump near 0.1 with a tail.
  const z = Math.min(1.2, 0.01 - 0.04 * Math.log(rng.uniform() * rng.uniform() * rng.uniform() + 1e-12));
  const type = rng.uniform(); // 0: blue star-forming disk, 1: red elliptical
  const absoluteR = -20.6 - 0.6 * type + 0.8 * rng.normal();
  const luminosityDistance = HUBBLE_DISTANCE_MPC * z * (1 + 0.775 * z);
  const distanceModulus = 5 * Math.log10(luminosityDistance) + 25;
  const r = absoluteR + distanceModulus + (0.6 + 1.2 * type) * z;
  const g = r + 0.35 + 0.45 * type + 1.6 * z + 0.05 * rng.normal();
  const u = g + 1.0 + 0.8 * type + 1.2 * z + 0.08 * rng.normal();
  const i = r - (0.2 + 0.15 * type + 0.9 * z + 0.04 * rng.normal());
  const zb = i - (0.1 + 0.12 * type + 0.5 * z + 0.04 * rng.normal());
  const magnitudes = [u, g, r, i, zb];

  const radiusKpc = 10 ** (0.5 - 0.12 * (absoluteR + 21) + 0.12 * rng.normal()) * (1 - 0.3 * type);
  const angularDistance = luminosityDistance / (1 + z) ** 2;
  const radiusPx = Math.min(12, Math.max(0.5, (radiusKpc * 206.265) / angularDistance / PIXEL_ARCSEC));
  const sersic = 1 + 3 * type;
  const bn = 2 * sersic - 1 / 3;
  const axis = type > 0.5 ? 0.6 + 0.4 * rng.uniform() : 0.3 + 0.7 * rng.uniform();
  const angle = Math.PI * rng.uniform();
  const cx = (IMAGE_SIDE - 1) / 2 + (rng.uniform() - 0.5) * 2;
  const cy = (IMAGE_SIDE - 1) / 2 + (rng.uniform() - 0.5) * 2;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const psf2 = PSF_SIGMA_PX * PSF_SIGMA_PX;

  let total = 0;
  for (let y = 0, p = 0; y < IMAGE_SIDE; y++) {
    for (let x = 0; x < IMAGE_SIDE; x++, p++) {
      const dx = x - cx;
      const dy = y - cy;
      const major = dx * cos + dy * sin;
      const minor = (-dx * sin + dy * cos) / axis;
      // The PSF softens the core: a cheap stand-in for convolution.
      const radius = Math.sqrt(major * major + minor * minor + psf2) / radiusPx;
      const v = Math.exp(-bn * (radius ** (1 / sersic) - 1));
      profile[p] = v;
      total += v;
    }
  }
  for (let b = 0; b < BANDS; b++) {
    const flux = 10 ** (-0.4 * (magnitudes[b] - 22.5)) / total;
    const noise = SKY_NOISE[b];
    const base = at + b * IMAGE_SIDE * IMAGE_SIDE;
    for (let p = 0; p < profile.length; p++) image[base + p] = flux * profile[p] + noise * rng.normal();
  }
  // Measured magnitudes carry photometric errors that grow for faint objects.
  const measured = magnitudes.map((m) => m + (0.01 + 0.03 * 10 ** (0.4 * (m - 21))) * rng.normal());
  return { redshift: z, magnitudes: measured, radiusPx, sersic };
}

/** Fills the tensors with galaxies [start, start+count) of dataset `seed`. */
export function synthesizeInto(tensors: PartitionTensors, start: number, count: number, seed: number): void {
  for (let k = 0; k < count; k++) {
    const galaxy = drawGalaxy(seed, start + k, tensors.images, k * IMAGE_ELEMENTS);
    tensors.magnitudes.set(galaxy.magnitudes, k * BANDS);
    if (tensors.redshift) tensors.redshift[k] = galaxy.redshift;
  }
}

export interface SynthOptions {
  samples: number;
  maxBytes: number;
  seed: number;
  sink: ObjectSink;
  onProgress?(progress: WriteProgress): void;
}

export function synthesizeDataset(options: SynthOptions): Promise<PartitionManifest> {
  return writePartitions({
    samples: options.samples,
    maxBytes: options.maxBytes,
    labelled: true,
    sink: options.sink,
    onProgress: options.onProgress,
    fill: (tensors, start, count) => synthesizeInto(tensors, start, count, options.seed),
  });
}
