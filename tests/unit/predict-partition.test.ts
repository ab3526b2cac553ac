import { predictPartition, type RedshiftModel } from '../../functions/commons/model/session';
import { BANDS, IMAGE_ELEMENTS, type PartitionReader } from '../../functions/commons/partitions/reader';

/** A partition held in memory: object i's pixels and magnitudes are all i, its label i/1000. */
function memoryReader(samples: number, nanRows: number[] = []): PartitionReader {
  return {
    name: 'memory',
    bytes: samples * IMAGE_ELEMENTS * 4,
    samples,
    labelled: true,
    async readRows(start, end, into) {
      const count = end - start;
      const images = into
        ? new Float32Array(into.buffer, into.byteOffset, count * IMAGE_ELEMENTS)
        : new Float32Array(count * IMAGE_ELEMENTS);
      const magnitudes = new Float32Array(count * BANDS);
      for (let r = 0; r < count; r++) {
        images.fill(nanRows.includes(start + r) ? NaN : start + r, r * IMAGE_ELEMENTS, (r + 1) * IMAGE_ELEMENTS);
        magnitudes.fill(start + r, r * BANDS, (r + 1) * BANDS);
      }
      return { start, count, images, magnitudes, redshift: Float32Array.from({ length: count }, (_, r) => (start + r) / 1000) };
    },
    close: async () => {},
  };
}

/**
 * A model of `concurrency` workers whose batches finish in the reverse of the order they were sent
 * (each group sent before the caller waits is resolved last-first), and that predicts each object's
 * own value, read from the inputs as predict is called, as the contract says: the caller's buffers
 * are reused as soon as it returns.
 */
function reversingModel(concurrency: number): RedshiftModel & { maxInFlight: number } {
  let held: { out: Float32Array; resolve: (out: Float32Array) => void }[] = [];
  const model = {
    path: 'reversing',
    concurrency,
    maxInFlight: 0,
    predict(_images: Float32Array, magnitudes: Float32Array, count: number) {
      const out = Float32Array.from({ length: count }, (_, r) => magnitudes[r * BANDS]);
      return new Promise<Float32Array>((resolve) => {
        held.push({ out, resolve });
        model.maxInFlight = Math.max(model.maxInFlight, held.length);
        if (held.length === 1)
          setImmediate(() => {
            const group = held.reverse();
            held = [];
            for (const batch of group) batch.resolve(batch.out);
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
  const result = await predictPartition(model, memoryReader(samples, [5, 1500]), 16, (done) => seen.push(done));
  const expected = Float32Array.from({ length: samples }, (_, i) => (i === 5 || i === 1500 ? NaN : i));
  expect(Array.from(result.predictions)).toEqual(Array.from(expected));
  expect(result.nonFinite).toBe(2); // the objects with a NaN pixel
  expect(result.batches).toBe(Math.ceil(samples / 16));
  expect(model.maxInFlight).toBe(6);
  expect(seen.at(-1)).toBe(samples);
  expect(result.redshift![1999]).toBeCloseTo(1.999, 6);
});

test('a batch that fails fails the partition, without waiting for the rest or leaving a rejection unobserved', async () => {
  let calls = 0;
  const failing: RedshiftModel = {
    path: 'failing',
    concurrency: 2,
    predict: (_images, _magnitudes, count) =>
      ++calls === 3 ? Promise.reject(new Error('worker gone')) : new Promise((r) => setTimeout(() => r(new Float32Array(count)), 5)),
    release: async () => {},
  };
  await expect(predictPartition(failing, memoryReader(200), 16)).rejects.toThrow('worker gone');
});
