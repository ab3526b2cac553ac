import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { openTorchPartition, partitionChunks } from '../../toolkit/datasets/galaxy-partition';
import { IMAGE_ELEMENTS } from '../../functions/commons/partitions/galaxy';
import { rowsPerPartition } from '../../toolkit/datasets/partition-writer';
import { synthesizeInto } from '../../toolkit/datasets/synth';
import { TorchDatasetArchive } from '../../toolkit/datasets/torch-writer';
import { expectSameArray } from '../helpers/arrays';

const specs = (rows: number, labelled: boolean) => [
  { dtype: 'float32' as const, shape: [rows, 5, 32, 32] },
  { dtype: 'float32' as const, shape: [rows, 5] },
  ...(labelled ? [{ dtype: 'float32' as const, shape: [rows] }] : []),
];

function archiveOf(rows: number, labelled = true): Uint8Array {
  const archive = new TorchDatasetArchive([
    { dtype: 'float32', shape: [rows, 5, 32, 32] },
    { dtype: 'float32', shape: [rows, 5] },
    ...(labelled ? [{ dtype: 'float32' as const, shape: [rows] }] : []),
  ]);
  synthesizeInto(
    {
      images: archive.tensor(0) as Float32Array,
      magnitudes: archive.tensor(1) as Float32Array,
      redshift: labelled ? (archive.tensor(2) as Float32Array) : undefined,
    },
    0,
    rows,
    4,
  );
  return archive.finish();
}

test('chunked walking with read-ahead yields every row once, in order, with its own data', async () => {
  const reader = await openTorchPartition(bufferSource(archiveOf(50), 'p.pt'));
  const whole = await reader.readRows(0, 50);
  for (const [rowsPerChunk, readAhead] of [
    [7, 2],
    [50, 1],
    [64, 0],
    [1, 3],
  ]) {
    const seen: number[] = [];
    for await (const rows of partitionChunks(reader, { rowsPerChunk, readAhead })) {
      expect(rows.start).toBe(seen.length);
      // Checked before asking for the next chunk: that is how long a chunk's arrays are valid.
      expectSameArray(rows.images, whole.images.subarray(rows.start * IMAGE_ELEMENTS, (rows.start + rows.count) * IMAGE_ELEMENTS));
      expectSameArray(rows.redshift, whole.redshift!.subarray(rows.start, rows.start + rows.count));
      for (let i = 0; i < rows.count; i++) seen.push(rows.start + i);
    }
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
  }
});

test('rowsPerPartition fills a partition to its size bound and no further', () => {
  // The size of a file actually laid out and finished (contents do not change it).
  const fileSize = (rows: number, labelled: boolean) => new TorchDatasetArchive(specs(rows, labelled)).finish().length;
  for (const labelled of [true, false]) {
    for (const size of [100 * 2 ** 20, 25 * 2 ** 20, 2 ** 20, 30000]) {
      const rows = rowsPerPartition(size, labelled);
      expect(fileSize(rows, labelled)).toBeLessThanOrEqual(size);
      expect(fileSize(rows + 1, labelled)).toBeGreaterThan(size);
    }
  }
  // The prototype's 100 MB partitions held 5,113 objects at most (10 batches of 512).
  expect(rowsPerPartition(100 * 2 ** 20, true)).toBe(5113);
});
