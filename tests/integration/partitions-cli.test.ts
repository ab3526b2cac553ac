import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSource } from '../../functions/commons/tensors/byte-source';
import { openTorchPartition } from '../../toolkit/datasets/galaxy-partition';
import type { PartitionManifest } from '../../toolkit/datasets/partition-writer';
import { expectSameArray } from '../helpers/arrays';
import { cai } from '../helpers/cli';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

const work = tempFolder('cai-cli-');
const at = (...p: string[]) => join(work, ...p);
const manifestOf = (dir: string): PartitionManifest => JSON.parse(readFileSync(join(dir, 'partitions.json'), 'utf8'));

async function readAll(file: string) {
  const reader = await openTorchPartition(await fileSource(file));
  const rows = await reader.readRows(0, reader.samples);
  await reader.close();
  return rows;
}

/** All partitions of a folder, concatenated in manifest order. */
async function readDataset(dir: string) {
  const parts = await Promise.all(manifestOf(dir).partitions.map((p) => readAll(join(dir, p.key))));
  const cat = (pick: (r: (typeof parts)[number]) => Float32Array) => {
    const out = new Float32Array(parts.reduce((n, r) => n + pick(r).length, 0));
    let o = 0;
    for (const r of parts) {
      out.set(pick(r), o);
      o += pick(r).length;
    }
    return out;
  };
  return { images: cat((r) => r.images), magnitudes: cat((r) => r.magnitudes), redshift: cat((r) => r.redshift!) };
}

describe('synth → split → inspect', () => {
  beforeAll(async () => {
    expect((await cai(['synth', '--samples', '700', '--size', '1GB', '--out', at('whole'), '--seed', '5'])).status).toBe(0);
    expect((await cai(['synth', '--samples', '700', '--size', '3MB', '--out', at('small'), '--seed', '5'])).status).toBe(0);
  });

  test('synth writes size-bounded partitions and a manifest that matches them', async () => {
    const manifest = manifestOf(at('small'));
    expect(manifest.samples).toBe(700);
    expect(manifest.partitions.map((p) => p.key)).toEqual(['1.pt', '2.pt', '3.pt', '4.pt', '5.pt']);
    expect(manifest.partitions.reduce((n, p) => n + p.samples, 0)).toBe(700);
    for (const p of manifest.partitions) {
      expect(statSync(at('small', p.key)).size).toBe(p.bytes);
      expect(p.bytes).toBeLessThanOrEqual(3 * 2 ** 20);
    }
    // Full partitions are as full as the size allows: one more object would not fit.
    expect(manifest.partitions[0].bytes + BYTES_PER_GALAXY).toBeGreaterThan(3 * 2 ** 20);
  });

  test('the same seed gives the same galaxies whatever the partition size', async () => {
    const whole = await readDataset(at('whole'));
    const small = await readDataset(at('small'));
    expectSameArray(small.images, whole.images);
    expectSameArray(small.redshift, whole.redshift);
    const other = await cai(['synth', '--samples', '10', '--out', at('seed6'), '--seed', '6']);
    expect(other.status).toBe(0);
    expect((await readDataset(at('seed6'))).redshift).not.toEqual(whole.redshift.subarray(0, 10));
  });

  test('synthetic galaxies get fainter, smaller and redder with redshift', async () => {
    const { magnitudes, redshift, images } = await readDataset(at('whole'));
    const n = redshift.length;
    const corr = (f: (i: number) => number) => {
      let sx = 0,
        sy = 0,
        sxx = 0,
        syy = 0,
        sxy = 0;
      for (let i = 0; i < n; i++) {
        const x = redshift[i];
        const y = f(i);
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
      }
      return (n * sxy - sx * sy) / Math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
    };
    expect(corr((i) => magnitudes[i * 5 + 2])).toBeGreaterThan(0.5); // r magnitude
    expect(corr((i) => magnitudes[i * 5 + 1] - magnitudes[i * 5 + 2])).toBeGreaterThan(0.3); // g − r colour
    // Peak r-band pixel over total r flux: compact (distant) galaxies concentrate light.
    const concentration = (i: number) => {
      const band = images.subarray(i * 5120 + 2 * 1024, i * 5120 + 3 * 1024);
      let peak = 0,
        sum = 0;
      for (const v of band) {
        peak = Math.max(peak, v);
        sum += v;
      }
      return peak / sum;
    };
    expect(corr(concentration)).toBeGreaterThan(0.2);
    const mean = redshift.reduce((a, b) => a + b, 0) / n;
    expect(mean).toBeGreaterThan(0.08);
    expect(mean).toBeLessThan(0.25);
  });

  test('split keeps every object, in order, under the size bound', async () => {
    const run = await cai(['split', at('whole', '1.pt'), '--size', '2MB', '--out', at('split')]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/wrote 7 partitions \(700 objects/);
    expect(run.stderr).toMatch(/split: 7\/7 partitions/); // progress
    const manifest = manifestOf(at('split'));
    expect(manifest.partitions.every((p) => p.bytes <= 2 * 2 ** 20)).toBe(true);
    const original = await readAll(at('whole', '1.pt'));
    const split = await readDataset(at('split'));
    expectSameArray(split.images, original.images);
    expectSameArray(split.magnitudes, original.magnitudes);
    expectSameArray(split.redshift, original.redshift);
  });

  test('split partitions load in real PyTorch with weights_only=True', async () => {
    const report = JSON.parse(runPython(pythonScript('check_partitions.py'), [at('split'), at('whole', '1.pt')]));
    expect(report).toMatchObject({ partitions: 7, samples: 700, dtypes: ['torch.float32', 'torch.float32', 'torch.float32'] });
    expect(report.max_abs_diff).toEqual([0, 0, 0]);
  });

  test('without --layout and --oddities, synth writes the very bytes it wrote before they existed', () => {
    // sha256 of `synth --samples 700 --size 3MB --seed 5` before dict partitions and oddities were added.
    const before: Record<string, string> = {
      '1.pt': 'b30964a7b34cd1541727e2ed987c805224b7370a5f3ea34b9eabb5ab311b5553',
      '2.pt': '2f29cb79e0beef6823a55e3ecaf3a3cfc4c024e28de4b26a607bd2bb05a36b65',
      '3.pt': 'fd46b4801640d896f1de907bd87e75799cc23a46f77aa2dd07370714bee528d7',
      '4.pt': '302141a662104fbb48831a23c76465c9546064ad72077b04f46e4afa9d2f6a94',
      '5.pt': '5af1fd4892f088f0ff2db5150a3ad57e7c399355901c99d5fe65e3b0eb9e072a',
      'partitions.json': '499bee2f11966b483c378a2ebc9ff6f5aa94f2239e5d636b67cd96191163e3d7',
    };
    const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
    for (const [name, hash] of Object.entries(before)) expect([name, sha256(at('small', name))]).toEqual([name, hash]);
  });

  test('dict partitions, with and without oddities, load in real PyTorch with weights_only=True', async () => {
    for (const [name, extra] of [
      ['dict', []],
      ['odd', ['--oddities', '0.05']],
    ] as const) {
      const run = await cai(['synth', '--samples', '700', '--size', '6MB', '--out', at(name), '--seed', '5', '--layout', 'dict', ...extra]);
      expect(run.status).toBe(0);
    }
    const check = (dir: string) => JSON.parse(runPython(pythonScript('check_dict_partitions.py'), [at(dir), at('whole')]));
    const plain = check('dict');
    expect(plain).toMatchObject({
      keys: ['images', 'magnitudes', 'redshift', 'morphology'],
      dtypes: { images: 'torch.float32', magnitudes: 'torch.float32', redshift: 'torch.float32', morphology: 'torch.int64' },
      shapes: { images: [700, 5, 32, 32], magnitudes: [700, 5], redshift: [700], morphology: [700] },
      max_abs_diff: { images: 0, magnitudes: 0, redshift: 0 },
    });
    expect(plain.morphology_counts.every((n: number) => n > 150)).toBe(true);
    const odd = check('odd');
    expect(odd.keys).toEqual(['images', 'magnitudes', 'redshift', 'morphology', 'anomaly']);
    expect(odd.dtypes.anomaly).toBe('torch.uint8');
    expect(odd.anomalies).toBeGreaterThan(15);
    expect(odd.anomalies).toBeLessThan(60);
    // Oddities change cutouts only, and visibly.
    expect(odd.max_abs_diff).toMatchObject({ magnitudes: 0, redshift: 0 });
    expect(odd.max_abs_diff.images).toBeGreaterThan(2);
    expect(odd.morphology_counts).toEqual(plain.morphology_counts);
  });

  test('inspect --json ends with one JSON object describing the tensors', async () => {
    const run = await cai(['inspect', at('split', '2.pt'), '--json']);
    expect(run.status).toBe(0);
    const report = run.json<{ samples: number; tensors: { shape: number[]; dtype: string; min: number; max: number; mean: number }[] }>();
    const rows = await readAll(at('split', '2.pt'));
    expect(report.samples).toBe(rows.count);
    expect(report.tensors.map((t) => [t.dtype, t.shape])).toEqual([
      ['float32', [rows.count, 5, 32, 32]],
      ['float32', [rows.count, 5]],
      ['float32', [rows.count]],
    ]);
    const z = rows.redshift!;
    expect(report.tensors[2].min).toBe(Math.min(...z));
    expect(report.tensors[2].max).toBe(Math.max(...z));
    expect(report.tensors[2].mean).toBeCloseTo(z.reduce((a, b) => a + b, 0) / z.length, 10);
    const text = await cai(['inspect', at('split', '2.pt')]);
    expect(text.stdout).toMatch(/float32\[\d+, 5, 32, 32\]\s+min/);
  });
});

describe('bad input gets one line on stderr and a non-zero exit', () => {
  const oneLine = (stderr: string) => {
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
    return lines[0];
  };

  beforeAll(() => runPython(pythonScript('make_archives.py'), [at('hostile')]));

  test.each([
    [
      'not a data file',
      () => at('hostile', 'expected.json'),
      /^cai: .*expected\.json: not a file CAI reads: its first bytes are those of none of \.pt/,
    ],
    ['a refused global', () => at('hostile', 'os_system.pt'), /^cai: refused pickle global posix\.system/],
    ['an absurd shape', () => at('hostile', 'absurd_shape.pt'), /^cai: tensor declares shape \[1000000000000,5\]/],
    ['a missing file', () => at('nope.pt'), /^cai: no such file: .*nope\.pt$/],
    ['the legacy format', () => at('hostile', 'legacy.pt'), /^cai: .*legacy \(pre-1\.6\)/],
  ])('inspect of %s', async (_what, file, message) => {
    const run = await cai(['inspect', file(), '--json']);
    expect(run.status).toBe(1);
    expect(oneLine(run.stderr)).toMatch(message);
    expect(run.stdout).toBe('');
  });

  test('a truncated partition', async () => {
    const bytes = readFileSync(at('small', '5.pt'));
    writeFileSync(at('cut.pt'), bytes.subarray(0, bytes.length - 100));
    const run = await cai(['inspect', at('cut.pt')]);
    expect(run.status).toBe(1);
    expect(oneLine(run.stderr)).toMatch(/cut\.pt: truncated/);
  });

  test('split of an archive that is not a dataset names the layout it expected', async () => {
    const run = await cai(['split', at('hostile', 'dtypes.pt'), '--size', '1MB', '--out', at('nope')]);
    expect(run.status).toBe(1);
    expect(oneLine(run.stderr)).toMatch(
      /expected TensorDataset\(images float\[N,5,32,32\].*, or a dict of those keys; images: no tensor "images": it holds a dict of float32, float64/,
    );
  });

  test('usage errors exit 2', async () => {
    expect(oneLine((await cai(['split', at('small', '1.pt'), '--size', 'big', '--out', at('x')])).stderr)).toMatch(
      /--size "big" is not a size/,
    );
    const tiny = await cai(['split', at('small', '1.pt'), '--size', '10KB', '--out', at('x')]);
    expect(tiny.status).toBe(2);
    expect(oneLine(tiny.stderr)).toMatch(/cannot hold one object/);
    for (const [args, message] of [
      [['--oddities', '0.1'], /--oddities needs --layout dict/],
      [['--oddities', 'lots', '--layout', 'dict'], /--oddities "lots" is not a fraction in 0\.\.1/],
      [['--oddities', '1.5', '--layout', 'dict'], /--oddities "1\.5" is not a fraction/],
      [['--layout', 'tuple'], /--layout "tuple" is not one of dataset, dict/],
    ] as const) {
      const run = await cai(['synth', '--samples', '3', '--out', at('x'), ...args]);
      expect(run.status).toBe(2);
      expect(oneLine(run.stderr)).toMatch(message);
    }
    const samples = await cai(['synth', '--samples', '-3', '--out', at('x')]);
    expect(samples.status).toBe(2);
    expect(readdirSync(work)).not.toContain('x');
  });
});
