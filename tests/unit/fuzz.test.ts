import { crc32 } from 'node:zlib';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { CaiError } from '../../functions/commons/errors';
import { openTorchPartition } from '../../toolkit/datasets/galaxy-partition';
import { synthesizeInto } from '../../toolkit/datasets/synth';
import { TorchDatasetArchive } from '../../toolkit/datasets/torch-writer';
import { seededRandom } from '../helpers/fuzz';

/**
 * Mutation fuzzing of the decoder: every mutated archive must either decode or be refused with a
 * CaiError (a reason for a person), never crash with another error, hang, or allocate wildly.
 * Seeded, so a failure reproduces.
 */

function baseArchive(): Uint8Array {
  const archive = new TorchDatasetArchive([
    { dtype: 'float32', shape: [3, 5, 32, 32] },
    { dtype: 'float32', shape: [3, 5] },
    { dtype: 'float32', shape: [3] },
  ]);
  synthesizeInto(
    {
      images: archive.tensor(0) as Float32Array,
      magnitudes: archive.tensor(1) as Float32Array,
      redshift: archive.tensor(2) as Float32Array,
    },
    0,
    3,
    9,
  );
  return archive.finish();
}

/** data.pkl is the first record the writer lays out; the central directory holds its CRC. */
function pickleRegion(bytes: Uint8Array) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const directory = dv.getUint32(bytes.length - 22 + 16, true);
  const size = dv.getUint32(directory + 24, true);
  const header = dv.getUint32(directory + 42, true);
  const start = header + 30 + dv.getUint16(header + 26, true) + dv.getUint16(header + 28, true);
  return {
    start,
    size,
    resign(mutated: Uint8Array) {
      new DataView(mutated.buffer).setUint32(directory + 16, crc32(mutated.subarray(start, start + size)), true);
    },
  };
}

/** What became of one archive: decoded, refused with a reason (its message), or crashed (any other error). */
async function outcome(bytes: Uint8Array): Promise<{ refused?: string; crash?: unknown }> {
  try {
    const reader = await openTorchPartition(bufferSource(bytes, 'fuzzed.pt'));
    await reader.readRows(0, reader.samples);
    return {};
  } catch (error) {
    return error instanceof CaiError ? { refused: error.message } : { crash: error };
  }
}

async function decode(bytes: Uint8Array): Promise<unknown> {
  return (await outcome(bytes)).crash ?? null;
}

const CHECKSUM = 'data.pkl fails its checksum; the archive is corrupt';

const ITERATIONS = 1500;

test('mutated pickles are decoded or refused with a reason', async () => {
  const base = baseArchive();
  const region = pickleRegion(base);
  const next = seededRandom(20261121);
  const crashes: string[] = [];
  let stoppedAtChecksum = 0;
  let refusedByDecoder = 0;
  let decoded = 0;
  const interesting = [0x28, 0x2e, 0x4b, 0x4d, 0x4a, 0x52, 0x51, 0x62, 0x63, 0x74, 0x71, 0x68, 0x81, 0x8a, 0x93, 0x94, 0x95];
  for (let i = 0; i < ITERATIONS; i++) {
    const mutated = base.slice();
    for (let k = 1 + next(4); k > 0; k--) {
      const at = region.start + next(region.size);
      const kind = next(3);
      mutated[at] = kind === 0 ? next(256) : kind === 1 ? mutated[at] ^ (1 << next(8)) : interesting[next(interesting.length)];
    }
    region.resign(mutated);
    const result = await outcome(mutated);
    if (result.crash) crashes.push(`iteration ${i}: ${(result.crash as Error).stack}`);
    if (result.refused?.endsWith(CHECKSUM)) stoppedAtChecksum++;
    else if (result.refused) refusedByDecoder++;
    else decoded++;
  }
  expect(crashes.slice(0, 3)).toEqual([]);
  // Every mutant passes the checksum (re-signed), so each one reached the unpickler: none stopped at
  // the CRC, and the unpickler both refused many and decoded some, the floors of a fuzz that bites.
  expect(stoppedAtChecksum).toBe(0);
  expect(refusedByDecoder).toBeGreaterThan(ITERATIONS / 3);
  expect(decoded).toBeGreaterThan(5);
});

test('a pickle changed after it was written fails its zip checksum, before it is unpickled; re-signed, it passes the check (the control)', async () => {
  const base = baseArchive();
  const region = pickleRegion(base);
  const changed = base.slice();
  // A letter of the last storage's location, 'cpu' -> 'cpt': the decoder never reads the location,
  // so the changed pickle decodes to the same tensors and only the checksum can tell.
  const pickle = Buffer.from(base.subarray(region.start, region.start + region.size));
  const location = pickle.lastIndexOf('cpu');
  changed[region.start + location + 2] ^= 0x01;
  expect(Buffer.from(changed.subarray(region.start + location, region.start + location + 3)).toString()).toBe('cpt');
  expect((await outcome(changed)).refused).toBe(`fuzzed.pt: ${CHECKSUM}`);
  region.resign(changed);
  const rows = async (bytes: Uint8Array) => {
    const reader = await openTorchPartition(bufferSource(bytes, 'fuzzed.pt'));
    return reader.readRows(0, reader.samples);
  };
  expect(await rows(changed)).toEqual(await rows(base));
});

test('mutated and truncated files are decoded or refused with a reason', async () => {
  const base = baseArchive();
  const next = seededRandom(7);
  const crashes: string[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    let mutated = base.slice();
    if (next(4) === 0) mutated = mutated.slice(0, next(mutated.length));
    // Headers and the directory are small; aim most mutations at them.
    for (let k = 1 + next(3); k > 0 && mutated.length > 0; k--) {
      const nearEdge = next(2) === 0;
      const at = nearEdge ? Math.max(0, mutated.length - 1 - next(Math.min(400, mutated.length))) : next(Math.min(1200, mutated.length));
      mutated[at] = next(256);
    }
    const crash = await decode(mutated);
    if (crash) crashes.push(`iteration ${i}: ${(crash as Error).stack}`);
  }
  expect(crashes.slice(0, 3)).toEqual([]);
});
