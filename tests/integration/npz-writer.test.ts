import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { DTYPES } from '../../functions/commons/tensors/dtype';
import { openNumpyFile } from '../../functions/commons/numpy/numpy-file';
import { UsageError } from '../../functions/commons/errors';
import { writeNpz, type NpzArray } from '../../toolkit/datasets/npz-writer';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

const dir = tempFolder('cai-npz-writer-');

const arrays: Record<string, NpzArray> = {
  images: { dtype: 'float32', shape: [3, 2, 2, 2], data: Float32Array.from({ length: 24 }, (_, i) => i / 8 - 1) },
  redshift: { dtype: 'float64', shape: [3], data: Float64Array.from([0.1, 1.5, 2.25]) },
  ids: { dtype: 'int64', shape: [3], data: BigInt64Array.from([-(2n ** 60n), 0n, 2n ** 62n + 1n]) },
  flags: { dtype: 'bool', shape: [3, 1], data: Uint8Array.from([1, 0, 1]) },
  cutouts: { dtype: 'uint8', shape: [3, 1, 2], data: Uint8Array.from([0, 255, 7, 8, 9, 10]) },
  halves: { dtype: 'float16', shape: [3, 1], data: Uint16Array.from([0x3c00, 0xc000, 0x3800]) },
  counts: { dtype: 'int16', shape: [3, 2], data: Int16Array.from([-32768, 32767, 0, 1, -1, 2]) },
};

function loadWithNumpy(bytes: Uint8Array, name: string) {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return JSON.parse(runPython(pythonScript('check_npz.py'), [path])) as Record<
    string,
    { dtype: string; shape: number[]; values: (string | number)[] }
  >;
}

test('numpy loads what writeNpz writes: names, dtypes, shapes and values', () => {
  const loaded = loadWithNumpy(writeNpz(arrays), 'written.npz');
  expect(Object.keys(loaded)).toEqual(Object.keys(arrays));
  expect(loaded.images).toEqual({ dtype: '<f4', shape: [3, 2, 2, 2], values: Array.from(arrays.images.data as Float32Array) });
  expect(loaded.redshift.values).toEqual([0.1, 1.5, 2.25]);
  expect(loaded.ids).toEqual({ dtype: '<i8', shape: [3], values: [`${-(2n ** 60n)}`, '0', `${2n ** 62n + 1n}`] });
  expect(loaded.flags).toEqual({ dtype: '|b1', shape: [3, 1], values: ['True', 'False', 'True'] });
  expect(loaded.cutouts.values).toEqual(['0', '255', '7', '8', '9', '10']);
  expect(loaded.halves).toEqual({ dtype: '<f2', shape: [3, 1], values: [1, -2, 0.5] });
  expect(loaded.counts.values).toEqual(['-32768', '32767', '0', '1', '-1', '2']);
});

test('entries are stored with their data aligned, and read back by range', async () => {
  const bytes = writeNpz(arrays);
  const file = await openNumpyFile(bufferSource(bytes, 'written.npz'));
  expect(file.tensors.map((t) => [t.name, t.dtype, t.shape, t.rowsReadTogether])).toEqual(
    Object.entries(arrays).map(([name, a]) => [name, a.dtype, a.shape, 1]),
  );
  for (const tensor of file.tensors) {
    const { data } = arrays[tensor.name];
    const rowElements = data.length / tensor.shape[0];
    const rows = await file.readRows(tensor, 1, 3);
    // A view of the buffer itself, not a copy: the data lies aligned for its dtype.
    expect(rows.buffer).toBe(bytes.buffer);
    expect(rows.byteOffset % DTYPES[tensor.dtype].itemSize).toBe(0);
    expect(Array.from(rows as Float32Array)).toEqual(Array.from(data.subarray(rowElements, 3 * rowElements) as Float32Array));
  }
});

test('an array whose shape does not hold its data is refused', () => {
  expect(() => writeNpz({ x: { dtype: 'float32', shape: [2, 3], data: new Float32Array(5) } })).toThrow(
    new UsageError('npz array x: shape [2,3] does not hold its 5 elements'),
  );
  expect(() => writeNpz({ x: { dtype: 'float64', shape: [2], data: new Float32Array(2) } })).toThrow(UsageError);
});
