import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource, fileSource, type ByteSource } from '../../functions/commons/tensors/byte-source';
import type { DType, TensorData } from '../../functions/commons/tensors/dtype';
import type { StoredTensor, TensorFile } from '../../functions/commons/tensors/tensor-file';
import { openFitsFile } from '../../functions/commons/fits/fits-file';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

interface ExpectedTensor {
  name: string;
  dtype: string;
  shape: number[];
  file: string;
}

const dir = tempFolder('cai-fits-');
let expected: Record<string, ExpectedTensor[]>;

beforeAll(() => {
  runPython(pythonScript('write_fits.py'), [dir]);
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
});

/** An .npy file's dtype, shape and data bytes (version 1 or 2 headers, C order, little-endian). */
function readNpy(path: string): { dtype: string; shape: number[]; data: Buffer } {
  const bytes = readFileSync(path);
  expect(bytes.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
  const major = bytes[6];
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.subarray(start, start + headerLength).toString('latin1');
  expect(header).toContain("'fortran_order': False");
  const descr = /'descr': '([^']+)'/.exec(header)![1];
  const shape = /'shape': \(([^)]*)\)/
    .exec(header)![1]
    .split(',')
    .filter((s) => s.trim())
    .map(Number);
  return { dtype: descr, shape, data: bytes.subarray(start + headerLength) };
}

const NPY_DTYPES: Record<string, DType> = {
  '<f4': 'float32',
  '<f8': 'float64',
  '<i2': 'int16',
  '<u2': 'uint16',
  '<i4': 'int32',
  '<u4': 'uint32',
  '<i8': 'int64',
  '<u8': 'uint64',
  '|u1': 'uint8',
  '|i1': 'int8',
  '|b1': 'bool',
};

const bytesOf = (data: TensorData) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** A file source that records every range read from it. */
async function recordingSource(path: string): Promise<{ source: ByteSource; reads: [number, number][] }> {
  const inner = await fileSource(path);
  const reads: [number, number][] = [];
  const source: ByteSource = {
    name: inner.name,
    size: inner.size,
    read(offset, length, into) {
      reads.push([offset, length]);
      return inner.read(offset, length, into);
    },
    close: () => inner.close(),
  };
  return { source, reads };
}

async function withFile<T>(name: string, use: (file: TensorFile) => Promise<T>): Promise<T> {
  const file = await openFitsFile(await fileSource(join(dir, name)));
  try {
    return await use(file);
  } finally {
    await file.close();
  }
}

describe.each(['survey', 'small', 'tables'])('%s.fits reads as astropy reads it', (stem) => {
  test('every tensor, named, typed and shaped as astropy gives it', async () => {
    await withFile(`${stem}.fits`, async (file) => {
      expect(file.format).toBe('fits');
      const want = expected[stem].map((t) => [t.name, NPY_DTYPES[readNpy(join(dir, t.file)).dtype], t.shape]);
      expect(file.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(want);
    });
  });

  test('row ranges hold astropy’s values, bit for bit', async () => {
    await withFile(`${stem}.fits`, async (file) => {
      for (const want of expected[stem]) {
        const npy = readNpy(join(dir, want.file));
        const tensor = file.find(want.name) as StoredTensor;
        const rows = tensor.shape[0];
        const rowBytes = npy.data.length / rows;
        for (const [start, end] of [
          [0, rows],
          [1, 3],
          [rows - 1, rows],
          [2, 2],
        ]) {
          const data = await file.readRows(tensor, start, end);
          const got = bytesOf(data);
          const wantBytes = npy.data.subarray(start * rowBytes, end * rowBytes);
          if (!got.equals(wantBytes)) throw new Error(`${want.name} rows [${start}, ${end}) differ from astropy's`);
        }
      }
    });
  });
});

describe('names', () => {
  test('an HDU by index, index string or EXTNAME in any case; a column as <HDU>/<column> in any case', async () => {
    await withFile('survey.fits', async (file) => {
      const named = (ref: number | string) => {
        const found = file.find(ref);
        return typeof found === 'string' ? found : found.name;
      };
      expect(named(0)).toBe('0');
      expect(named('0')).toBe('0');
      expect(named(4)).toBe('SCI');
      expect(named('sci')).toBe('SCI');
      expect(named('3')).toBe('3');
      expect(named('CATALOG/REDSHIFT')).toBe('CATALOG/REDSHIFT');
      expect(named('catalog/redshift')).toBe('CATALOG/REDSHIFT');
      expect(named('9/MAG')).toBe('CATALOG/MAG');
      expect(named('CATALOG/objid')).toBe('CATALOG/ObjId');
    });
  });

  test('what is not a tensor says why in one line', async () => {
    await withFile('survey.fits', async (file) => {
      const why = (ref: number | string) => file.find(ref) as string;
      expect(why('PACKED')).toBe(
        "HDU 10 (PACKED) is a tile-compressed image (ZCMPTYPE=RICE_1); CAI reads uncompressed images: write it with astropy's ImageHDU, not CompImageHDU",
      );
      expect(why(10)).toBe(why('PACKED'));
      expect(why('CATALOG/NAME')).toBe("CATALOG/NAME is a string column (TFORM3 = '8A'); CAI reads fixed-size numeric and logical columns");
      expect(why('CATALOG/SPECTRUM')).toMatch(/^CATALOG\/SPECTRUM is a variable-length array column \(TFORM5 = 'PE\(7\)'\)/);
      expect(why('CATALOG/BITS')).toMatch(/^CATALOG\/BITS is a bit column/);
      expect(why('CATALOG')).toMatch(/^HDU 9 \(CATALOG\) is a binary table: name one of its columns \(CATALOG\/REDSHIFT float64\[7\], /);
      expect(why('CATALOG/NOPE')).toBe(
        'no column "NOPE" in HDU 9 (CATALOG): it holds columns REDSHIFT, MAG, NAME, CUTOUT, SPECTRUM, FLAG, COUNT, ObjId, SCALED, BITS, BAND',
      );
      expect(why('MISSING')).toMatch(
        /^no HDU "MISSING": it holds HDUs 0 float32\[7, 5, 64, 64\], SCALED float32\[7, 3, 8\], .* and \d+ more$/,
      );
      expect(why(11)).toMatch(/^no HDU 11: it holds HDUs 0 float32/);
      for (const line of [why('PACKED'), why('CATALOG/NAME'), why('MISSING')]) expect(line).not.toContain('\n');
    });
  });

  test('an empty primary, a table without EXTNAME, and a shared EXTNAME', async () => {
    await withFile('tables.fits', async (file) => {
      expect(file.find(0)).toBe('HDU 0 holds no data (NAXIS = 0)');
      expect((file.find('1/REDSHIFT') as StoredTensor).name).toBe('1/redshift');
      expect(file.find('SCI')).toBe('EXTNAME SCI names HDUs 2, 3: name one by its index');
      expect((file.find('3') as StoredTensor).name).toBe('3');
    });
  });
});

describe('reads', () => {
  test('opening reads headers only; rows of a column are one read of their rows’ span', async () => {
    const path = join(dir, 'survey.fits');
    const { source, reads } = await recordingSource(path);
    const file = await openFitsFile(source);
    // 11 HDUs of one-block headers: the magic, then each header (4 blocks at most, read at once) and
    // the 8 bytes that say whether an extension follows.
    expect(reads.length).toBeLessThanOrEqual(1 + 2 * 11);
    expect(reads.every(([, length]) => length <= 4 * 2880)).toBe(true);
    expect(reads.reduce((sum, [, length]) => sum + length, 0)).toBeLessThan(source.size / 4);

    reads.length = 0;
    const mag = file.find('CATALOG/MAG') as StoredTensor;
    await file.readRows(mag, 2, 5);
    expect(reads).toHaveLength(1);
    expect(reads[0][1]).toBe(3 * mag.storedBytesPerRow);

    reads.length = 0;
    const cube = file.find(0) as StoredTensor;
    expect(cube.storedBytesPerRow).toBe(5 * 64 * 64 * 4);
    await file.readRows(cube, 3, 4);
    expect(reads).toEqual([[2880 + 3 * 5 * 64 * 64 * 4, 5 * 64 * 64 * 4]]);
    await file.close();
  });

  test('rows read into a given buffer are backed by it; a file in memory is left as it was', async () => {
    const bytes = new Uint8Array(readFileSync(join(dir, 'survey.fits')));
    const before = Buffer.from(bytes);
    const file = await openFitsFile(bufferSource(bytes, 'survey.fits'));
    for (const ref of ['0', 'COUNTS', 'SIGNED', 'SCALED', 'CATALOG/FLAG', 'CATALOG/COUNT']) {
      const tensor = file.find(ref) as StoredTensor;
      const into = new Uint8Array(1 << 20);
      const first = await file.readRows(tensor, 0, 2, into);
      expect(first.buffer).toBe(into.buffer);
      const again = await file.readRows(tensor, 0, 2);
      expect(bytesOf(again).equals(bytesOf(first))).toBe(true);
    }
    expect(Buffer.from(bytes).equals(before)).toBe(true);
  });

  test('rows outside the tensor are a RangeError', async () => {
    await withFile('small.fits', async (file) => {
      const tensor = file.tensors[0];
      await expect(file.readRows(tensor, 2, 4)).rejects.toThrow(RangeError);
      await expect(file.readRows(tensor, -1, 1)).rejects.toThrow(RangeError);
    });
  });
});
