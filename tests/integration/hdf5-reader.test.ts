import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArchiveError, UnsupportedTensorError } from '../../functions/commons/errors';
import { openHdf5File } from '../../functions/commons/hdf5/hdf5-file';
import { bufferSource, fileSource } from '../../functions/commons/tensors/byte-source';
import type { StoredTensor, TensorFile } from '../../functions/commons/tensors/tensor-file';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { countingSource } from '../helpers/counting-source';

interface ExpectedDataset {
  shape: number[];
  chunks: number[] | null;
  dtype?: string;
  npy?: string;
  skip?: boolean;
  refuse?: string;
}
type Expected = Record<string, Record<string, ExpectedDataset>>;

const dir = tempFolder('cai-hdf5-');
let expected: Expected;

beforeAll(() => {
  runPython(pythonScript('write_hdf5.py'), [dir]);
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
});

/** The data bytes of a .npy file numpy wrote (header parsed only as far as its length). */
function npyBytes(file: string): Uint8Array {
  const raw = readFileSync(join(dir, file));
  const major = raw[6];
  const headerLength = major === 1 ? raw.readUInt16LE(8) : raw.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLength;
  return new Uint8Array(raw.buffer, raw.byteOffset + start, raw.length - start);
}

const bytesOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

async function open(name: string): Promise<TensorFile> {
  return openHdf5File(await fileSource(join(dir, `${name}.h5`)));
}

const files = ['galaxy', 'kinds', 'chunking', 'nested', 'latest', 'userblock'];

describe('every numeric dataset reads, range by range, as h5py reads it', () => {
  test.each(files)('%s', async (name) => {
    const file = await open(name);
    const want = Object.entries(expected[name]).filter(([, d]) => !d.skip);
    expect(file.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(
      want.map(([path, d]) => [path, d.dtype ?? file.tensors.find((t) => t.name === path)?.dtype, d.shape]),
    );
    for (const [path, d] of want) {
      const tensor = file.find(path) as StoredTensor;
      expect(tensor.rowsReadTogether).toBe(d.chunks ? d.chunks[0] : 1);
      if (d.refuse) continue;
      const values = npyBytes(d.npy!);
      const rows = d.shape[0];
      const rowBytes = rows ? values.length / rows : 0;
      // Ranges that start and end inside chunks, cross several, and take the whole dataset.
      const ranges: [number, number][] = [[0, rows]];
      for (const step of [1, 3, 7]) for (let s = step === 1 ? 0 : 2; s < rows; s += step * 5) ranges.push([s, Math.min(rows, s + step)]);
      for (const [start, end] of ranges) {
        const got = await file.readRows(tensor, start, end);
        expect(`${path}[${start}:${end}] ${bytesOf(got).equals(Buffer.from(values.subarray(start * rowBytes, end * rowBytes)))}`).toBe(
          `${path}[${start}:${end}] true`,
        );
      }
    }
    await file.close();
  });
});

test('rows read into a reused buffer: never-written chunks are zeros, not what the buffer held', async () => {
  const file = await open('chunking');
  const sparse = file.find('sparse') as StoredTensor;
  const into = new Uint8Array(40 * 3 * 4).fill(0xaa);
  const got = (await file.readRows(sparse, 0, 40, into)) as Float32Array;
  expect(got.buffer).toBe(into.buffer);
  expect(Array.from(got.subarray(0, 36)).every((v) => v === 0)).toBe(true);
  expect(Array.from(got.subarray(36, 54))).toEqual(new Array(18).fill(7.5));
  expect(Array.from(got.subarray(54)).every((v) => v === 0)).toBe(true);
});

test('find names datasets by path, with or without a leading slash, and says why it gives no other', async () => {
  const file = await open('nested');
  expect((file.find('/cutouts/flux') as StoredTensor).shape).toEqual([8, 2, 3]);
  expect((file.find('cutouts/deeper/deepest/ids') as StoredTensor).dtype).toBe('int64');
  expect(file.find(0)).toMatch(/^HDF5 datasets are named by path, not by position 0: it holds datasets alias float32\[5\], /);
  expect(file.find('nope')).toMatch(
    /^no dataset "nope": it holds datasets alias float32\[5\], cutouts\/deeper\/deepest\/ids int64\[9\], .* and \d+ more$/,
  );
  expect(file.find('cutouts')).toMatch(/^"cutouts" is a group, not a dataset: it holds datasets /);
  // A dataset with two names is found by both.
  expect((file.find('alias') as StoredTensor).shape).toEqual((file.find('top') as StoredTensor).shape);
  const kinds = await open('kinds');
  expect(kinds.find('names')).toBe('dataset names is a string: CAI reads numeric datasets of one or more dimensions');
  expect(kinds.find('pairs')).toBe('dataset pairs is a compound: CAI reads numeric datasets of one or more dimensions');
  expect(kinds.find('vlen_names')).toBe(
    'dataset vlen_names is a variable-length string: CAI reads numeric datasets of one or more dimensions',
  );
  expect(kinds.find('/scalar')).toBe('dataset scalar is a scalar: CAI reads numeric datasets of one or more dimensions');
});

test('an lzf-compressed dataset is refused in one line naming its filter', async () => {
  const file = await open('chunking');
  const lzf = file.find('lzf') as StoredTensor;
  const read = file.readRows(lzf, 0, 5);
  await expect(read).rejects.toThrow(UnsupportedTensorError);
  await expect(read).rejects.toThrow(/: dataset lzf is compressed with filter 32000 \(lzf\), which CAI does not decode/);
});

test("a resizable dataset of a libver='latest' file (chunks indexed by an extensible array) is refused in one line", async () => {
  const file = await open('latest');
  await expect(file.readRows(file.find('group/resizable') as StoredTensor, 0, 2)).rejects.toThrow(
    new UnsupportedTensorError(
      `${join(dir, 'latest.h5')}: dataset group/resizable indexes its chunks by an extensible array (written for unlimited dimensions), which CAI does not read`,
    ),
  );
});

test("a libver='latest' group of more than 8 members (links in a fractal heap) is refused in one line", async () => {
  await expect(open('dense')).rejects.toThrow(
    new UnsupportedTensorError(
      `${join(dir, 'dense.h5')}: group / keeps its links in a fractal heap (a libver='latest' group of many members), which CAI does not read`,
    ),
  );
});

test('a group that links to its parent and groups nested 40 deep are refused, in a line', async () => {
  await expect(open('cycle')).rejects.toThrow(
    new ArchiveError(`${join(dir, 'cycle.h5')}: group /a/b/up contains itself (a cycle of links)`),
  );
  await expect(open('deep')).rejects.toThrow(/: groups nest deeper than 32 levels at \/g0\/g1\/.*g32$/);
});

test('a file that is not HDF5, or cut short, is an ArchiveError', async () => {
  const bytes = readFileSync(join(dir, 'galaxy.h5'));
  await expect(openHdf5File(bufferSource(new Uint8Array(4096), 'zeros.h5'))).rejects.toThrow(
    new ArchiveError('zeros.h5: not an HDF5 file (no HDF5 signature at byte 0, 512, 1024, ...)'),
  );
  await expect(openHdf5File(bufferSource(bytes.subarray(0, 1500), 'cut.h5'))).rejects.toThrow(ArchiveError);
  // Cut inside the chunked data (the images are the file's last bytes): the file opens, rows whose
  // chunks it holds read, and the lost chunk is refused when read.
  const file = await openHdf5File(bufferSource(bytes.subarray(0, bytes.length - 1000), 'cut.h5'));
  const images = file.find('images') as StoredTensor;
  expect((await file.readRows(images, 0, 35)).length).toBe(35 * 768);
  await expect(file.readRows(images, 30, 37)).rejects.toThrow(
    /^cut\.h5: dataset images: a chunk of \d+ bytes at \d+ lies beyond the end of the file \(\d+ bytes\)$/,
  );
});

describe('a 17736-row chunked file', () => {
  const big = tempFolder('cai-hdf5-big-');
  let stored: { stored_bytes: number; chunks: number };
  beforeAll(() => {
    stored = JSON.parse(runPython(pythonScript('write_hdf5.py'), [big, 'big', '17736', '16', '1']));
  });

  test('rows 1000..1100 read only their chunks and the B-tree nodes above them; a following range re-reads no node', async () => {
    const source = countingSource(await fileSource(join(big, 'big.h5')));
    const file = await openHdf5File(source);
    const images = file.find('images') as StoredTensor;
    expect(images.rowsReadTogether).toBe(1);
    // Estimated from the file's size, within 15% of what h5py says the chunks take (B-tree nodes add some).
    expect(stored.chunks).toBe(17736);
    const actual = stored.stored_bytes / 17736;
    expect(images.storedBytesPerRow).toBeGreaterThan(actual);
    expect(images.storedBytesPerRow).toBeLessThan(actual * 1.15);
    const opened = source.bytesRead;
    const rows = await file.readRows(images, 1000, 1100);
    expect(rows.length).toBe(100 * 768);
    const first = source.bytesRead - opened;
    await file.readRows(images, 1100, 1200);
    const second = source.bytesRead - opened - first;
    const ra = (await file.readRows(file.find('ra') as StoredTensor, 1000, 1003)) as Float64Array;
    expect(Array.from(ra)).toEqual([1000 / 7, 1001 / 7, 1002 / 7]);
    console.log(`hdf5: file ${file.size} bytes, opening read ${opened}, rows 1000..1100 read ${first}, rows 1100..1200 read ${second}`);
    expect(first).toBeLessThan(file.size / 50);
    // The second range costs its chunks (about as much as the first's) and no more B-tree reads than it.
    expect(second).toBeLessThan(first * 1.5);
    await file.close();
  });
});
