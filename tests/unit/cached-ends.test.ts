import { bufferSource, CACHED_END_BYTES, withCachedEnds } from '../../functions/commons/tensors/byte-source';
import { openTensorFile } from '../../functions/commons/partitions/tensor-files';
import { writeTestPartition } from '../helpers/partitions';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempFolder } from '../helpers/temp';
import { countingSource } from '../helpers/counting-source';

const counted = (bytes: Uint8Array) => countingSource(bufferSource(bytes, 'counted'));

test('reads within the first or last 128 KiB reach the source once each; others pass through, with the same bytes', async () => {
  const bytes = Uint8Array.from({ length: 4 * CACHED_END_BYTES }, (_, i) => (i * 7) & 0xff);
  const source = counted(bytes);
  const cached = withCachedEnds(source);
  expect(Array.from(await cached.read(10, 4))).toEqual(Array.from(bytes.subarray(10, 14)));
  expect(Array.from(await cached.read(100, 8))).toEqual(Array.from(bytes.subarray(100, 108)));
  const end = bytes.length - 22;
  expect(Array.from(await cached.read(end, 22))).toEqual(Array.from(bytes.subarray(end)));
  const into = new Uint8Array(16);
  expect(await cached.read(end - 100, 16, into)).toEqual(bytes.subarray(end - 100, end - 84));
  expect(into).toEqual(bytes.subarray(end - 100, end - 84));
  expect(source.reads).toEqual([
    [0, CACHED_END_BYTES],
    [3 * CACHED_END_BYTES, CACHED_END_BYTES],
  ]);
  await cached.read(CACHED_END_BYTES + 5, 10);
  expect(source.reads).toHaveLength(3);
  await expect(cached.read(bytes.length - 4, 8)).rejects.toThrow(/truncated: needs bytes up to/);
});

test('choosing the reader and opening a torch archive read its start and its directory once', async () => {
  const file = join(tempFolder('cai-cached-'), 'p.pt');
  writeTestPartition(file, 3000, { seed: 1 });

  const source = counted(readFileSync(file));
  const opened = await openTensorFile(source);
  expect(opened.format).toBe('torch');
  // The head and the tail (the zip's end record, directory and pickle): two reads, where each read reached the file before.
  expect(source.reads).toEqual([
    [0, CACHED_END_BYTES],
    [source.size - CACHED_END_BYTES, CACHED_END_BYTES],
  ]);
});
