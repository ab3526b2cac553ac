type Numeric = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

/**
 * Bitwise equality of two typed arrays, fast enough for millions of elements (jest's toEqual
 * walks them one by one); a mismatch names the first differing index and values.
 */
export function expectSameArray(actual: Numeric | undefined, expected: Numeric | undefined): void {
  expect(actual).toBeDefined();
  expect(expected).toBeDefined();
  const a = Buffer.from(actual!.buffer, actual!.byteOffset, actual!.byteLength);
  const b = Buffer.from(expected!.buffer, expected!.byteOffset, expected!.byteLength);
  if (actual!.length === expected!.length && a.equals(b)) return;
  let i = 0;
  while (i < Math.min(actual!.length, expected!.length) && Object.is(actual![i], expected![i])) i++;
  throw new Error(
    `arrays differ: lengths ${actual!.length} and ${expected!.length}, first difference at ${i}: ${actual![i]} vs ${expected![i]}`,
  );
}
