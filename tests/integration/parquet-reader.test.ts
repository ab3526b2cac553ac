import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource, fileSource } from '../../functions/commons/tensors/byte-source';
import { ArchiveError, CaiError, UnsupportedTensorError } from '../../functions/commons/errors';
import { openParquetFile } from '../../functions/commons/parquet/parquet-file';
import type { StoredTensor, TensorFile } from '../../functions/commons/tensors/tensor-file';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { countingSource } from '../helpers/counting-source';

interface ExpectedColumn {
  dtype: string;
  shape: number[];
  chunks: { offset: number; bytes: number }[];
}
interface ExpectedFile {
  rowGroups: number[];
  columns: Record<string, ExpectedColumn>;
  refused: Record<string, string>;
}

const dir = tempFolder('cai-parquet-');
let expected: Record<string, ExpectedFile>;

beforeAll(() => {
  runPython(pythonScript('write_parquet.py'), [dir]);
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
});

const parquetPath = (name: string) => join(dir, `${name}.parquet`);

/** A file source that counts the bytes its readers ask for. */
const countingFile = async (path: string) => countingSource(await fileSource(path));

/** pyarrow's values of rows [start, end) of a column, as bytes. */
function expectedRows(file: string, column: string, start: number, end: number): Uint8Array {
  const { shape, dtype } = expected[file].columns[column];
  const all = readFileSync(join(dir, `${file}.${column}.bin`));
  const rowBytes = (all.length / shape[0]) | 0;
  void dtype;
  return new Uint8Array(all.subarray(start * rowBytes, end * rowBytes));
}

const bytesOf = (data: ArrayBufferView) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

async function withFile<T>(name: string, use: (file: TensorFile) => Promise<T>): Promise<T> {
  const file = await openParquetFile(await fileSource(parquetPath(name)));
  try {
    return await use(file);
  } finally {
    await file.close();
  }
}

const VARIANTS = [
  'snappy',
  'gzip',
  'zstd',
  'brotli',
  'lz4',
  'uncompressed',
  'v2_pages',
  'plain',
  'byte_stream_split',
  'small_pages',
  'one_group',
];
const RANGES: [number, number][] = [
  [0, 100],
  [5, 37],
  [16, 32],
  [40, 45],
  [99, 100],
  [50, 50],
];

describe('files written by pyarrow read as pyarrow reads them', () => {
  test.each(VARIANTS)('%s: every column, row range by row range', async (variant) => {
    const want = expected[variant];
    await withFile(variant, async (file) => {
      expect(file.format).toBe('parquet');
      expect(Object.fromEntries(file.tensors.map((t) => [t.name, [t.dtype, t.shape]]))).toEqual(
        Object.fromEntries(Object.entries(want.columns).map(([name, c]) => [name, [c.dtype, c.shape]])),
      );
      const largestGroup = Math.max(...want.rowGroups);
      for (const tensor of file.tensors) {
        const column = want.columns[tensor.name];
        expect(tensor.rowsReadTogether).toBe(largestGroup);
        expect(tensor.storedBytesPerRow).toBeCloseTo(column.chunks.reduce((n, c) => n + c.bytes, 0) / 100, 6);
        for (const [start, end] of RANGES) {
          const data = await file.readRows(tensor, start, end);
          expect(data.length).toBe((end - start) * (tensor.shape[1] ?? 1));
          // Bytes for bytes: floats, int64 beyond 2^53 and unsigned values alike.
          expect(Buffer.from(bytesOf(data)).equals(Buffer.from(expectedRows(variant, tensor.name, start, end)))).toBe(true);
        }
      }
    });
  });

  test('columns that are not tensors are named, with why', async () => {
    await withFile('snappy', async (file) => {
      for (const [name, words] of Object.entries(expected.snappy.refused)) {
        const found = file.find(name);
        expect(typeof found).toBe('string');
        expect(found).toContain(`column ${name} `);
        expect(found).toContain(words);
      }
      expect(file.find('ragged')).toBe('column ragged is ragged (lengths 3..7): a model input needs one length per object');
      expect(file.find('with_nulls')).toBe('column with_nulls has a null at row 37: a model input needs a value for every object');
      expect(file.find('meta')).toBe('column meta is a struct: name one of its fields (meta.z, meta.label)');
    });
  });

  test('find: by name; a number or a missing name is answered with the columns the file holds', async () => {
    await withFile('snappy', async (file) => {
      expect((file.find('images') as StoredTensor).shape).toEqual([100, 5 * 16 * 16]);
      expect((file.find('meta.z') as StoredTensor).dtype).toBe('float64');
      expect(file.find(0)).toMatch(
        /^Parquet columns are named, not numbered: it holds columns redshift float64\[100\], mag float32\[100, 5\], /,
      );
      expect(file.find('photoz')).toMatch(
        /^no column "photoz": it holds columns redshift float64\[100\], mag float32\[100, 5\], images float32\[100, 1280\], /,
      );
      expect(file.find('photoz')).toMatch(/ and 2 more$/);
    });
  });

  test('rows in the middle of a file of many row groups: only their row group is read, besides the footer', async () => {
    const source = await countingFile(parquetPath('snappy'));
    const file = await openParquetFile(source);
    const images = file.find('images') as StoredTensor;
    const footerBytes = source.bytesRead;
    source.reads.length = 0;
    const rows = await file.readRows(images, 40, 45);
    expect(Buffer.from(bytesOf(rows)).equals(Buffer.from(expectedRows('snappy', 'images', 40, 45)))).toBe(true);
    // Rows 40..45 lie in the third row group (rows 32..48): that chunk of that column, and nothing else.
    const chunk = expected.snappy.columns.images.chunks[2];
    expect(source.reads).toEqual([[chunk.offset, chunk.bytes]]);
    const midRead = source.bytesRead - footerBytes;
    // The file holds 7 row groups of two image columns and more: one chunk is about a 14th of it.
    expect(midRead * 10).toBeLessThan(source.size);
    // Spanning two row groups, the one partly read before is held (a walk's next chunk wants its rest): only the next is read.
    source.reads.length = 0;
    const spanning = await file.readRows(images, 47, 49);
    expect(Buffer.from(bytesOf(spanning)).equals(Buffer.from(expectedRows('snappy', 'images', 47, 49)))).toBe(true);
    const next = expected.snappy.columns.images.chunks[3];
    expect(source.reads).toEqual([[next.offset, next.bytes]]);
    await file.close();
    // A reader holding nothing reads both groups' chunks for the same rows.
    const freshSource = await countingFile(parquetPath('snappy'));
    const fresh = await openParquetFile(freshSource);
    freshSource.reads.length = 0;
    await fresh.readRows(fresh.find('images') as StoredTensor, 47, 49);
    expect(freshSource.reads).toEqual(
      [expected.snappy.columns.images.chunks[2], expected.snappy.columns.images.chunks[3]].map((c) => [c.offset, c.bytes]),
    );
    // Two reads at once wanting parts of one group (a walk reads its next chunk while it has this one) decode it once.
    freshSource.reads.length = 0;
    const [a, b] = await Promise.all([
      fresh.readRows(fresh.find('images') as StoredTensor, 33, 36),
      fresh.readRows(fresh.find('images') as StoredTensor, 36, 40),
    ]);
    expect(Buffer.from(bytesOf(a)).equals(Buffer.from(expectedRows('snappy', 'images', 33, 36)))).toBe(true);
    expect(Buffer.from(bytesOf(b)).equals(Buffer.from(expectedRows('snappy', 'images', 36, 40)))).toBe(true);
    expect(freshSource.reads).toEqual([[expected.snappy.columns.images.chunks[2].offset, expected.snappy.columns.images.chunks[2].bytes]]);
    await fresh.close();
  });

  test('rows are read into a given buffer, which then backs the result', async () => {
    await withFile('zstd', async (file) => {
      const mag = file.find('mag') as StoredTensor;
      const into = new Uint8Array(new ArrayBuffer(64 * 4 * 5));
      const rows = await file.readRows(mag, 10, 30, into);
      expect(rows.buffer).toBe(into.buffer);
      expect(Buffer.from(into.subarray(0, 20 * 20)).equals(Buffer.from(expectedRows('zstd', 'mag', 10, 30)))).toBe(true);
      await expect(file.readRows(mag, 90, 101)).rejects.toThrow(RangeError);
    });
  });

  test('a column whose rows average one length but differ is refused as its rows are read', async () => {
    // Lengths 3 and 7 alternate: 5 a row on average, as the footer counts.
    const path = join(dir, 'alternating.parquet');
    runPython(pythonScript('write_parquet.py'), [dir, '--alternating']);
    const file = await openParquetFile(await fileSource(path));
    const column = file.find('alternating') as StoredTensor;
    expect(column.shape).toEqual([8, 5]);
    await expect(file.readRows(column, 0, 8)).rejects.toThrow(
      new UnsupportedTensorError(`${path}: column alternating is ragged (lengths 3..7): a model input needs one length per object`),
    );
    await file.close();
  });
});

/** Bytes of a file with `edit` applied. */
function edited(name: string, edit: (bytes: Uint8Array) => Uint8Array): Uint8Array {
  return edit(new Uint8Array(readFileSync(parquetPath(name))));
}

async function refusal(bytes: Uint8Array, read?: (file: TensorFile) => Promise<unknown>): Promise<CaiError> {
  try {
    const file = await openParquetFile(bufferSource(bytes, 'bad.parquet'));
    await read?.(file);
  } catch (error) {
    if (error instanceof CaiError) return error;
    throw error;
  }
  throw new Error('read without an error');
}

function indexOf(bytes: Uint8Array, pattern: number[], from = 0): number {
  return Buffer.from(bytes).indexOf(Buffer.from(pattern), from);
}

/** A varint of `value` zigzag-encoded, as thrift's compact protocol writes an i32/i64. */
function zigzag(value: bigint): number[] {
  let v = value < 0n ? -2n * value - 1n : 2n * value;
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? byte | 0x80 : byte);
  } while (v);
  return out;
}

/** Replaces bytes [at, at + length) of the footer with `replacement`, keeping the footer's length right. */
function spliceFooter(bytes: Uint8Array, at: number, length: number, replacement: number[]): Uint8Array {
  const out = new Uint8Array(bytes.length - length + replacement.length);
  out.set(bytes.subarray(0, at));
  out.set(replacement, at);
  out.set(bytes.subarray(at + length), at + replacement.length);
  const view = new DataView(out.buffer);
  view.setUint32(out.length - 8, view.getUint32(out.length - 8, true) + replacement.length - length, true);
  return out;
}

const FOOTER_ROWS = [0x16, ...zigzag(100n), 0x19]; // FileMetaData.num_rows, then its row_groups list
const ascii = (text: string) => [...Buffer.from(text)];
/** ColumnMetaData's path_in_schema ["redshift"] followed by its codec field (SNAPPY = 1). */
const REDSHIFT_CODEC = [0x19, 0x18, 0x08, ...ascii('redshift'), 0x15];

describe('hostile files are refused in one line, naming the file', () => {
  test('wrong magic at either end, truncated, too short', async () => {
    const good = readFileSync(parquetPath('snappy'));
    const head = edited('snappy', (b) => ((b[0] = 0x51), b));
    const tail = edited('snappy', (b) => ((b[b.length - 1] = 0x32), b));
    for (const bytes of [head, tail, good.subarray(0, good.length - 100), good.subarray(100)]) {
      expect(await refusal(bytes)).toEqual(new ArchiveError('bad.parquet: not a Parquet file (it does not start and end with PAR1)'));
    }
    expect(await refusal(good.subarray(0, 10))).toEqual(new ArchiveError('bad.parquet: not a Parquet file: 10 bytes is too short'));
    // The control: the file itself opens.
    await expect(openParquetFile(bufferSource(good, 'good.parquet'))).resolves.toBeTruthy();
  });

  test('a footer longer than the file', async () => {
    const bytes = edited('snappy', (b) => (new DataView(b.buffer).setUint32(b.length - 8, b.length, true), b));
    expect((await refusal(bytes)).message).toBe(
      `bad.parquet: its footer of ${bytes.length} bytes is longer than the file (${bytes.length} bytes)`,
    );
  });

  test('a footer that is not thrift', async () => {
    const bytes = edited('snappy', (b) => {
      const length = new DataView(b.buffer).getUint32(b.length - 8, true);
      b.fill(0xff, b.length - 8 - length, b.length - 8);
      return b;
    });
    const error = await refusal(bytes);
    expect(error).toBeInstanceOf(ArchiveError);
    expect(error.message).toMatch(/^bad\.parquet: unreadable Parquet footer \(/);
  });

  test('absurd row counts', async () => {
    const good = new Uint8Array(readFileSync(parquetPath('snappy')));
    const at = indexOf(good, FOOTER_ROWS, good.length - 20000);
    expect(at).toBeGreaterThan(0);
    const absurd = spliceFooter(good, at + 1, FOOTER_ROWS.length - 2, zigzag(2n ** 50n));
    expect((await refusal(absurd)).message).toBe(`bad.parquet: its row groups hold 100 rows, its footer says ${2 ** 50}`);
    const unsafe = spliceFooter(good, at + 1, FOOTER_ROWS.length - 2, zigzag(2n ** 60n));
    expect((await refusal(unsafe)).message).toBe(`bad.parquet: the footer's row count (${2n ** 60n}) is not a count`);
    const negative = spliceFooter(good, at + 1, FOOTER_ROWS.length - 2, zigzag(-5n));
    expect((await refusal(negative)).message).toBe(`bad.parquet: the footer's row count (-5) is not a count`);
    // The control: the same splice with the true count reads.
    const same = spliceFooter(good, at + 1, FOOTER_ROWS.length - 2, zigzag(100n));
    expect((await openParquetFile(bufferSource(same, 'same.parquet'))).tensors.length).toBe(14);
  });

  test('a codec CAI does not decompress, or one Parquet does not know', async () => {
    const good = new Uint8Array(readFileSync(parquetPath('snappy')));
    const at = indexOf(good, REDSHIFT_CODEC, good.length - 20000) + REDSHIFT_CODEC.length;
    expect(good[at]).toBe(2); // SNAPPY, zigzag
    for (const [code, name] of [
      [6, 'LZO'],
      [30, 'a codec unknown to the Parquet format'],
    ] as const) {
      const bytes = good.slice();
      bytes[at] = code;
      const file = await openParquetFile(bufferSource(bytes, 'bad.parquet'));
      expect(file.find('redshift')).toBe(
        `column redshift is compressed with ${name}, which CAI does not decompress (it reads UNCOMPRESSED, SNAPPY, GZIP, BROTLI, ZSTD, LZ4, LZ4_RAW)`,
      );
      expect(file.tensors.map((t) => t.name)).not.toContain('redshift');
      expect(file.tensors.map((t) => t.name)).toContain('mag');
    }
  });

  test.each(['snappy', 'zstd'])('%s: a page claiming a huge uncompressed size', async (variant) => {
    const want = expected[variant].columns.redshift.chunks[1];
    const pageHeader = (edit: (b: Uint8Array, sizeAt: number) => void) =>
      edited(variant, (b) => {
        // PageHeader: type (0x15, zigzag), then uncompressed_page_size (0x15, varint), ...
        expect([b[want.offset], b[want.offset + 2]]).toEqual([0x15, 0x15]);
        edit(b, want.offset + 3);
        return b;
      });
    const readRedshift = async (file: TensorFile) => file.readRows(file.find('redshift') as StoredTensor, 16, 32);
    const huge = pageHeader((b, at) => {
      // Same length, far larger and even (zigzag: positive): 0xfe, 0xff..., then 0x7e.
      let i = at;
      while (b[i] & 0x80) b[i++] = 0xff;
      b[i] = 0x7e;
      b[at] = 0xfe;
    });
    const error = await refusal(huge, readRedshift);
    expect(error).toBeInstanceOf(ArchiveError);
    expect(error.message).toMatch(
      /^bad\.parquet: redshift, row group at row 16, page 0: (a page of \d+ \w+ bytes cannot hold the \d+ its header claims|a dictionary of \d+ values in \d+ bytes)$/,
    );
    // The control: the same file unedited reads those rows.
    await withFile(variant, async (file) => expect((await readRedshift(file)).length).toBe(16));
  });
});
