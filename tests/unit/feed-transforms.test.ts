import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { openPartition, type TensorFeed } from '../../functions/commons/partitions/partition';
import type { DType, TensorData } from '../../functions/commons/tensors/dtype';
import { writeNpz } from '../../toolkit/datasets/npz-writer';

/**
 * A card's transforms as the model sees them: object r's pixel (y, x) in channel c, stored
 * channel-last as the value v = 100·r + 10·(y·W + x) + c, arrives channel-first as v × scale + offset,
 * whatever the stored dtype, and over a row range as over the whole file.
 */
const ROWS = 4;
const [H, W, C] = [2, 3, 4];
const stored = (r: number, y: number, x: number, c: number) => 100 * r + 10 * (y * W + x) + c;

function npzOf(dtype: DType, make: (values: number[]) => TensorData): Uint8Array {
  const values: number[] = [];
  for (let r = 0; r < ROWS; r++)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) values.push(stored(r, y, x, c));
  return writeNpz({ images: { dtype, shape: [ROWS, H, W, C], data: make(values) } });
}

const HALF = (v: number) => {
  // v < 2048 is exact in float16: its bits are built from the exponent and mantissa.
  if (v === 0) return 0;
  const e = Math.floor(Math.log2(v));
  return ((e + 15) << 10) | Math.round((v / 2 ** e - 1) * 1024);
};

test.each([
  ['int16', (v: number[]) => Int16Array.from(v)],
  ['uint16', (v: number[]) => Uint16Array.from(v)],
  ['float16', (v: number[]) => Uint16Array.from(v, HALF)],
  ['int64', (v: number[]) => BigInt64Array.from(v, BigInt)],
  ['float64', (v: number[]) => Float64Array.from(v)],
] as [DType, (v: number[]) => TensorData][])('%s channel-last, scaled and offset, over the file and a range of it', async (dtype, make) => {
  const feed: TensorFeed = { name: 'image', tensor: 'images', dtype: 'float32', transform: { channelsLast: true, scale: 0.5, offset: -1 } };
  for (const rows of [undefined, { start: 1, end: 3 }]) {
    const partition = await openPartition(bufferSource(npzOf(dtype, make), 'images.npz'), [feed], rows);
    expect(partition.feeds.image.rowShape).toEqual([C, H, W]);
    const first = rows?.start ?? 0;
    const got = (await partition.readRows(0, partition.samples)).tensors.image as Float32Array;
    expect(got).toHaveLength(partition.samples * H * W * C);
    let i = 0;
    for (let r = 0; r < partition.samples; r++)
      for (let c = 0; c < C; c++)
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) expect(got[i++]).toBe(stored(first + r, y, x, c) * 0.5 - 1);
  }
});

test('without a transform, the values arrive as stored; channelsLast on a 1-D object is refused in one line', async () => {
  const plain = await openPartition(
    bufferSource(
      npzOf('int16', (v) => Int16Array.from(v)),
      'images.npz',
    ),
    [{ name: 'image', tensor: 'images', dtype: 'float32' }],
  );
  expect(plain.feeds.image.rowShape).toEqual([H, W, C]);
  expect(Array.from(((await plain.readRows(1, 2)).tensors.image as Float32Array).slice(0, 3))).toEqual([100, 101, 102]);
  const flat = writeNpz({ z: { dtype: 'float32', shape: [3], data: Float32Array.of(1, 2, 3) } });
  await expect(
    openPartition(bufferSource(flat, 'z.npz'), [{ name: 'z', tensor: 'z', dtype: 'float32', transform: { channelsLast: true } }]),
  ).rejects.toThrow('z.npz: z: z float32[3] has no channel axis to move (channelsLast wants [N, ..., C])');
});
