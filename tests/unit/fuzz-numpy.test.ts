import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { CaiError } from '../../functions/commons/errors';
import { openNumpyFile } from '../../functions/commons/numpy/numpy-file';
import { MAX_DEFLATE_RATIO } from '../../functions/commons/numpy/inflate';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { seededRandom } from '../helpers/fuzz';

/**
 * Mutation fuzzing of the NumPy reader over small files numpy wrote: every mutant must read or be
 * refused with a CaiError (a reason for a person), never crash with another error, hang, or allocate
 * past what the file's bytes can account for. Seeded, so a failure reproduces.
 */

const dir = tempFolder('cai-fuzz-numpy-');
beforeAll(() => runPython(pythonScript('write_numpy.py'), [dir]));

interface Outcome {
  refused?: string;
  crash?: unknown;
  /** Bytes of rows handed out. */
  rowBytes: number;
  ms: number;
}

async function outcome(bytes: Uint8Array, name: string): Promise<Outcome> {
  const began = Date.now();
  let rowBytes = 0;
  try {
    const file = await openNumpyFile(bufferSource(bytes, name));
    for (const tensor of file.tensors) {
      const rows = tensor.shape[0];
      // Twice, the second out of order, so that a deflated entry's cursor also starts again.
      for (const [start, end] of [
        [0, rows],
        [rows >> 1, rows],
        [0, rows >> 1],
      ]) {
        rowBytes += (await file.readRows(tensor, start, end)).byteLength;
      }
    }
    await file.close();
    return { rowBytes, ms: Date.now() - began };
  } catch (error) {
    const ms = Date.now() - began;
    return error instanceof CaiError ? { refused: error.message, rowBytes, ms } : { crash: error, rowBytes, ms };
  }
}

const ITERATIONS = 1500;
/** Where each file's few structured bytes lie: .npy headers, zip local headers and directory. */
const bases: [string, (length: number, next: (n: number) => number) => number][] = [
  ['int16.npy', (length, next) => next(length)],
  ['big_endian_f8.npy', (length, next) => next(Math.min(length, 140))],
  ['catalogue.npz', (length, next) => (next(2) ? length - 1 - next(Math.min(length, 400)) : next(Math.min(length, 300)))],
  ['mixed.npz', (length, next) => (next(2) ? length - 1 - next(Math.min(length, 300)) : next(length))],
  ['small_compressed.npz', (length, next) => (next(3) ? next(length) : length - 1 - next(Math.min(length, 300)))],
];

test.each(bases)('mutated and truncated %s are read or refused with a reason', async (name, where) => {
  const base = new Uint8Array(readFileSync(join(dir, name)));
  expect((await outcome(base, name)).refused).toBeUndefined();
  const next = seededRandom(name.length * 7919 + base.length);
  const crashes: string[] = [];
  const slow: number[] = [];
  let refused = 0;
  let read = 0;
  let mostRowBytes = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    let mutated = base.slice();
    if (next(4) === 0) mutated = mutated.slice(0, next(mutated.length));
    for (let k = 1 + next(3); k > 0 && mutated.length > 0; k--) {
      const at = where(mutated.length, next);
      const kind = next(3);
      mutated[at] = kind === 0 ? next(256) : kind === 1 ? mutated[at] ^ (1 << next(8)) : [0x00, 0xff, 0x27, 0x28, 0x2c, 0x39][next(6)];
    }
    const result = await outcome(mutated, name);
    if (result.crash) crashes.push(`iteration ${i}: ${(result.crash as Error).stack}`);
    else if (result.refused) refused++;
    else read++;
    if (result.ms > 2000) slow.push(i);
    mostRowBytes = Math.max(mostRowBytes, result.rowBytes);
  }
  expect(crashes.slice(0, 3)).toEqual([]);
  expect(slow).toEqual([]);
  // Rows handed out (each read twice over) never exceed what the file's bytes can inflate to.
  expect(mostRowBytes).toBeLessThanOrEqual(2 * base.length * MAX_DEFLATE_RATIO);
  // A fuzz that bites: many mutants refused, and some still read.
  expect(refused).toBeGreaterThan(ITERATIONS / 5);
  expect(read).toBeGreaterThan(5);
});
