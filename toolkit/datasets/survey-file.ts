import { writeFile } from 'node:fs/promises';
import { UsageError } from '../../functions/commons/errors';
import { BANDS, IMAGE_ELEMENTS, IMAGE_SHAPE } from '../../functions/commons/partitions/galaxy';
import { synthesizeInto } from './synth';

/**
 * The synthetic survey as one file of a format astronomers keep data in, written by that format's
 * well-kept writer (h5wasm: the HDF5 library itself; hyparquet-writer) or CAI's own small ones (.npz,
 * FITS): `images` [N, 5, 32, 32] float32, `magnitudes` [N, 5] and `redshift` [N], the same galaxies
 * `cai synth` writes as .pt for the same seed. docs/data.md has the card that feeds each to a model.
 */

export const SURVEY_FORMATS = ['hdf5', 'fits', 'parquet', 'npz'] as const;
export type SurveyFormat = (typeof SURVEY_FORMATS)[number];
export const SURVEY_EXTENSION: Record<SurveyFormat, string> = { hdf5: '.h5', fits: '.fits', parquet: '.parquet', npz: '.npz' };

/** Galaxies a survey file is written with at most: it is built in memory (~21 KB each as float32; Parquet's lists take more while written). */
export const MAX_SURVEY_SAMPLES: Record<SurveyFormat, number> = { hdf5: 100_000, fits: 100_000, parquet: 20_000, npz: 100_000 };

export interface SurveyArrays {
  samples: number;
  images: Float32Array;
  magnitudes: Float32Array;
  redshift: Float32Array;
}

/** The galaxies of a seed, in memory. */
export function surveyArrays(samples: number, seed: number): SurveyArrays {
  const arrays = {
    samples,
    images: new Float32Array(samples * IMAGE_ELEMENTS),
    magnitudes: new Float32Array(samples * BANDS),
    redshift: new Float32Array(samples),
  };
  synthesizeInto(arrays, 0, samples, seed);
  return arrays;
}

/** HDF5 as h5py would write a survey: images chunked by rows and gzip-compressed, the catalogue contiguous. */
async function writeHdf5(path: string, arrays: SurveyArrays): Promise<void> {
  const h5wasm = await import('h5wasm/node');
  await h5wasm.ready;
  const file = new h5wasm.File(path, 'w');
  try {
    const rowsPerChunk = Math.min(arrays.samples, 64);
    file.create_dataset({
      name: 'images',
      data: arrays.images,
      shape: [arrays.samples, ...IMAGE_SHAPE],
      dtype: '<f4',
      chunks: [rowsPerChunk, ...IMAGE_SHAPE],
      compression: 'gzip',
      compression_opts: 4,
    });
    file.create_dataset({ name: 'magnitudes', data: arrays.magnitudes, shape: [arrays.samples, BANDS], dtype: '<f4' });
    file.create_dataset({ name: 'redshift', data: arrays.redshift, shape: [arrays.samples], dtype: '<f4' });
  } finally {
    file.close();
  }
}

/** Parquet as pyarrow would write a catalogue with cutouts: images and magnitudes as lists of floats per row, in row groups. */
async function writeParquet(path: string, arrays: SurveyArrays): Promise<void> {
  const { parquetWriteFile } = await import('hyparquet-writer');
  const rows = (data: Float32Array, per: number) =>
    Array.from({ length: arrays.samples }, (_, i) => Array.from(data.subarray(i * per, (i + 1) * per)));
  const list = (name: string) => [
    { name, repetition_type: 'REQUIRED' as const, num_children: 1, converted_type: 'LIST' as const },
    { name: 'list', repetition_type: 'REPEATED' as const, num_children: 1 },
    { name: 'element', type: 'FLOAT' as const, repetition_type: 'REQUIRED' as const },
  ];
  await parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'images', data: rows(arrays.images, IMAGE_ELEMENTS) },
      { name: 'magnitudes', data: rows(arrays.magnitudes, BANDS) },
      { name: 'redshift', data: Array.from(arrays.redshift) },
    ],
    schema: [
      { name: 'root', num_children: 3 },
      ...list('images'),
      ...list('magnitudes'),
      { name: 'redshift', type: 'FLOAT', repetition_type: 'REQUIRED' },
    ],
    rowGroupSize: 2048,
  });
}

async function writeNpzFile(path: string, arrays: SurveyArrays): Promise<void> {
  const { writeNpz } = await import('./npz-writer');
  await writeFile(
    path,
    writeNpz({
      images: { dtype: 'float32', shape: [arrays.samples, ...IMAGE_SHAPE], data: arrays.images },
      magnitudes: { dtype: 'float32', shape: [arrays.samples, BANDS], data: arrays.magnitudes },
      redshift: { dtype: 'float32', shape: [arrays.samples], data: arrays.redshift },
    }),
  );
}

/** FITS as survey cutouts come: a primary cube of images (big-endian float32) and a CATALOG binary table. */
async function writeFits(path: string, arrays: SurveyArrays): Promise<void> {
  const { writeFitsSurvey } = await import('./fits-writer');
  await writeFile(
    path,
    writeFitsSurvey({
      images: arrays.images,
      imageShape: IMAGE_SHAPE,
      columns: [
        { name: 'MAG', values: arrays.magnitudes, perRow: BANDS },
        { name: 'REDSHIFT', values: arrays.redshift },
      ],
    }),
  );
}

const WRITERS: Record<SurveyFormat, (path: string, arrays: SurveyArrays) => Promise<void>> = {
  hdf5: writeHdf5,
  fits: writeFits,
  parquet: writeParquet,
  npz: writeNpzFile,
};

/** Writes `samples` galaxies of `seed` as one survey file at `path`. */
export async function writeSurveyFile(format: SurveyFormat, path: string, samples: number, seed: number): Promise<void> {
  if (samples > MAX_SURVEY_SAMPLES[format]) {
    throw new UsageError(`--samples ${samples}: a ${format} survey file is written with at most ${MAX_SURVEY_SAMPLES[format]} galaxies`);
  }
  await WRITERS[format](path, surveyArrays(samples, seed));
}
