import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource, type ByteSource } from '../../functions/commons/tensors/byte-source';
import { ArchiveError, CaiError } from '../../functions/commons/errors';
import { openFitsFile } from '../../functions/commons/fits/fits-file';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';
import { seededRandom } from '../helpers/fuzz';

/**
 * Mutation fuzzing of the FITS reader: every mutant of a small astropy-written file must either read
 * or be refused with a CaiError (a reason for a person), never crash with another error, hang, or
 * allocate past a bound. Seeded, so a failure reproduces.
 */

let base: Uint8Array;

beforeAll(() => {
  const dir = tempFolder('cai-fits-fuzz-');
  runPython(pythonScript('write_fits.py'), [dir]);
  base = new Uint8Array(readFileSync(join(dir, 'small.fits')));
});

const BLOCK = 2880;
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** An 80-character card: keyword in columns 1-8, "= ", the value right-justified to column 30. */
const card = (keyword: string, value: string) => `${keyword.padEnd(8)}= ${value.padStart(20)}`.padEnd(80);

/** A header of these cards and END, padded to whole blocks. */
function header(cards: string[]): string {
  const text = [...cards, 'END'.padEnd(80)].join('');
  return text.padEnd(Math.ceil(text.length / BLOCK) * BLOCK);
}

/** Offsets of every card of every header in the file (headers found as the reader finds them, by their sizes). */
function headerCardOffsets(bytes: Uint8Array): number[] {
  const text = Buffer.from(bytes).toString('latin1');
  const offsets: number[] = [];
  let at = 0;
  while (at < text.length) {
    const start = at;
    while (!text.startsWith('END     ', at)) at += 80;
    for (let c = start; c <= at; c += 80) offsets.push(c);
    const cards = text.slice(start, at);
    const value = (key: string) => {
      const found = cards.indexOf(key.padEnd(8) + '= ');
      return found < 0 ? 0 : Number(/^ *(\S+)/.exec(cards.slice(found + 10))![1]);
    };
    const axes = Array.from({ length: value('NAXIS') }, (_, i) => value(`NAXIS${i + 1}`));
    const bytesOfData = axes.length ? (Math.abs(value('BITPIX')) / 8) * axes.reduce((a, b) => a * b, 1) + value('PCOUNT') : 0;
    at = Math.ceil((at + 80) / BLOCK) * BLOCK + Math.ceil(bytesOfData / BLOCK) * BLOCK;
  }
  return offsets;
}

/** Reads through a source, refusing any read past a bound: what a mutant can make the reader ask for. */
function boundedSource(bytes: Uint8Array, largest: { bytes: number }): ByteSource {
  const inner = bufferSource(bytes, 'fuzzed.fits');
  return {
    ...inner,
    read(offset, length, into) {
      largest.bytes = Math.max(largest.bytes, length);
      return inner.read(offset, length, into);
    },
  };
}

/** What became of one file: read whole, refused with a reason (its message), or crashed (any other error). */
async function outcome(bytes: Uint8Array): Promise<{ refused?: string; crash?: unknown; allocated: number }> {
  const largestRead = { bytes: 0 };
  let allocated = 0;
  try {
    const file = await openFitsFile(boundedSource(bytes, largestRead));
    for (const tensor of file.tensors) {
      const data = await file.readRows(tensor, 0, tensor.shape[0]);
      allocated = Math.max(allocated, data.byteLength);
      file.find(tensor.name);
    }
    for (const ref of [0, 1, 2, 'CATALOG', 'CATALOG/MAG', 'SCALED', 'nope/x']) file.find(ref);
    return { allocated: Math.max(allocated, largestRead.bytes) };
  } catch (error) {
    const allocatedSoFar = Math.max(allocated, largestRead.bytes);
    return error instanceof CaiError ? { refused: error.message, allocated: allocatedSoFar } : { crash: error, allocated: allocatedSoFar };
  }
}

const ITERATIONS = 1500;
// The widest conversion is a byte column scaled to float64: 8 bytes of output per stored byte.
const allocationBound = (bytes: Uint8Array) => 8 * bytes.length;

test('the unmutated file reads', async () => {
  const result = await outcome(base);
  expect(result.refused ?? result.crash).toBeUndefined();
});

test('mutated header cards are read or refused with a reason', async () => {
  const offsets = headerCardOffsets(base);
  // Three headers of a few cards each, found by walking them as a reader would.
  expect(offsets.length).toBeGreaterThan(30);
  const next = seededRandom(20260301);
  const values = [
    '0',
    '1',
    '-1',
    '2',
    '8',
    '16',
    '-32',
    '999',
    '1000',
    '1152921504606846976',
    '4294967296',
    '1.5',
    'T',
    'F',
    "'A'",
    "'1PE(3)'",
    "'(2,2)'",
    "'5E'",
    '',
  ];
  const crashes: string[] = [];
  const overAllocated: string[] = [];
  let refused = 0;
  let read = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const mutated = base.slice();
    for (let k = 1 + next(3); k > 0; k--) {
      const at = offsets[next(offsets.length)];
      const kind = next(3);
      if (kind === 0) {
        // A card's value replaced by another plausible or absurd one.
        mutated.set(ascii(values[next(values.length)].padStart(20).padEnd(70)), at + 10);
      } else if (kind === 1) {
        mutated[at + next(80)] = next(2) ? next(256) : ascii("=' /0123456789TFE")[next(17)];
      } else {
        // A card dropped or duplicated: its neighbour copied over it.
        mutated.copyWithin(at, at + 80 * (next(2) ? 1 : -1), at + 80 * (next(2) ? 2 : 0));
      }
    }
    const result = await outcome(mutated);
    if (result.crash) crashes.push(`iteration ${i}: ${(result.crash as Error).stack}`);
    if (result.allocated > allocationBound(mutated)) overAllocated.push(`iteration ${i}: ${result.allocated} bytes`);
    if (result.refused !== undefined) {
      expect(result.refused).not.toContain('\n');
      refused++;
    } else if (!result.crash) read++;
  }
  expect(crashes.slice(0, 3)).toEqual([]);
  expect(overAllocated.slice(0, 3)).toEqual([]);
  // Floors of a fuzz that bites: mutants both refused and read.
  expect(refused).toBeGreaterThan(ITERATIONS / 10);
  expect(read).toBeGreaterThan(ITERATIONS / 10);
});

test('mutated and truncated files are read or refused with a reason', async () => {
  const next = seededRandom(7);
  const crashes: string[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    let mutated = base.slice();
    if (next(3) === 0) mutated = mutated.slice(0, next(mutated.length));
    for (let k = next(4); k > 0 && mutated.length > 0; k--) mutated[next(mutated.length)] = next(256);
    const result = await outcome(mutated);
    if (result.crash) crashes.push(`iteration ${i}: ${(result.crash as Error).stack}`);
    expect(result.allocated).toBeLessThanOrEqual(allocationBound(mutated));
  }
  expect(crashes.slice(0, 3)).toEqual([]);
});

describe('absurd headers are refused in one line, before anything is allocated', () => {
  const refusal = async (text: string) => {
    const largest = { bytes: 0 };
    const error = await openFitsFile(boundedSource(ascii(text), largest)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ArchiveError);
    expect(largest.bytes).toBeLessThanOrEqual(4 * BLOCK);
    return (error as Error).message;
  };
  const primary = (...cards: string[]) => [card('SIMPLE', 'T'), card('BITPIX', '-32'), ...cards];

  test('a cube claiming 2^60 elements', async () => {
    const text = header(primary(card('NAXIS', '2'), card('NAXIS1', '1073741824'), card('NAXIS2', '1073741824'))) + ' '.repeat(BLOCK);
    expect(await refusal(text)).toBe(
      'fuzzed.fits: HDU 0: its header claims 4611686018427387904 bytes of data (BITPIX -32, NAXISn 1073741824 × 1073741824, ' +
        'PCOUNT 0, GCOUNT 1) but only 2880 bytes follow it: truncated or corrupt',
    );
  });

  test('an axis past 2^53', async () => {
    expect(await refusal(header(primary(card('NAXIS', '1'), card('NAXIS1', '1152921504606846976000'))))).toBe(
      'fuzzed.fits: HDU 0: NAXIS1 = 1152921504606846976000 is out of range',
    );
  });

  test('a header without END in its first 100 blocks', async () => {
    const cards = primary(card('NAXIS', '0'));
    const text = (cards.join('') + ' '.repeat(80 * 36 * 101)).slice(0, 101 * BLOCK);
    expect(await refusal(text)).toBe("fuzzed.fits: HDU 0: no END card in the header's first 100 blocks");
  });

  test('more than 1000 HDUs', async () => {
    const extension = header([
      card('XTENSION', "'IMAGE   '"),
      card('BITPIX', '8'),
      card('NAXIS', '0'),
      card('PCOUNT', '0'),
      card('GCOUNT', '1'),
    ]);
    const first = header([card('SIMPLE', 'T'), card('BITPIX', '8'), card('NAXIS', '0')]);
    expect(await refusal(first + extension.repeat(1000))).toBe('fuzzed.fits: more than 1000 HDUs; CAI reads files of at most 1000');
    // The control: 999 extensions (1000 HDUs) open.
    const file = await openFitsFile(bufferSource(ascii(first + extension.repeat(999)), 'fuzzed.fits'));
    expect(file.tensors).toEqual([]);
  });

  test('not FITS, and a BITPIX FITS does not have', async () => {
    expect(await refusal('PK\u0003\u0004'.padEnd(BLOCK))).toMatch(/^fuzzed\.fits: not a FITS file/);
    expect(await refusal(header([card('SIMPLE', 'T'), card('BITPIX', '12'), card('NAXIS', '0')]))).toBe(
      'fuzzed.fits: HDU 0: BITPIX = 12; FITS allows 8, 16, 32, 64, -32 or -64',
    );
  });
});
