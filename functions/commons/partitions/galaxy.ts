import { numelOf } from '../tensors/tensor-file';

/**
 * What one object of CAI's own partitions is (the prototype's format, `cai synth` and `cai split`
 * write it): a 5-band 32×32 cutout and 5 magnitudes (u g r i z), with a redshift when labelled.
 */
export const BANDS = 5;
export const IMAGE_SIDE = 32;
export const IMAGE_SHAPE = [BANDS, IMAGE_SIDE, IMAGE_SIDE];
export const IMAGE_ELEMENTS = numelOf(IMAGE_SHAPE);
export const MAGNITUDE_SHAPE = [BANDS];
/** Bytes of one galaxy in a float32 partition: its 5×32×32 image, 5 magnitudes and 1 redshift. */
export const BYTES_PER_GALAXY = (IMAGE_ELEMENTS + BANDS + 1) * 4;
