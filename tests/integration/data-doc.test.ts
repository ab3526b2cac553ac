import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../local/paths';
import { cai } from '../helpers/cli';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * docs/data.md shows the line each bad file gets: these are those files, written by the reference
 * libraries (tests/python/write_bad_formats.py), and each line is what `cai inspect` or `cai predict`
 * prints for it, with a non-zero exit. Byte counts may differ with the writers' versions: digits are
 * compared as digits.
 */
const dir = tempFolder('cai-bad-formats-');
const MODEL = join(ROOT, 'model', 'default.onnx');

/** The documented lines, from the table under the marker, code spans unescaped. */
function documentedLines(): string[] {
  const doc = readFileSync(join(ROOT, 'docs', 'data.md'), 'utf8');
  const table = doc.slice(doc.indexOf('<!-- bad-file lines'));
  return [...table.matchAll(/^\| [^|]+ \| `(.+)` \|$/gm)].map((m) => m[1].replaceAll('\\|', '|'));
}

/** A documented line as a pattern: its text, any number where it has one. */
const asPattern = (line: string) => new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\d+/g, '\\d+')}$`);

beforeAll(() => runPython(pythonScript('write_bad_formats.py'), [dir]));

async function lineFor(args: string[]): Promise<string> {
  const run = await cai(args);
  expect(run.status).not.toBe(0);
  const lines = run.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0].replace(/^cai: /, '').replaceAll(`${dir}/`, '<dir>/');
}

test('each bad file gets the line docs/data.md shows, and nothing else', async () => {
  const inspected = [
    'notes.h5',
    'truncated.h5',
    'lzf.h5',
    'truncated.fits',
    'absurd.fits',
    'truncated.parquet',
    'truncated.npy',
    'objects.npy',
    'fortran.npy',
  ];
  const carded: [string, string | number][] = [
    ['good.h5', 'cutouts'],
    ['tiled.fits', 'SCI'],
    ['good.parquet', 'ragged'],
    ['good.parquet', 'with_nulls'],
    ['good.npy', 0],
  ];
  const actual: string[] = [];
  for (const file of inspected) actual.push(await lineFor(['inspect', join(dir, file)]));
  for (const [file, tensor] of carded) {
    const card = join(dir, 'card.json');
    writeFileSync(
      card,
      JSON.stringify({
        inputs: { image: { tensor, dtype: 'float32' }, magnitude: { tensor, dtype: 'float32' } },
        outputs: { redshift: { task: 'regression' } },
      }),
    );
    actual.push(await lineFor(['predict', join(dir, file), '--model', MODEL, '--card', card, '--out', join(dir, 'out.csv')]));
  }
  const documented = documentedLines();
  expect(documented).toHaveLength(actual.length);
  for (const [i, line] of actual.entries()) expect(line).toMatch(asPattern(documented[i]));
});

test('the check can fail: a line the tool does not print is not matched', () => {
  const [first] = documentedLines();
  expect('<dir>/notes.h5: not a file CAI reads').not.toMatch(asPattern(first));
  expect(first.replace('notes.h5', 'other.h5')).not.toMatch(asPattern(first));
});
