import { writeFileSync } from 'node:fs';
import { BANDS, IMAGE_ELEMENTS, IMAGE_SHAPE } from '../../functions/commons/partitions/galaxy';
import { synthesizeInto } from '../../toolkit/datasets/synth';
import type { DType } from '../../functions/commons/tensors/dtype';
import { TorchDatasetArchive } from '../../toolkit/datasets/torch-writer';

/**
 * A labelled partition of `samples` synthetic galaxies written with the given dtype for all three
 * tensors, after `edit` has changed the float32 values (e.g. a NaN pixel).
 */
export function writeTestPartition(
  file: string,
  samples: number,
  options: {
    dtype?: DType;
    seed?: number;
    edit?: (t: { images: Float32Array; magnitudes: Float32Array; redshift: Float32Array }) => void;
  } = {},
): void {
  const dtype = options.dtype ?? 'float32';
  const tensors = {
    images: new Float32Array(samples * IMAGE_ELEMENTS),
    magnitudes: new Float32Array(samples * BANDS),
    redshift: new Float32Array(samples),
  };
  synthesizeInto(tensors, 0, samples, options.seed ?? 7);
  options.edit?.(tensors);
  const archive = new TorchDatasetArchive([
    { dtype, shape: [samples, ...IMAGE_SHAPE] },
    { dtype, shape: [samples, BANDS] },
    { dtype, shape: [samples] },
  ]);
  [tensors.images, tensors.magnitudes, tensors.redshift].forEach((values, i) => {
    const target = archive.tensor(i) as Float32Array | Float64Array;
    target.set(values);
  });
  writeFileSync(file, archive.finish());
}
