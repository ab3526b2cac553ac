import type { ObjectSink } from '../locations';
import { BANDS, IMAGE_ELEMENTS, IMAGE_SIDE } from '../../functions/commons/partitions/galaxy';
import {
  writePartitions,
  type PartitionLayout,
  type PartitionManifest,
  type PartitionTensors,
  type WriteProgress,
} from './partition-writer';

/**
 * A synthetic SDSS-like galaxy sample. Each object is drawn from its own seeded generator, so the
 * dataset depends on (seed, object index) alone: the same seed gives the same galaxies whatever
 * the partition size. Physics is deliberately simple but monotone in redshift, so a model can
 * learn z: fainter (distance modulus), smaller (angular diameter distance), redder (k-correction
 * and colours), with scatter from luminosity, size and type that keeps it from being trivial.
 *
 * Units: magnitudes are AB (u g r i z); image pixels are fluxes in nanomaggies (zero point 22.5)
 * at SDSS's 0.396″ per pixel, with sky noise per band.
 *
 * Each galaxy also has a morphology class, read off the same `type` that shapes its profile and
 * colours, and a chosen few can be turned into oddities (see `oddityOf`) for anomaly detection.
 */

const PIXEL_ARCSEC = 0.396;
const HUBBLE_DISTANCE_MPC = 4283; // c / H0 for H0 = 70
const SKY_NOISE = [0.3, 0.08, 0.1, 0.15, 0.45]; // nanomaggies per pixel, u g r i z
const PSF_SIGMA_PX = 1.2;

// Math, bound once: under jest each module runs in a vm context, where every lookup of a global
// goes through the context's interceptor, and these loops (a few thousand calls a galaxy) ran ten
// times slower there than in node. A module binding is looked up once.
const math = Math;

/** lowbias32: a good 32-bit integer hash (the same one the model fixture's weight rule uses). */
export function lowbias32(x: number): number {
  x ^= x >>> 16;
  x = math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = math.imul(x, 0x846ca68b);
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
    t = math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = 1 - this.uniform();
    const r = math.sqrt(-2 * math.log(u));
    const a = 2 * math.PI * this.uniform();
    this.spare = r * math.sin(a);
    return r * math.cos(a);
  }
}

export interface Galaxy {
  redshift: number;
  magnitudes: number[];
  /** Half-light radius in pixels, before the PSF. */
  radiusPx: number;
  sersic: number;
  /** 0: blue star-forming disk … 1: red elliptical. */
  type: number;
  /** Index into MORPHOLOGIES. */
  morphology: number;
}

/** Morphology classes, in label order: thirds of the galaxy's type. */
export const MORPHOLOGIES = ['disk', 'lenticular', 'elliptical'] as const;

export const morphologyOf = (type: number): number => (type < 1 / 3 ? 0 : type < 2 / 3 ? 1 : 2);

const profile = new Float32Array(IMAGE_SIDE * IMAGE_SIDE);

/** Draws galaxy `index` of dataset `seed` into images[at..] (5×32×32) and returns its parameters. */
export function drawGalaxy(seed: number, index: number, image: Float32Array, at: number): Galaxy {
  const rng = new Random(lowbias32((seed ^ lowbias32(index + 1)) >>> 0));
  // SDSS-main-like redshifts: a gamma(3) bump near 0.1 with a tail.
  const z = math.min(1.2, 0.01 - 0.04 * math.log(rng.uniform() * rng.uniform() * rng.uniform() + 1e-12));
  const type = rng.uniform(); // 0: blue star-forming disk, 1: red elliptical
  const absoluteR = -20.6 - 0.6 * type + 0.8 * rng.normal();
  const luminosityDistance = HUBBLE_DISTANCE_MPC * z * (1 + 0.775 * z);
  const distanceModulus = 5 * math.log10(luminosityDistance) + 25;
  const r = absoluteR + distanceModulus + (0.6 + 1.2 * type) * z;
  const g = r + 0.35 + 0.45 * type + 1.6 * z + 0.05 * rng.normal();
  const u = g + 1.0 + 0.8 * type + 1.2 * z + 0.08 * rng.normal();
  const i = r - (0.2 + 0.15 * type + 0.9 * z + 0.04 * rng.normal());
  const zb = i - (0.1 + 0.12 * type + 0.5 * z + 0.04 * rng.normal());
  const magnitudes = [u, g, r, i, zb];

  const radiusKpc = 10 ** (0.5 - 0.12 * (absoluteR + 21) + 0.12 * rng.normal()) * (1 - 0.3 * type);
  const angularDistance = luminosityDistance / (1 + z) ** 2;
  const radiusPx = math.min(12, math.max(0.5, (radiusKpc * 206.265) / angularDistance / PIXEL_ARCSEC));
  const sersic = 1 + 3 * type;
  const bn = 2 * sersic - 1 / 3;
  const axis = type > 0.5 ? 0.6 + 0.4 * rng.uniform() : 0.3 + 0.7 * rng.uniform();
  const angle = math.PI * rng.uniform();
  const cx = (IMAGE_SIDE - 1) / 2 + (rng.uniform() - 0.5) * 2;
  const cy = (IMAGE_SIDE - 1) / 2 + (rng.uniform() - 0.5) * 2;
  const cos = math.cos(angle);
  const sin = math.sin(angle);
  const psf2 = PSF_SIGMA_PX * PSF_SIGMA_PX;

  let total = 0;
  for (let y = 0, p = 0; y < IMAGE_SIDE; y++) {
    for (let x = 0; x < IMAGE_SIDE; x++, p++) {
      const dx = x - cx;
      const dy = y - cy;
      const major = dx * cos + dy * sin;
      const minor = (-dx * sin + dy * cos) / axis;
      // The PSF softens the core: a cheap stand-in for convolution.
      const radius = math.sqrt(major * major + minor * minor + psf2) / radiusPx;
      const v = math.exp(-bn * (radius ** (1 / sersic) - 1));
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
  return { redshift: z, magnitudes: measured, radiusPx, sersic, type, morphology: morphologyOf(type) };
}

/** What an oddity does to a cutout; magnitudes and labels stay the galaxy's. */
export const ODDITY_KINDS = [
  'trail', // a satellite trail: a bright straight line across every band
  'spike', // a cosmic-ray hit: a few very bright pixels in one band
  'dropout', // lost readout: the lower rows of one band are zero, without sky noise
  'point', // a bright point source with a colour no galaxy has (all its light in u–g, or in i–z)
] as const;
export type OddityKind = (typeof ODDITY_KINDS)[number];

const ODDITY_SALT = 0x0dd17e55;
const oddityHash = (seed: number, index: number) => lowbias32((lowbias32((seed ^ ODDITY_SALT) >>> 0) + index) >>> 0);

/**
 * Whether object `index` of dataset `seed` is an oddity when a `fraction` of them are, and which
 * kind. Decided by a hash of (seed, index) alone, never by the galaxy's own generator, so the
 * galaxies themselves do not change; a larger fraction keeps every oddity of a smaller one.
 */
export function oddityOf(seed: number, index: number, fraction: number): OddityKind | undefined {
  const hash = oddityHash(seed, index);
  if (hash / 4294967296 >= fraction) return undefined;
  return ODDITY_KINDS[lowbias32(hash ^ 0x9e3779b9) % ODDITY_KINDS.length];
}

const PLANE = IMAGE_SIDE * IMAGE_SIDE;

/** Turns the cutout at images[at..] into an oddity of this kind, with its own seeded generator. */
export function injectOddity(kind: OddityKind, seed: number, index: number, image: Float32Array, at: number): void {
  const rng = new Random(lowbias32(oddityHash(seed, index) ^ 0x85ebca6b));
  const band = math.floor(rng.uniform() * BANDS);
  if (kind === 'trail') {
    // A line at any angle passing within 8 px of the centre, about as bright as sunlight's colours.
    const angle = math.PI * rng.uniform();
    const offset = (rng.uniform() - 0.5) * 16;
    const peak = 10 ** (rng.uniform() + 0.3); // 2–20 nanomaggies per pixel in r
    const colour = [0.4, 0.8, 1, 1.1, 1.1];
    const nx = -math.sin(angle);
    const ny = math.cos(angle);
    const centre = (IMAGE_SIDE - 1) / 2;
    for (let y = 0, p = 0; y < IMAGE_SIDE; y++) {
      for (let x = 0; x < IMAGE_SIDE; x++, p++) {
        const d = (x - centre) * nx + (y - centre) * ny - offset;
        const v = peak * math.exp((-d * d) / (2 * 0.8 * 0.8));
        for (let b = 0; b < BANDS; b++) image[at + b * PLANE + p] += colour[b] * v;
      }
    }
  } else if (kind === 'spike') {
    // A short streak of 1–4 pixels, 30–300 times the band's sky noise.
    const length = 1 + math.floor(rng.uniform() * 4);
    const horizontal = rng.uniform() < 0.5;
    let x = math.floor(rng.uniform() * (IMAGE_SIDE - length));
    let y = math.floor(rng.uniform() * (IMAGE_SIDE - length));
    for (let k = 0; k < length; k++) {
      image[at + band * PLANE + y * IMAGE_SIDE + x] += SKY_NOISE[band] * 30 * 10 ** rng.uniform();
      if (horizontal) x++;
      else y++;
    }
  } else if (kind === 'dropout') {
    const first = math.floor(rng.uniform() * 25); // at least 8 rows lost
    image.fill(0, at + band * PLANE + first * IMAGE_SIDE, at + (band + 1) * PLANE);
  } else {
    // Off the galaxy's centre, magnitude 16–18 in its brightest band; blue (u, g) or red (i, z).
    const colour = rng.uniform() < 0.5 ? [1, 0.4, 0.05, 0.02, 0.01] : [0, 0.01, 0.05, 0.5, 1];
    const flux = 10 ** (-0.4 * (16 + 2 * rng.uniform() - 22.5));
    const angle = 2 * math.PI * rng.uniform();
    const distance = 4 + 6 * rng.uniform();
    const cx = (IMAGE_SIDE - 1) / 2 + distance * math.cos(angle);
    const cy = (IMAGE_SIDE - 1) / 2 + distance * math.sin(angle);
    const psf2 = PSF_SIGMA_PX * PSF_SIGMA_PX;
    for (let y = 0, p = 0; y < IMAGE_SIDE; y++) {
      for (let x = 0; x < IMAGE_SIDE; x++, p++) {
        const v = (flux / (2 * math.PI * psf2)) * math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * psf2));
        for (let b = 0; b < BANDS; b++) image[at + b * PLANE + p] += colour[b] * v;
      }
    }
  }
}

/**
 * Fills the tensors with galaxies [start, start+count) of dataset `seed`, a fraction `oddities` of
 * them made odd; the morphology and anomaly labels too when the tensors have room for them.
 */
export function synthesizeInto(tensors: PartitionTensors, start: number, count: number, seed: number, oddities = 0): void {
  for (let k = 0; k < count; k++) {
    const galaxy = drawGalaxy(seed, start + k, tensors.images, k * IMAGE_ELEMENTS);
    const oddity = oddities > 0 ? oddityOf(seed, start + k, oddities) : undefined;
    if (oddity) injectOddity(oddity, seed, start + k, tensors.images, k * IMAGE_ELEMENTS);
    tensors.magnitudes.set(galaxy.magnitudes, k * BANDS);
    if (tensors.redshift) tensors.redshift[k] = galaxy.redshift;
    if (tensors.morphology) tensors.morphology[k] = BigInt(galaxy.morphology);
    if (tensors.anomaly) tensors.anomaly[k] = oddity ? 1 : 0;
  }
}

export interface SynthOptions {
  samples: number;
  maxBytes: number;
  seed: number;
  /** Fraction of objects made into oddities, 0 (the default) for none. */
  oddities?: number;
  /** `dict` partitions also carry `morphology`, and `anomaly` when there are oddities. */
  layout?: PartitionLayout;
  sink: ObjectSink;
  onProgress?(progress: WriteProgress): void;
}

export function synthesizeDataset(options: SynthOptions): Promise<PartitionManifest> {
  const { oddities = 0, layout = 'dataset' } = options;
  return writePartitions({
    samples: options.samples,
    maxBytes: options.maxBytes,
    labelled: true,
    contents: { layout, morphology: layout === 'dict', anomaly: oddities > 0 },
    sink: options.sink,
    onProgress: options.onProgress,
    fill: (tensors, start, count) => synthesizeInto(tensors, start, count, options.seed, oddities),
  });
}
