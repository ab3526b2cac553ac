import { PartitionLayoutError, UsageError } from '../../functions/commons/errors';
import { BANDS, IMAGE_ELEMENTS } from '../../functions/commons/partitions/galaxy';
import { openTorchPartition } from '../../toolkit/datasets/galaxy-partition';
import {
  MORPHOLOGIES,
  ODDITY_KINDS,
  drawGalaxy,
  morphologyOf,
  oddityOf,
  synthesizeDataset,
  synthesizeInto,
  type OddityKind,
} from '../../toolkit/datasets/synth';
import { rowsPerPartition, type PartitionManifest } from '../../toolkit/datasets/partition-writer';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { TorchDatasetArchive } from '../../toolkit/datasets/torch-writer';
import { expectSameArray } from '../helpers/arrays';

/** An in-memory sink: what synth wrote, by name. */
function memorySink() {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    sink: { describe: (name: string) => name, put: async (name: string, bytes: Uint8Array) => void files.set(name, bytes.slice()) },
  };
}

function galaxies(count: number, seed: number, oddities = 0) {
  const tensors = {
    images: new Float32Array(count * IMAGE_ELEMENTS),
    magnitudes: new Float32Array(count * BANDS),
    redshift: new Float32Array(count),
    morphology: new BigInt64Array(count),
    anomaly: new Uint8Array(count),
  };
  synthesizeInto(tensors, 0, count, seed, oddities);
  return tensors;
}

describe('morphology classes', () => {
  test('are thirds of the galaxy type, and the same for the same (seed, index)', () => {
    expect([0, 0.3333, 1 / 3, 0.5, 0.6666, 2 / 3, 0.99].map(morphologyOf)).toEqual([0, 0, 1, 1, 1, 2, 2]);
    expect(MORPHOLOGIES).toEqual(['disk', 'lenticular', 'elliptical']);
    const image = new Float32Array(IMAGE_ELEMENTS);
    const counts = [0, 0, 0];
    for (let i = 0; i < 1500; i++) {
      const galaxy = drawGalaxy(9, i, image, 0);
      expect(galaxy.morphology).toBe(morphologyOf(galaxy.type));
      if (i < 100) expect(drawGalaxy(9, i, image, 0).morphology).toBe(galaxy.morphology);
      counts[galaxy.morphology]++;
    }
    // type is uniform: each class holds about a third (±5σ).
    for (const n of counts) expect(Math.abs(n - 500)).toBeLessThan(90);
  });

  test('are what the galaxies look like: ellipticals redder than disks at the same redshift', () => {
    const n = 1500;
    const t = galaxies(n, 11);
    const mean = (cls: number, f: (i: number) => number) => {
      let sum = 0;
      let count = 0;
      for (let i = 0; i < n; i++) {
        if (Number(t.morphology[i]) === cls && t.redshift[i] > 0.07 && t.redshift[i] < 0.15) {
          sum += f(i);
          count++;
        }
      }
      return sum / count;
    };
    const uMinusR = (i: number) => t.magnitudes[i * 5] - t.magnitudes[i * 5 + 2];
    // u − r grows by 1.25 over the type range: the class means are ≈ 0.8 apart.
    expect(mean(2, uMinusR) - mean(0, uMinusR)).toBeGreaterThan(0.6);
    // Control: redshift, which does not set the class, hardly differs between the classes.
    expect(Math.abs(mean(2, (i) => t.redshift[i]) - mean(0, (i) => t.redshift[i]))).toBeLessThan(0.01);
  });

  test('drawing them changes no galaxy: the random draws are the ones the images always had', () => {
    const plain = {
      images: new Float32Array(50 * IMAGE_ELEMENTS),
      magnitudes: new Float32Array(50 * BANDS),
      redshift: new Float32Array(50),
    };
    synthesizeInto(plain, 0, 50, 3);
    const labelled = galaxies(50, 3);
    expectSameArray(labelled.images, plain.images);
    expectSameArray(labelled.magnitudes, plain.magnitudes);
    expectSameArray(labelled.redshift, plain.redshift);
  });
});

describe('oddities', () => {
  const chosen = (seed: number, fraction: number, n = 20000) =>
    Array.from({ length: n }, (_, i) => oddityOf(seed, i, fraction)).flatMap((k, i) => (k ? [i] : []));

  test('are about the fraction asked for, of every kind, and none at 0', () => {
    for (const fraction of [0.005, 0.05, 0.3]) {
      const n = chosen(1, fraction).length;
      const sd = Math.sqrt(20000 * fraction * (1 - fraction));
      expect(Math.abs(n - 20000 * fraction)).toBeLessThan(5 * sd);
    }
    expect(chosen(1, 0)).toEqual([]);
    expect(chosen(1, 1)).toHaveLength(20000);
    const kinds = new Map<OddityKind, number>();
    for (let i = 0; i < 20000; i++) {
      const kind = oddityOf(1, i, 0.2);
      if (kind) kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    for (const kind of ODDITY_KINDS) expect(Math.abs(kinds.get(kind)! - 1000)).toBeLessThan(160);
  });

  test('are decided by (seed, index): the same twice, nested as the fraction grows, different for another seed', () => {
    const few = chosen(7, 0.01);
    expect(chosen(7, 0.01)).toEqual(few);
    const more = new Set(chosen(7, 0.05));
    expect(few.every((i) => more.has(i))).toBe(true);
    const other = new Set(chosen(8, 0.01));
    expect(few.filter((i) => other.has(i)).length).toBeLessThan(few.length / 5);
  });

  test('change only their own cutouts, visibly, and are labelled; magnitudes and other labels stay', () => {
    const n = 600;
    const clean = galaxies(n, 21);
    const odd = galaxies(n, 21, 0.1);
    expectSameArray(odd.magnitudes, clean.magnitudes);
    expectSameArray(odd.redshift, clean.redshift);
    expect(odd.morphology).toEqual(clean.morphology);
    expect(clean.anomaly.every((a) => a === 0)).toBe(true);
    const seen = new Set<OddityKind>();
    for (let i = 0; i < n; i++) {
      const kind = oddityOf(21, i, 0.1);
      expect(odd.anomaly[i]).toBe(kind ? 1 : 0);
      const a = odd.images.subarray(i * IMAGE_ELEMENTS, (i + 1) * IMAGE_ELEMENTS);
      const b = clean.images.subarray(i * IMAGE_ELEMENTS, (i + 1) * IMAGE_ELEMENTS);
      if (!kind) {
        expectSameArray(a, b);
        continue;
      }
      seen.add(kind);
      let largest = 0;
      let zeros = 0;
      for (let p = 0; p < a.length; p++) {
        largest = Math.max(largest, Math.abs(a[p] - b[p]));
        if (a[p] === 0) zeros++;
      }
      // Sky noise is at most 0.45 nanomaggies: every oddity but a dropout adds ≥ 2 nanomaggies somewhere.
      if (kind === 'dropout') expect(zeros).toBeGreaterThanOrEqual(8 * 32);
      else expect(largest).toBeGreaterThan(2);
    }
    expect([...seen].sort()).toEqual([...ODDITY_KINDS].sort());
  });
});

describe('dict partitions', () => {
  test('hold named tensors that the partition reader reads like the TensorDataset of the same galaxies', async () => {
    const dataset = memorySink();
    const dict = memorySink();
    const options = { samples: 300, maxBytes: 3 * 2 ** 20, seed: 4 };
    await synthesizeDataset({ ...options, sink: dataset.sink });
    const manifest = await synthesizeDataset({ ...options, layout: 'dict', oddities: 0.1, sink: dict.sink });
    expect(manifest).toMatchObject({ layout: 'dict', tensors: ['images', 'magnitudes', 'redshift', 'morphology', 'anomaly'] });
    const written: PartitionManifest = JSON.parse(new TextDecoder().decode(dict.files.get('partitions.json')));
    const perPartition = rowsPerPartition(options.maxBytes, true, { layout: 'dict', morphology: true, anomaly: true });
    expect(written.partitions.map((p) => p.samples)).toEqual([perPartition, 300 - perPartition]);
    expect(written.partitions.every((p) => p.bytes <= options.maxBytes && dict.files.get(p.key)!.length === p.bytes)).toBe(true);
    // Nine more bytes an object (int64 class, uint8 flag): one or two fewer objects fit than in a TensorDataset.
    expect(rowsPerPartition(options.maxBytes, true) - perPartition).toBeGreaterThanOrEqual(0);
    // The TensorDataset manifest has no layout keys: it is what it was before dict partitions existed.
    expect(Object.keys(JSON.parse(new TextDecoder().decode(dataset.files.get('partitions.json'))))).toEqual([
      'format',
      'samples',
      'labelled',
      'maxPartitionBytes',
      'partitions',
    ]);
    const clean = galaxies(300, 4, 0.1);
    for (const p of written.partitions) {
      const reader = await openTorchPartition(bufferSource(dict.files.get(p.key)!, p.key));
      expect(reader).toMatchObject({ samples: p.samples, labelled: true });
      const rows = await reader.readRows(0, p.samples);
      const slice = (a: Float32Array, width: number) => a.subarray(p.firstRow * width, (p.firstRow + p.samples) * width);
      expectSameArray(rows.images, slice(clean.images, IMAGE_ELEMENTS));
      expectSameArray(rows.magnitudes, slice(clean.magnitudes, BANDS));
      expectSameArray(rows.redshift, slice(clean.redshift, 1));
    }
  });

  test('a dict without images is refused, as is a mix of keyed and positional tensors or one without its labels', () => {
    const archive = new TorchDatasetArchive([
      { key: 'pixels', dtype: 'float32', shape: [2, 5, 32, 32] },
      { key: 'magnitudes', dtype: 'float32', shape: [2, 5] },
      { key: 'morphology', dtype: 'int64', shape: [2] },
    ]);
    return Promise.all([
      expect(openTorchPartition(bufferSource(archive.finish(), 'p.pt'))).rejects.toThrow(PartitionLayoutError),
      expect(
        () =>
          new TorchDatasetArchive([
            { key: 'images', dtype: 'float32', shape: [1] },
            { dtype: 'float32', shape: [1] },
          ]),
      ).toThrow(/one distinct key per tensor/),
      expect(() => rowsPerPartition(2 ** 20, true, { anomaly: true })).toThrow(UsageError),
    ]);
  });
});
