import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { bufferSource, fileSource, type ByteSource } from '../../functions/commons/tensors/byte-source';
import { DTYPES, type DType } from '../../functions/commons/tensors/dtype';
import type { StoredTensor, TensorFile } from '../../functions/commons/tensors/tensor-file';
import { ArchiveError, UnsupportedTensorError } from '../../functions/commons/errors';
import { openNumpyFile } from '../../functions/commons/numpy/numpy-file';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { zipOf } from '../helpers/zip';

interface ExpectedArray {
  name: string;
  dtype: DType;
  shape: number[];
}
type Manifest = Record<string, { arrays: ExpectedArray[]; refused?: Record<string, string> } | { error: string; says: string }>;

const dir = tempFolder('cai-numpy-');
let manifest: Manifest;

beforeAll(() => {
  runPython(pythonScript('write_numpy.py'), [dir]);
  manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
});

const bytesOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

async function withFile<T>(name: string, use: (file: TensorFile) => Promise<T>): Promise<T> {
  const file = await openNumpyFile(await fileSource(join(dir, name)));
  try {
    return await use(file);
  } finally {
    await file.close();
  }
}

/** Row ranges that cover a tensor several ways: one row, the first few, the middle, the tail, all, none. */
function rangesOf(rows: number): [number, number][] {
  const ranges: [number, number][] = [
    [0, rows],
    [0, Math.min(1, rows)],
    [Math.min(1, rows), Math.min(3, rows)],
    [Math.floor(rows / 2), rows],
    [rows, rows],
  ];
  // Backwards after forwards: a deflated entry's cursor starts again.
  ranges.push([Math.max(0, rows - 1), rows], [0, Math.min(2, rows)]);
  return ranges;
}

async function expectRowsAsNumpy(fileName: string, file: TensorFile, want: ExpectedArray): Promise<void> {
  const tensor = file.find(want.name) as StoredTensor;
  expect(typeof tensor).toBe('object');
  expect([tensor.dtype, tensor.shape]).toEqual([want.dtype, want.shape]);
  const all = readFileSync(join(dir, `${fileName}.${want.name}.bin`));
  const rowBytes = want.shape.slice(1).reduce((a, b) => a * b, 1) * DTYPES[want.dtype].itemSize;
  for (const [start, end] of rangesOf(want.shape[0])) {
    const data = await file.readRows(tensor, start, end);
    expect([start, end, bytesOf(data).equals(all.subarray(start * rowBytes, end * rowBytes))]).toEqual([start, end, true]);
  }
}

describe('arrays written by numpy read as numpy reads them, row range by row range', () => {
  const readable = [
    'images_f32.npy',
    'big_endian_f8.npy',
    'int16.npy',
    'uint8_hwc.npy',
    'version2.npy',
    'version3.npy',
    'dtypes.npz',
    'catalogue.npz',
    'compressed.npz',
    'mixed.npz',
  ];
  test.each(readable)('%s', async (name) => {
    const { arrays } = manifest[name] as { arrays: ExpectedArray[] };
    await withFile(name, async (file) => {
      expect(file.format).toBe('numpy');
      expect(file.tensors.map((t) => t.name)).toEqual(arrays.map((a) => a.name));
      for (const want of arrays) await expectRowsAsNumpy(name, file, want);
    });
  });

  test('a .npy names its one array by the file name, or 0; an .npz by entry name with or without .npy, or position', async () => {
    await withFile('int16.npy', async (file) => {
      expect(file.find(0)).toBe(file.tensors[0]);
      expect(file.find('int16')).toBe(file.tensors[0]);
      expect(file.find('images')).toBe('no array "images": it holds arrays int16 int16[7, 4]');
      expect(file.find(1)).toBe('no array at position 1: it holds arrays int16 int16[7, 4]');
    });
    await withFile('catalogue.npz', async (file) => {
      expect(file.find('mag.npy')).toBe(file.find('mag'));
      expect(file.find(1)).toBe(file.find('redshift'));
      expect((file.find('redshift') as StoredTensor).dtype).toBe('float64');
      expect(file.find('flux')).toBe(
        'no array "flux": it holds arrays images float32[7, 5, 16, 16], redshift float64[7], mag float32[7, 5]',
      );
    });
  });

  test('row sizes: stored rows read alone, a deflated entry is read together', async () => {
    await withFile('catalogue.npz', async (file) => {
      const images = file.find('images') as StoredTensor;
      expect([images.rowsReadTogether, images.storedBytesPerRow]).toEqual([1, 5 * 16 * 16 * 4]);
    });
    await withFile('compressed.npz', async (file) => {
      const zeros = file.find('zeros') as StoredTensor;
      expect(zeros.rowsReadTogether).toBe(40);
      // 8 MB of zeros compress to a few KB: what a row takes in the file, not in memory.
      expect(zeros.storedBytesPerRow).toBeLessThan(1000);
    });
  });

  test('rows fill a given buffer, also from a source in memory', async () => {
    const bytes = readFileSync(join(dir, 'big_endian_f8.npy'));
    const file = await openNumpyFile(bufferSource(new Uint8Array(bytes), 'big_endian_f8.npy'));
    const into = new Uint8Array(new ArrayBuffer(64));
    const data = await file.readRows(file.tensors[0], 2, 4, into);
    expect(data.buffer).toBe(into.buffer);
    expect(bytesOf(data).equals(readFileSync(join(dir, 'big_endian_f8.npy.big_endian_f8.bin')).subarray(48, 96))).toBe(true);
    // Swapped in our copy: the file's own bytes are untouched, so a second read agrees.
    expect(Buffer.from(bytes).equals(readFileSync(join(dir, 'big_endian_f8.npy')))).toBe(true);
    expect(bytesOf(await file.readRows(file.tensors[0], 2, 4))).toEqual(bytesOf(data));
  });
});

describe('what CAI does not decode is refused in one line', () => {
  test.each(['fortran.npy', 'object.npy', 'structured.npy', 'strings.npy', 'complex.npy', 'scalar.npy'])('%s', async (name) => {
    const { says } = manifest[name] as { says: string };
    const opening = openNumpyFile(await fileSource(join(dir, name)));
    await expect(opening).rejects.toThrow(UnsupportedTensorError);
    await expect(opening).rejects.toThrow(says);
    await expect(opening).rejects.toThrow(/^[^\n]+$/);
  });

  test('an object array is never unpickled: its payload would create a file', async () => {
    await expect(openNumpyFile(await fileSource(join(dir, 'object.npy')))).rejects.toThrow(
      'dtype "|O" is an object array (a pickled payload, which CAI never unpickles); it is refused',
    );
    await withFile('mixed.npz', async (file) => {
      expect(file.tensors.map((t) => t.name)).toEqual(['images']);
      expect(file.find('payload')).toMatch(/^array "payload" is not readable: dtype "\|O" is an object array/);
    });
    expect(existsSync(join(dir, 'pickle-was-executed'))).toBe(false);
  });
});

/** A .npy of the given header text (padded as numpy pads it) and data. */
function npy(header: string, data: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  const preamble = version === 1 ? 10 : 12;
  const padded = header + ' '.repeat(63 - ((preamble + header.length) % 64)) + '\n';
  const out = new Uint8Array(preamble + padded.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, padded.length, true);
  else dv.setUint32(8, padded.length, true);
  out.set(Buffer.from(padded, 'latin1'), preamble);
  out.set(data, preamble + padded.length);
  return out;
}

const header = (descr: string, shape: string) => `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;

async function refusal(bytes: Uint8Array, name = 'hostile.npy'): Promise<Error> {
  try {
    const file = await openNumpyFile(bufferSource(bytes, name));
    for (const t of file.tensors) await file.readRows(t, 0, t.shape[0]);
  } catch (error) {
    return error as Error;
  }
  throw new Error('read without complaint');
}

describe('hostile files are refused in one line', () => {
  const cases: [string, () => Uint8Array, typeof ArchiveError, RegExp][] = [
    ['wrong magic', () => Buffer.from('\x93NUMPX\x01\x00'), ArchiveError, /not a NumPy file/],
    ['empty', () => new Uint8Array(0), ArchiveError, /not a NumPy file/],
    ['truncated in the preamble', () => npy(header('<f4', '(2,)')).subarray(0, 9), ArchiveError, /truncated \.npy/],
    [
      'header length beyond the file',
      () => npy(header('<f4', '(2,)')).subarray(0, 40),
      ArchiveError,
      /header runs to byte 128 but it holds 40/,
    ],
    ['a header that is code', () => npy("__import__('os').system('true')"), ArchiveError, /not a dict literal: expected '\{'/],
    [
      'a call inside the dict',
      () => npy("{'descr': eval('1'), 'fortran_order': False, 'shape': (1,), }"),
      ArchiveError,
      /not a dict literal/,
    ],
    ['keys missing', () => npy("{'descr': '<f4'}"), ArchiveError, /keys descr, not descr, fortran_order and shape/],
    ['shape of 2^60 elements', () => npy(header('<f4', '(1152921504606846976,)')), ArchiveError, /absurd shape/],
    ['shape product past 2^53', () => npy(header('<f8', '(1048576, 1048576, 1048576)')), ArchiveError, /absurd shape/],
    ['negative shape', () => npy(header('<f4', '(-1, 3)')), ArchiveError, /absurd shape/],
    [
      'data shorter than the shape',
      () => npy(header('<f4', '(4, 2)'), new Uint8Array(31)),
      ArchiveError,
      /needs 32 bytes of data but 31 follow/,
    ],
    ['a version to come', () => npy(header('<f4', '(1,)'), new Uint8Array(4), 4), UnsupportedTensorError, /version 4\.0/],
    [
      'header length 4 GiB in a v2 file',
      () => npy(header('<f4', '(1,)'), new Uint8Array(4), 2).fill(0xff, 8, 12),
      ArchiveError,
      /beyond the 1048576-byte limit/,
    ],
    ['float128', () => npy(header('<f16', '(1,)'), new Uint8Array(16)), UnsupportedTensorError, /dtype "<f16" is not supported/],
  ];
  test.each(cases)('%s', async (_, make, errorClass, message) => {
    const error = await refusal(make());
    expect(error).toBeInstanceOf(errorClass);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
  });

  test('the hand-made .npy these cases mutate is itself read (the control)', async () => {
    const file = await openNumpyFile(bufferSource(npy(header('<f4', '(4, 2)'), new Uint8Array(32)), 'hostile.npy'));
    expect(file.tensors[0].shape).toEqual([4, 2]);
    expect(Array.from((await file.readRows(file.tensors[0], 0, 4)) as Float32Array)).toEqual(new Array(8).fill(0));
  });

  test('a zip of hundreds of thousands of entries is refused before its directory is read', async () => {
    const reads: number[] = [];
    const bytes = zipOf([{ name: 'a.npy', data: new Uint8Array(0) }], { repeatDirectory: 300_000 });
    const source = bufferSource(bytes, 'many.npz');
    const counting: ByteSource = { ...source, read: (offset, length, into) => (reads.push(length), source.read(offset, length, into)) };
    await expect(openNumpyFile(counting)).rejects.toThrow('many.npz: zip declares 300000 entries (at most 4096 are read)');
    expect(Math.max(...reads)).toBeLessThan(100_000);
  });

  const oneRow = npy(header('<f4', '(10,)'), new Uint8Array(40));
  test('a deflate bomb (inflating far past its declared size) is stopped at its first excess chunk', async () => {
    const bomb = new Uint8Array(oneRow.length + 64 * 1024 * 1024);
    bomb.set(oneRow);
    const compressed = deflateRawSync(bomb, { level: 9 });
    const bytes = zipOf([{ name: 'x.npy', data: compressed, method: 8, size: oneRow.length, crc: crc32(oneRow) }]);
    bomb.fill(0);
    const before = process.memoryUsage().arrayBuffers;
    // Its header is the whole declared entry, so opening it already reads to the excess.
    const error = await refusal(bytes, 'bomb.npz');
    expect(error).toBeInstanceOf(ArchiveError);
    expect(error.message).toBe(
      `bomb.npz: x.npy: compressed entry inflates past the ${oneRow.length} bytes its zip directory declares (a corrupt entry or a deflate bomb)`,
    );
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });

  test('a deflated entry declaring more than deflate can expand to is refused at open', async () => {
    const compressed = deflateRawSync(oneRow);
    const bytes = zipOf([{ name: 'x.npy', data: compressed, method: 8, size: 2 ** 40, crc: 0 }]);
    await expect(openNumpyFile(bufferSource(bytes, 'claims.npz'))).rejects.toThrow(
      /declares 1099511627776 bytes from \d+, more than deflate/,
    );
  });

  test('the same entry, honestly declared, reads (the control for both)', async () => {
    const bytes = zipOf([{ name: 'x.npy', data: deflateRawSync(oneRow), method: 8, size: oneRow.length, crc: crc32(oneRow) }]);
    const file = await openNumpyFile(bufferSource(bytes, 'honest.npz'));
    expect(Array.from((await file.readRows(file.tensors[0], 0, 10)) as Float32Array)).toEqual(new Array(10).fill(0));
  });

  test('a deflated entry with a wrong checksum is refused once it is inflated to its end', async () => {
    const bytes = zipOf([{ name: 'x.npy', data: deflateRawSync(oneRow), method: 8, size: oneRow.length, crc: crc32(oneRow) ^ 1 }]);
    const error = await refusal(bytes, 'crc.npz');
    expect([error.constructor, error.message]).toEqual([
      ArchiveError,
      'crc.npz: x.npy: compressed entry fails its checksum; the archive is corrupt',
    ]);
  });
});
