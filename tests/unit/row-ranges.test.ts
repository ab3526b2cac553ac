import { PlanError } from '../../functions/commons/run/rank-plan';
import { planRowRanges, rowRangesOf, ROW_RANGE_BYTES } from '../../functions/commons/run/row-ranges';
import { partitionName } from '../../functions/commons/run/partition-name';
import type { StoredTensor, TensorFile } from '../../functions/commons/tensors/tensor-file';
import { ArchiveError } from '../../functions/commons/errors';

const MiB = 1024 * 1024;

/** A file of `rows` objects whose images take `rowBytes` each, decoded `together` rows at a time, and a 1-D catalogue column. */
function fakeFile(rows: number, rowBytes: number, together = 1): TensorFile {
  const images: StoredTensor = {
    name: 'images',
    dtype: 'uint8',
    shape: [rows, rowBytes],
    rowsReadTogether: together,
    storedBytesPerRow: rowBytes,
  };
  const redshift: StoredTensor = { name: 'redshift', dtype: 'float64', shape: [rows], rowsReadTogether: 1, storedBytesPerRow: 8 };
  return {
    format: 'hdf5',
    name: 'big.h5',
    size: rows * (rowBytes + 8),
    tensors: [redshift, images],
    find: () => 'unused',
    readRows: async () => new Uint8Array(0),
    close: async () => {},
  };
}

test('a 2.5 GB file is planned as ranges of about 128 MiB, aligned to the rows decoded together, covering every row once', () => {
  // Galaxy10 DECaLS's shape: 17,736 images of 256×256×3 uint8, gzip-chunked 35 rows at a time.
  const rows = 17_736;
  const file = fakeFile(rows, 256 * 256 * 3, 35);
  const bytes = 2_735_000_000;
  const ranges = rowRangesOf({ key: 'Galaxy10_DECals.h5', bytes }, file);
  expect(ranges.length).toBe(Math.ceil(rows / ranges[0].rows!.end));
  for (const [i, range] of ranges.entries()) {
    expect(range.key).toBe('Galaxy10_DECals.h5');
    expect(range.rows!.start).toBe(i === 0 ? 0 : ranges[i - 1].rows!.end);
    if (i < ranges.length - 1) expect((range.rows!.end - range.rows!.start) % 35).toBe(0);
    expect(range.bytes).toBeLessThanOrEqual(ROW_RANGE_BYTES);
    // What a reader holds beside its rows: 35 rows stored and decoded.
    expect(range.decodeBytes).toBe(35 * 2 * 256 * 256 * 3);
  }
  expect(ranges.at(-1)!.rows!.end).toBe(rows);
  expect(ranges.reduce((n, r) => n + r.bytes, 0)).toBeCloseTo(bytes, -2);
  expect(partitionName(ranges[1])).toBe(`Galaxy10_DECals.h5#rows=${ranges[1].rows!.start}-${ranges[1].rows!.end}`);
});

test('a file whose rows are all decoded together (a compressed .npz array) stays whole; so does a file under the size', () => {
  expect(rowRangesOf({ key: 'z.npz', bytes: 600 * MiB }, fakeFile(1000, 600 * 1024, 1000))).toEqual([{ key: 'z.npz', bytes: 600 * MiB }]);
  expect(rowRangesOf({ key: 'one.h5', bytes: 100 * MiB }, fakeFile(1000, 100 * 1024))).toEqual([{ key: 'one.h5', bytes: 100 * MiB }]);
});

test('only files over the size are opened; a large file that cannot be opened refuses the run naming it', async () => {
  const opened: string[] = [];
  const files = [
    { key: 'a/1.h5', bytes: 10 * MiB },
    { key: 'a/2.h5', bytes: 300 * MiB },
    { key: 'b/1.pt', bytes: 20 * MiB },
  ];
  const planned = await planRowRanges(files, async (key) => {
    opened.push(key);
    return fakeFile(3000, 100 * 1024);
  });
  expect(opened).toEqual(['a/2.h5']);
  expect(planned.map((p) => p.key)).toEqual(['a/1.h5', 'a/2.h5', 'a/2.h5', 'a/2.h5', 'b/1.pt']);
  const refused = planRowRanges(files, async () => {
    throw new ArchiveError('s3://data/a/2.h5: truncated: needs bytes up to 99 but the file holds 50');
  });
  await expect(refused).rejects.toThrow(PlanError);
  await expect(refused).rejects.toThrow(
    'a/2.h5 cannot be planned as row ranges: s3://data/a/2.h5: truncated: needs bytes up to 99 but the file holds 50',
  );
});
