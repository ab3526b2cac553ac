import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArchiveError, CaiError } from '../../functions/commons/errors';
import { openHdf5File } from '../../functions/commons/hdf5/hdf5-file';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { DTYPES } from '../../functions/commons/tensors/dtype';
import type { StoredTensor } from '../../functions/commons/tensors/tensor-file';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { seededRandom } from '../helpers/fuzz';

/**
 * Mutation fuzzing of the HDF5 reader over small files h5py wrote: every mutant must either read or be
 * refused with a CaiError (a reason for a person), never crash with another error, hang, or allocate
 * wildly. Seeded, so a failure reproduces. Then hostile headers made by hand, each refused in a line.
 */

const dir = tempFolder('cai-hdf5-fuzz-');
beforeAll(() => runPython(pythonScript('write_hdf5.py'), [dir]));
const fixture = (name: string) => new Uint8Array(readFileSync(join(dir, `${name}.h5`)));

/** The test reads at most this much of any tensor, so that what it allocates is the reader's doing. */
const READ_CAP = 64 << 20;

/** What became of one file: read whole (its tensors' count), refused with a reason, or crashed. */
async function outcome(bytes: Uint8Array, unread: string[] = []): Promise<{ read?: number; refused?: string; crash?: unknown }> {
  try {
    const file = await openHdf5File(bufferSource(bytes, 'fuzzed.h5'));
    for (const tensor of file.tensors) {
      if (unread.includes(tensor.name)) continue;
      const rowBytes = tensor.shape.slice(1).reduce((a, b) => a * b, DTYPES[tensor.dtype].itemSize);
      const rows = Math.min(tensor.shape[0], rowBytes ? Math.floor(READ_CAP / rowBytes) : tensor.shape[0]);
      await file.readRows(tensor, 0, rows);
    }
    for (const ref of ['images', 'nope', 0]) file.find(ref);
    return { read: file.tensors.length };
  } catch (error) {
    return error instanceof CaiError ? { refused: error.message } : { crash: error };
  }
}

const ITERATIONS = 700;

// latest.h5's resizable dataset is refused whole (its extensible array index), so it is left unread.
describe.each([
  ['galaxy', []],
  ['nested', []],
  ['latest', ['group/resizable']],
])('mutated and truncated copies of %s.h5', (name, unread: string[]) => {
  test('are read or refused with a reason, each in bounded time and memory', async () => {
    const base = fixture(name);
    const next = seededRandom(name.length * 7919 + 20261121);
    const crashes: string[] = [];
    let refused = 0;
    let read = 0;
    let slowest = 0;
    let peakArrayBuffers = 0;
    const multiline: string[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      let mutated = base.slice();
      if (next(4) === 0) mutated = mutated.slice(0, next(mutated.length));
      // Metadata is small and lies at the start and, for h5py's late objects, near the end: aim there.
      for (let k = 1 + next(3); k > 0 && mutated.length > 0; k--) {
        const where = next(4);
        const at =
          where < 2
            ? next(Math.min(2048, mutated.length))
            : where === 2
              ? Math.max(0, mutated.length - 1 - next(Math.min(3000, mutated.length)))
              : next(mutated.length);
        mutated[at] = next(3) === 0 ? mutated[at] ^ (1 << next(8)) : next(256);
      }
      const started = performance.now();
      const result = await outcome(mutated, unread);
      slowest = Math.max(slowest, performance.now() - started);
      peakArrayBuffers = Math.max(peakArrayBuffers, process.memoryUsage().arrayBuffers);
      if (result.crash) crashes.push(`iteration ${i}: ${(result.crash as Error).stack}`);
      else if (result.refused !== undefined) {
        refused++;
        if (result.refused.includes('\n')) multiline.push(result.refused);
      } else read++;
    }
    console.log(
      `${name}.h5: ${read} mutants read, ${refused} refused, slowest ${slowest.toFixed(0)} ms, peak array buffers ${(peakArrayBuffers / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(crashes.slice(0, 3)).toEqual([]);
    expect(multiline.slice(0, 3)).toEqual([]);
    // A fuzz that bites: many mutants refused, some read.
    expect(refused).toBeGreaterThan(ITERATIONS / 4);
    expect(read).toBeGreaterThan(10);
    expect(slowest).toBeLessThan(2000);
    expect(peakArrayBuffers).toBeLessThan(512 << 20);
  });
});

/** Where `pattern` occurs in `bytes`, every time. */
function findAll(bytes: Uint8Array, pattern: number[]): number[] {
  const found: number[] = [];
  for (let i = 0; i + pattern.length <= bytes.length; i++) if (pattern.every((b, k) => bytes[i + k] === b)) found.push(i);
  return found;
}

const u64 = (v: number) => Array.from({ length: 8 }, (_, i) => Math.floor(v / 2 ** (8 * i)) % 256);
const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
const writeU64 = (bytes: Uint8Array, at: number, v: number) => bytes.set(u64(v), at);

async function refusal(bytes: Uint8Array, rows?: [number, number]): Promise<string> {
  try {
    const file = await openHdf5File(bufferSource(bytes, 'hostile.h5'));
    const images = file.find('images') as StoredTensor;
    await file.readRows(images, ...(rows ?? [0, images.shape[0]]));
  } catch (error) {
    expect(error).toBeInstanceOf(ArchiveError);
    return (error as Error).message;
  }
  return 'read';
}

describe('hostile headers are refused in one line, before anything is allocated', () => {
  // The galaxy fixture's 1-D datasets are [37] (a version 1 dataspace with max dims), its images [37, 16, 16, 3].
  const dataspace1d = [1, 1, 1, 0, 0, 0, 0, 0, ...u64(37), ...u64(37)];
  const imagesDims = [...u64(37), ...u64(16), ...u64(16), ...u64(3)];

  test('the unmodified fixture reads (the control)', async () => {
    expect(await refusal(fixture('galaxy'))).toBe('read');
  });

  test('a contiguous dataset claiming 2^50 rows', async () => {
    const bytes = fixture('galaxy');
    const at = findAll(bytes, dataspace1d);
    expect(at.length).toBe(4);
    for (const a of at) writeU64(bytes, a + 8, 2 ** 50);
    expect(await refusal(bytes)).toMatch(
      /^hostile\.h5: dataset ans \[1125899906842624\] of 1-byte elements needs 1125899906842624 bytes at \d+, beyond the end of the file \(\d+ bytes\)$/,
    );
  });

  test('a dataspace claiming 2^60 elements', async () => {
    const bytes = fixture('galaxy');
    for (const a of findAll(bytes, dataspace1d)) writeU64(bytes, a + 8, 2 ** 60);
    expect(await refusal(bytes)).toMatch(/^hostile\.h5: dataset ans: dataspace: a field claims 1152921504606846976, beyond any file$/);
  });

  test('a chunked dataset claiming 2^40 rows', async () => {
    const bytes = fixture('galaxy');
    const [at] = findAll(bytes, imagesDims);
    writeU64(bytes, at, 2 ** 40);
    expect(await refusal(bytes)).toMatch(
      /^hostile\.h5: dataset images \[1099511627776, 16, 16, 3\] of 1-byte elements claims \d+ bytes, more than a file of \d+ bytes can hold compressed$/,
    );
  });

  /** The images' chunk B-tree: its one node, a leaf of 8 chunks. */
  function imagesTree(bytes: Uint8Array) {
    const [node] = findAll(bytes, [0x54, 0x52, 0x45, 0x45, 1, 0]); // "TREE", raw data chunks, level 0
    return { node, firstKey: node + 24, firstChild: node + 24 + 48 };
  }

  test('a chunk whose stored size runs past the end of the file', async () => {
    const bytes = fixture('galaxy');
    bytes.set(u32(0x7fffffff), imagesTree(bytes).firstKey);
    expect(await refusal(bytes, [0, 3])).toMatch(
      /^hostile\.h5: dataset images: a chunk of 2147483647 bytes at \d+ lies beyond the end of the file \(\d+ bytes\)$/,
    );
  });

  test('a chunk B-tree node that is its own child', async () => {
    const bytes = fixture('galaxy');
    const { node, firstChild } = imagesTree(bytes);
    bytes[node + 5] = 1; // level 1: its children are nodes
    writeU64(bytes, firstChild, node);
    expect(await refusal(bytes, [0, 3])).toBe(`hostile.h5: dataset images: its chunk B-tree reaches node ${node} twice (a cycle)`);
  });

  test('a chunk that inflates past its declared size', async () => {
    const bytes = fixture('galaxy');
    // The layout's chunk dims (5, 16, 16, 3, element 1) become (4, 16, 16, 3, 1): chunk 0 inflates to 3840 bytes, not 3072.
    const dims = [...u32(5), ...u32(16), ...u32(16), ...u32(3), ...u32(1)];
    const [at] = findAll(bytes, dims);
    bytes[at] = 4;
    expect(await refusal(bytes, [0, 3])).toMatch(/^hostile\.h5: dataset images: a chunk at \[0, 0, 0, 0\] does not inflate: /);
  });
});
