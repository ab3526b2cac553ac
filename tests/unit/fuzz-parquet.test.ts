import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { DTYPES } from '../../functions/commons/tensors/dtype';
import { CaiError } from '../../functions/commons/errors';
import { openParquetFile } from '../../functions/commons/parquet/parquet-file';
import { snappyDecompress } from '../../functions/commons/parquet/snappy';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { seededRandom } from '../helpers/fuzz';

/**
 * Mutation fuzzing of the Parquet reader on small files pyarrow wrote (3 columns, 6 rows in two
 * row groups; snappy, zstd with v2 data pages, gzip): every mutant or truncation must either read or be refused with a CaiError,
 * never crash with another error, hang, or allocate what a header claims. Seeded, so a failure
 * reproduces; FUZZ_SEED and FUZZ_ITERATIONS run others.
 */

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 1500);
/** The most a fuzz read asks for: a caller sizes its reads by the shape the file claims. */
const READ_BYTES = 16 * 1024 * 1024;

const FILES = ['small', 'small_zstd_v2', 'small_gzip'];
const bases: Record<string, Uint8Array> = {};

beforeAll(() => {
  const dir = tempFolder('cai-fuzz-parquet-');
  runPython(pythonScript('write_parquet.py'), [dir, '--small']);
  for (const name of FILES) bases[name] = new Uint8Array(readFileSync(join(dir, `${name}.parquet`)));
});

type Outcome = { read: true } | { refused: string } | { crash: unknown };

async function outcome(bytes: Uint8Array): Promise<Outcome> {
  try {
    const file = await openParquetFile(bufferSource(bytes, 'fuzzed.parquet'));
    for (const name of ['redshift', 'mag', 'id', 'missing']) file.find(name);
    for (const tensor of file.tensors) {
      const rowBytes = tensor.shape.slice(1).reduce((n, d) => n * d, DTYPES[tensor.dtype].itemSize);
      const rows = Math.min(tensor.shape[0], Math.floor(READ_BYTES / Math.max(rowBytes, 1)));
      await file.readRows(tensor, 0, rows);
    }
    return { read: true };
  } catch (error) {
    return error instanceof CaiError ? { refused: error.message } : { crash: error };
  }
}

test.each(FILES)('%s itself reads (the control)', async (name) => {
  expect(await outcome(bases[name])).toEqual({ read: true });
  const file = await openParquetFile(bufferSource(bases[name], 'small.parquet'));
  expect(file.tensors.map((t) => `${t.name} ${t.dtype}[${t.shape}]`)).toEqual(['redshift float64[6]', 'mag float32[6,5]', 'id int16[6]']);
});

test.each(FILES)('%s: mutants and truncations are read or refused with a reason, promptly and within bounded memory', async (name) => {
  const base = bases[name];
  const next = seededRandom(Number(process.env.FUZZ_SEED ?? 20260214));
  const footerLength = new DataView(base.buffer, base.byteOffset).getUint32(base.length - 8, true);
  const footerStart = base.length - 8 - footerLength;
  const crashes: string[] = [];
  const counts = { read: 0, refused: 0 };
  const refusals = new Set<string>();
  let slowest = 0;
  let peakRss = 0;
  const rssBefore = process.memoryUsage().rss;
  const interesting = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x15, 0x16, 0x18, 0x19, 0x1c, 0x26];
  for (let i = 0; i < ITERATIONS; i++) {
    let mutated = base.slice();
    if (next(5) === 0) mutated = mutated.slice(0, next(mutated.length));
    for (let k = 1 + next(3); k > 0 && mutated.length > 0; k--) {
      // Half at the footer (schema, row groups, offsets, counts), half at the pages (headers, levels, values).
      const at = next(2) === 0 ? footerStart + next(footerLength) : 4 + next(footerStart - 4);
      if (at >= mutated.length) continue;
      const kind = next(3);
      mutated[at] = kind === 0 ? next(256) : kind === 1 ? mutated[at] ^ (1 << next(8)) : interesting[next(interesting.length)];
    }
    // FUZZ_TRACE=file keeps the mutant under way, to find one that hangs.
    if (process.env.FUZZ_TRACE) writeFileSync(process.env.FUZZ_TRACE, `${name} ${i}\n${Buffer.from(mutated).toString('base64')}`);
    const started = performance.now();
    const result = await outcome(mutated);
    slowest = Math.max(slowest, performance.now() - started);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if ('crash' in result) crashes.push(`iteration ${i}: ${(result.crash as Error).stack}`);
    else if ('refused' in result) {
      counts.refused++;
      refusals.add(result.refused.replace(/\d+/g, 'N'));
      // One line, naming the file.
      expect(result.refused).toMatch(/^fuzzed\.parquet: [^\n]+$/);
    } else counts.read++;
  }
  expect(crashes.slice(0, 3)).toEqual([]);
  // A fuzz that bites: many refusals of many kinds, and some mutants (a value's bytes) still read.
  expect(counts.refused).toBeGreaterThan(ITERATIONS / 3);
  expect(refusals.size).toBeGreaterThan(15);
  expect(counts.read).toBeGreaterThan(20);
  expect(slowest).toBeLessThan(2000);
  expect(peakRss - rssBefore).toBeLessThan(512 * 1024 * 1024);
});

test('a snappy literal claiming 2^32 bytes is refused at once (hyparquet 1.33.0 takes it as negative and steps back forever)', () => {
  // Preamble: 8 bytes; a literal with a 4-byte length (tag 63 << 2) of 0xffffffff, then 8 bytes.
  const page = new Uint8Array([8, 0xfc, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
  expect(() => snappyDecompress(page, 8)).toThrow('a SNAPPY page is corrupt: a literal overruns the page');
  // The control: the same 8 bytes as a 1-byte-length literal decode.
  expect(Array.from(snappyDecompress(new Uint8Array([8, 7 << 2, 1, 2, 3, 4, 5, 6, 7, 8]), 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
});
