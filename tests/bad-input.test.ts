/**
 * Bad input, as a new user would give it, through the real CLI: each gets its one line (exact where
 * the message is ours), the exit code the README promises, and nothing written where it should not be.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cai } from './helpers/cli';
import { writeTestPartition } from './helpers/partitions';

const work = mkdtempSync(join(tmpdir(), 'cai-bad-'));
const at = (...p: string[]) => join(work, ...p);

beforeAll(() => {
  writeTestPartition(at('clean.pt'), 40);
  // One pixel of galaxy 3 and one magnitude of galaxy 7 are NaN; galaxy 9's label is infinite.
  writeTestPartition(at('nan.pt'), 40, {
    edit: (t) => {
      t.images[3 * 5 * 32 * 32 + 100] = NaN;
      t.magnitudes[7 * 5 + 2] = NaN;
      t.redshift[9] = Infinity;
    },
  });
  writeTestPartition(at('f64.pt'), 40, { dtype: 'float64' });
});

describe('non-finite values', () => {
  test('cai predict: NaN for the objects with a non-finite input, accuracy over the finite rest with the count left out', async () => {
    const run = await cai(['predict', at('nan.pt'), '--out', at('nan.csv'), '--json']);
    expect(run.stderr).not.toMatch(/cai:|Error/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(
      /accuracy over 37 labelled objects \(3 more left out: non-finite prediction or label\):\n {2}MAE \d\.\d{4} /,
    );
    expect(run.stdout).toContain('2 objects have a non-finite input value (NaN or infinity): their predictions are NaN\n');
    const rows = readFileSync(at('nan.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows.filter((r) => r.split(',')[2] === 'NaN').map((r) => Number(r.split(',')[1]))).toEqual([3, 7]);
    expect(rows[9].split(',')[3]).toBe('Infinity');
    const { nonFinite, accuracy } = run.json<{ nonFinite: number; accuracy: { samples: number; excluded: number; mae: number } }>();
    expect([nonFinite, accuracy.samples, accuracy.excluded]).toEqual([2, 37, 3]);
    // The other objects' predictions are those of the clean partition: one bad value touches only its object.
    await cai(['predict', at('clean.pt'), '--out', at('clean.csv')]);
    const clean = readFileSync(at('clean.csv'), 'utf8').trim().split('\n').slice(1);
    rows.forEach((row, i) => {
      if (i !== 3 && i !== 7) expect(row.split(',')[2]).toBe(clean[i].split(',')[2]);
    });
  });
});

test('float64 tensors are widened to float32 and predict what the float32 partition predicts', async () => {
  const run = await cai(['predict', at('f64.pt'), '--out', at('f64.csv')]);
  expect(run.stderr).not.toMatch(/cai:|Error/);
  expect(run.status).toBe(0);
  await cai(['predict', at('clean.pt'), '--out', at('clean.csv')]);
  expect(readFileSync(at('f64.csv'), 'utf8').replace(/f64\.pt/g, 'clean.pt')).toBe(readFileSync(at('clean.csv'), 'utf8'));
});
