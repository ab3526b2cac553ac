import type { ByteSource } from '../../functions/commons/tensors/byte-source';
import type { ObjectSink } from '../locations';
import { ROWS_PER_CHUNK, openTorchPartition } from './galaxy-partition';
import { BANDS, IMAGE_ELEMENTS } from '../../functions/commons/partitions/galaxy';
import { writePartitions, type PartitionManifest, type WriteProgress } from './partition-writer';

/**
 * Splits one dataset file into partitions of at most `maxBytes`. The input is read range by range,
 * so a multi-GB file needs memory for one output partition and one read chunk, not for itself.
 */
export async function splitDataset(
  input: ByteSource,
  sink: ObjectSink,
  maxBytes: number,
  onProgress?: (progress: WriteProgress) => void,
): Promise<PartitionManifest> {
  const reader = await openTorchPartition(input);
  try {
    return await writePartitions({
      samples: reader.samples,
      maxBytes,
      labelled: reader.labelled,
      sink,
      onProgress,
      async fill(tensors, start, count) {
        for (let done = 0; done < count; done += ROWS_PER_CHUNK) {
          const rows = await reader.readRows(start + done, start + Math.min(count, done + ROWS_PER_CHUNK));
          tensors.images.set(rows.images, done * IMAGE_ELEMENTS);
          tensors.magnitudes.set(rows.magnitudes, done * BANDS);
          if (tensors.redshift && rows.redshift) tensors.redshift.set(rows.redshift, done);
        }
      },
    });
  } finally {
    await reader.close();
  }
}
