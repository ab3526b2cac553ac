import type { ByteSource } from '../../functions/commons/tensors/byte-source';

/** A source that records each read its readers ask of it (offset, length) and the bytes they come to. */
export function countingSource(inner: ByteSource): ByteSource & { bytesRead: number; reads: [number, number][] } {
  const counting = {
    name: inner.name,
    size: inner.size,
    bytesRead: 0,
    reads: [] as [number, number][],
    read(offset: number, length: number, into?: Uint8Array) {
      counting.bytesRead += length;
      counting.reads.push([offset, length]);
      return inner.read(offset, length, into);
    },
    close: () => inner.close(),
  };
  return counting;
}
