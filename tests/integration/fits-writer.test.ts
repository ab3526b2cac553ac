import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSource } from '../../functions/commons/tensors/byte-source';
import type { StoredTensor } from '../../functions/commons/tensors/tensor-file';
import { openFitsFile } from '../../functions/commons/fits/fits-file';
import { UsageError } from '../../functions/commons/errors';
import { writeFitsSurvey, type FitsSurvey } from '../../toolkit/datasets/fits-writer';
import { synthesizeInto } from '../../toolkit/datasets/synth';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

const dir = tempFolder('cai-fits-writer-');
const N = 6;

function survey(): FitsSurvey {
  const images = new Float32Array(N * 5 * 64 * 64);
  const magnitudes = new Float32Array(N * 5);
  const redshift = new Float32Array(N);
  synthesizeInto({ images, magnitudes, redshift }, 0, N, 11);
  return {
    images,
    imageShape: [5, 64, 64],
    columns: [
      { name: 'MAG', values: magnitudes, perRow: 5 },
      { name: 'REDSHIFT', values: Float64Array.from(redshift) },
    ],
  };
}

const sha256 = (array: Float32Array | Float64Array) =>
  createHash('sha256')
    .update(new Uint8Array(array.buffer, array.byteOffset, array.byteLength))
    .digest('hex');

test('astropy reads the written survey as written, and finds the file conforming', () => {
  const written = survey();
  const path = join(dir, 'survey.fits');
  writeFileSync(path, writeFitsSurvey(written));
  const seen = JSON.parse(runPython(pythonScript('read_fits.py'), [path]));
  expect(seen.verified).toBe('ok');
  expect(seen.hdus).toEqual([
    { extname: null, type: 'PrimaryHDU', data: { shape: [N, 5, 64, 64], dtype: 'float32', sha256: sha256(written.images) } },
    {
      extname: 'CATALOG',
      type: 'BinTableHDU',
      columns: {
        MAG: { shape: [N, 5], dtype: 'float32', sha256: sha256(written.columns[0].values) },
        REDSHIFT: { shape: [N], dtype: 'float64', sha256: sha256(written.columns[1].values) },
      },
    },
  ]);
});

test('the FITS reader reads it back', async () => {
  const written = survey();
  const path = join(dir, 'roundtrip.fits');
  writeFileSync(path, writeFitsSurvey(written));
  const file = await openFitsFile(await fileSource(path));
  expect(file.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([
    ['0', 'float32', [N, 5, 64, 64]],
    ['CATALOG/MAG', 'float32', [N, 5]],
    ['CATALOG/REDSHIFT', 'float64', [N]],
  ]);
  expect(await file.readRows(file.find('0') as StoredTensor, 0, N)).toEqual(written.images);
  expect(await file.readRows(file.find('catalog/mag') as StoredTensor, 2, 4)).toEqual(written.columns[0].values.subarray(10, 20));
  await file.close();
});

test('arrays that do not make whole rows are refused', () => {
  const bad = survey();
  bad.columns[0].perRow = 4;
  expect(() => writeFitsSurvey(bad)).toThrow(new UsageError('column MAG holds 30 values; 6 rows of 4 need 24'));
});
