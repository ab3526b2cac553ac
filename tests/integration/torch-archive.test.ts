import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource, fileSource } from '../../functions/commons/tensors/byte-source';
import { toFloat32 } from '../../functions/commons/tensors/dtype';
import { ArchiveError, UnsafePickleError, UnsupportedTensorError } from '../../functions/commons/errors';
import { openTorchPartition } from '../../toolkit/datasets/galaxy-partition';
import { loadTensor, openTorchArchive } from '../../functions/commons/torch/archive';
import { sharedSamples } from '../../toolkit/datasets/inspect';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

interface ExpectedTensor {
  shape: number[];
  dtype: string;
  values: number[];
}
type Expected = Record<string, ExpectedTensor[] | { error: string }>;

const dir = tempFolder('cai-torch-');
let expected: Expected;

beforeAll(() => {
  runPython(pythonScript('make_archives.py'), [dir]);
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
});

async function decodeAll(name: string) {
  const source = await fileSource(join(dir, `${name}.pt`));
  try {
    const archive = await openTorchArchive(source);
    const tensors = [];
    for (const ref of archive.tensors) {
      const t = await loadTensor(archive, ref);
      tensors.push({ shape: t.shape, dtype: t.dtype, values: Array.from(toFloat32(t.dtype, t.data)) });
    }
    return { archive, tensors };
  } finally {
    await source.close();
  }
}

describe('archives written by PyTorch decode to what torch.load reads', () => {
  const readable = ['dataset', 'slices', 'strided', 'float64_labels', 'unlabelled', 'tuple', 'dict', 'dtypes'];

  test.each(readable)('%s', async (name) => {
    const want = expected[name] as ExpectedTensor[];
    const { tensors } = await decodeAll(name);
    expect(tensors.map((t) => [t.dtype, t.shape])).toEqual(want.map((t) => [t.dtype, t.shape]));
    tensors.forEach((t, i) => {
      // Compared at float32 precision: what the model consumes. int64 beyond 2^24 is checked below.
      const wantValues = Float32Array.from(want[i].values);
      expect(Float32Array.from(t.values)).toEqual(wantValues);
    });
  });

  test('int64 values are exact, beyond float precision', async () => {
    const source = await fileSource(join(dir, 'dtypes.pt'));
    const archive = await openTorchArchive(source);
    const int64 = archive.tensors.find((t) => t.dtype === 'int64')!;
    const { data } = await loadTensor(archive, int64);
    expect(Array.from(data as BigInt64Array)).toEqual([-(2n ** 40n), 7n, 0n, 2n ** 40n]);
    await source.close();
  });

  test('slices carry the whole parent storage and are read at their offset', async () => {
    const { archive } = await decodeAll('slices');
    const [images] = archive.tensors;
    expect(images.storageOffset).toBe(7 * 5 * 32 * 32);
    expect(images.storage.numel).toBe(20 * 5 * 32 * 32);
  });

  test('strided views are gathered into row-major order', async () => {
    const { archive } = await decodeAll('strided');
    expect(archive.tensors[0].strides).toEqual([1024, 4096, 32, 1]);
  });

  test('partitions: labelled, unlabelled and float64 labels', async () => {
    for (const [name, labelled] of [
      ['dataset', true],
      ['unlabelled', false],
      ['float64_labels', true],
      ['tuple', true],
      ['dict', true],
    ] as const) {
      const reader = await openTorchPartition(await fileSource(join(dir, `${name}.pt`)));
      const rows = await reader.readRows(0, reader.samples);
      const want = expected[name] as ExpectedTensor[];
      expect(reader.labelled).toBe(labelled);
      expect(rows.images).toEqual(Float32Array.from(want[0].values));
      expect(rows.magnitudes).toEqual(Float32Array.from(want[1].values));
      if (labelled) expect(rows.redshift).toEqual(Float32Array.from(want[2].values));
      else expect(rows.redshift).toBeUndefined();
      // A middle range reads the same values as the whole.
      const middle = await reader.readRows(1, 3);
      expect(middle.images).toEqual(rows.images.subarray(5120, 3 * 5120));
      await reader.close();
    }
  });

  test('an in-memory archive decodes the same as a file', async () => {
    const bytes = readFileSync(join(dir, 'dataset.pt'));
    const archive = await openTorchArchive(bufferSource(bytes));
    expect(sharedSamples(archive.tensors)).toBe(6);
  });
});

describe('hostile and broken archives are refused with a reason, and nothing runs', () => {
  test('a pickle whose reduce calls os.system', async () => {
    const promise = decodeAll('os_system');
    await expect(promise).rejects.toBeInstanceOf(UnsafePickleError);
    await expect(promise).rejects.toThrow(/refused pickle global posix\.system/);
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
  });

  test('a pickle that calls builtins.eval', async () => {
    await expect(decodeAll('builtins_eval')).rejects.toThrow(/refused pickle global (__builtin__|builtins)\.eval/);
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
  });

  test('an absurd declared shape', async () => {
    const promise = decodeAll('absurd_shape');
    await expect(promise).rejects.toBeInstanceOf(ArchiveError);
    await expect(promise).rejects.toThrow(/declares shape \[1000000000000,5\].*holds only 10 elements/);
  });

  test('an unsupported dtype is named', async () => {
    const promise = decodeAll('bfloat16');
    await expect(promise).rejects.toBeInstanceOf(UnsupportedTensorError);
    await expect(promise).rejects.toThrow(/bfloat16 is not supported/);
  });

  test('the legacy pre-zip format', async () => {
    await expect(decodeAll('legacy')).rejects.toThrow(/legacy \(pre-1\.6\) torch serialization format/);
  });

  test('a truncated archive', async () => {
    const bytes = readFileSync(join(dir, 'dataset.pt'));
    for (const keep of [10, 1000, bytes.length / 2, bytes.length - 30]) {
      await expect(openTorchArchive(bufferSource(bytes.subarray(0, keep), 'cut.pt'))).rejects.toThrow(/cut\.pt: truncated/);
    }
  });

  test('a file that is not a zip', async () => {
    const text = new TextEncoder().encode('redshift,ra,dec\n0.1,150.1,2.2\n'.repeat(10));
    await expect(openTorchArchive(bufferSource(text, 'table.csv'))).rejects.toThrow('table.csv: not a zip archive');
    await expect(openTorchArchive(bufferSource(new Uint8Array(3), 'tiny'))).rejects.toThrow(/not a zip archive/);
  });
});
