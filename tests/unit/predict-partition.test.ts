import { parseCard } from '../../functions/commons/model/card';
import { runPartition, type Feeds, type OnnxModel } from '../../functions/commons/model/session';
import type { TensorPartition } from '../../functions/commons/partitions/partition';
import { BANDS, IMAGE_ELEMENTS } from '../../functions/commons/partitions/galaxy';

const CARD = parseCard(
  JSON.stringify({
    inputs: { image: { tensor: 0, dtype: 'float32' }, magnitude: { tensor: 1, dtype: 'float32' } },
    outputs: { redshift: { task: 'regression', label: 2 } },
  }),
  'test card',
);

/** A partition held in memory: object i's pixels and magnitudes are all i, its label i/1000. */
function memoryPartition(samples: number, nanRows: number[] = []): TensorPartition {
  return {
    name: 'memory',
    format: 'torch',
    firstRow: 0,
    bytes: samples * IMAGE_ELEMENTS * 4,
    samples,
    feeds: {
      image: { rowShape: [5, 32, 32], stored: 'float32' },
      magnitude: { rowShape: [BANDS], stored: 'float32' },
      'label:redshift': { rowShape: [], stored: 'float32' },
    },
    async readRows(start, end) {
      const count = end - start;
      const image = new Float32Array(count * IMAGE_ELEMENTS);
      const magnitude = new Float32Array(count * BANDS);
      for (let r = 0; r < count; r++) {
        image.fill(nanRows.includes(start + r) ? NaN : start + r, r * IMAGE_ELEMENTS, (r + 1) * IMAGE_ELEMENTS);
        magnitude.fill(start + r, r * BANDS, (r + 1) * BANDS);
      }
      const label = Float32Array.from({ length: count }, (_, r) => (start + r) / 1000);
      return { start, count, tensors: { image, magnitude, 'label:redshift': label } };
    },
    close: async () => {},
  };
}

/**
 * A model of `concurrency` workers whose batches finish in the reverse of the order they were sent
 * (each group sent before the caller waits is resolved last-first), and that predicts each object's
 * own value, read from the inputs as run is called, as the contract says: the caller's buffers are
 * reused as soon as it returns.
 */
function reversingModel(concurrency: number): OnnxModel & { maxInFlight: number } {
  let held: { out: Float32Array; resolve: (out: Record<string, Float32Array>) => void }[] = [];
  const model = {
    path: 'reversing',
    concurrency,
    maxInFlight: 0,
    run(feeds: Feeds, count: number) {
      const magnitudes = feeds.magnitude.data;
      const out = Float32Array.from({ length: count }, (_, r) => Number(magnitudes[r * BANDS]));
      return new Promise<Record<string, Float32Array>>((resolve) => {
        held.push({ out, resolve });
        model.maxInFlight = Math.max(model.maxInFlight, held.length);
        if (held.length === 1)
          setImmediate(() => {
            const group = held.reverse();
            held = [];
            for (const batch of group) batch.resolve({ redshift: batch.out });
          });
      });
    },
    release: async () => {},
  };
  return model;
}

test('batches that finish out of order land at their own rows, across chunk boundaries, with at most twice the concurrency in flight', async () => {
  const samples = 2000; // more than one 16 MiB chunk of rows
  const model = reversingModel(3);
  const seen: number[] = [];
  const result = await runPartition(model, CARD, memoryPartition(samples, [5, 1500]), 16, (done) => seen.push(done));
  const expected = Float32Array.from({ length: samples }, (_, i) => (i === 5 || i === 1500 ? NaN : i));
  expect(result.outputs.redshift.width).toBe(1);
  expect(Array.from(result.outputs.redshift.values)).toEqual(Array.from(expected));
  expect(result.nonFinite).toBe(2); // the objects with a NaN pixel
  expect(result.batches).toBe(Math.ceil(samples / 16));
  expect(model.maxInFlight).toBe(6);
  expect(seen.at(-1)).toBe(samples);
  expect(result.labels.redshift[1999]).toBeCloseTo(1.999, 6);
});

test('a batch that fails fails the partition, without waiting for the rest or leaving a rejection unobserved', async () => {
  let calls = 0;
  const failing: OnnxModel = {
    path: 'failing',
    concurrency: 2,
    run: (_feeds, count) =>
      ++calls === 3
        ? Promise.reject(new Error('worker gone'))
        : new Promise((resolve) => setTimeout(() => resolve({ redshift: new Float32Array(count) }), 5)),
    release: async () => {},
  };
  await expect(runPartition(failing, CARD, memoryPartition(200), 16)).rejects.toThrow('worker gone');
});

test('a model that leaves out an output the card names fails the partition, naming it', async () => {
  const silent: OnnxModel = { path: 'silent', concurrency: 1, run: async () => ({}), release: async () => {} };
  await expect(runPartition(silent, CARD, memoryPartition(20), 16)).rejects.toThrow('silent returned no output redshift');
});
