import { open, type FileHandle } from 'node:fs/promises';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { ArchiveError } from '../errors';

/**
 * Random access to the bytes of one file, wherever it lives. Readers ask for ranges so that a
 * multi-GB archive never has to be held whole. `read` fills `into` when given (so callers can
 * reuse buffers), else a fresh 8-byte aligned array; a source already in memory returns a view
 * instead. Either way typed-array views over tensor data need no further copy.
 */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

function checkRange(source: ByteSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ArchiveError(`${source.name}: invalid byte range ${offset}+${length}`);
  }
  if (offset + length > source.size) {
    throw new ArchiveError(`${source.name}: truncated: needs bytes up to ${offset + length} but the file holds ${source.size}`);
  }
}

/** Bytes already in memory; reads are views, never copies. */
export function bufferSource(bytes: Uint8Array, name = 'buffer'): ByteSource {
  const source: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(source, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
  return source;
}

/** A fresh Uint8Array over its own ArrayBuffer: offset 0, so aligned for every typed array. */
export function allocateAligned(length: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(length));
}

function target(length: number, into: Uint8Array | undefined): Uint8Array {
  if (!into) return allocateAligned(length);
  if (into.byteLength < length) throw new RangeError(`read of ${length} bytes into a buffer of ${into.byteLength}`);
  return into.subarray(0, length);
}

export async function fileSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ArchiveError(code === 'ENOENT' ? `no such file: ${path}` : `cannot open ${path}: ${code}`, {
      cause: error,
    });
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw new ArchiveError(`not a regular file: ${path}`);
  }
  const source: ByteSource = {
    name: path,
    size: stat.size,
    async read(offset, length, into) {
      checkRange(source, offset, length);
      const out = target(length, into);
      let done = 0;
      while (done < length) {
        // A single fs read is capped near 2 GiB, so large ranges are read in pieces.
        const chunk = Math.min(length - done, 1 << 30);
        const { bytesRead } = await handle.read(out, done, chunk, offset + done);
        if (bytesRead === 0) throw new ArchiveError(`${path}: file shrank while being read`);
        done += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  };
  return source;
}

/**
 * What an S3 error means for a partition: missing (404), not ours to read (403) or changed under us
 * (416) is the partition's own fault, an ArchiveError recorded and skipped. Anything else (throttling,
 * a 5xx, a reset) is passed on as it is, after the client's retries: the rank fails and the state
 * machine runs it again, rather than a passing outage failing partitions for good.
 */
function partitionError(error: unknown, name: string): unknown {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status === 404) return new ArchiveError(`no such object: ${name}`, { cause: error });
  if (status === 403) return new ArchiveError(`access denied to ${name} (the inference function's role cannot read it)`, { cause: error });
  if (status === 416) return new ArchiveError(`${name} changed while being read`, { cause: error });
  return error;
}

/** Ranged GETs of this size run in parallel; S3 serves each connection at a bounded rate. */
export const S3_PART_BYTES = 8 * 1024 * 1024;
export const S3_PARALLEL_PARTS = 8;

/**
 * An S3 object read by byte ranges. Large ranges are split into parts fetched in parallel straight
 * into one preallocated array, so a partition is held once, whatever its size.
 */
export async function s3Source(client: S3Client, bucket: string, key: string): Promise<ByteSource> {
  const name = `s3://${bucket}/${key}`;
  let size: number;
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    size = head.ContentLength ?? 0;
  } catch (error) {
    throw partitionError(error, name);
  }
  const limit = pLimit(S3_PARALLEL_PARTS);

  async function fetchInto(out: Uint8Array, at: number, offset: number, length: number): Promise<void> {
    const response = await client
      .send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}` }))
      .catch((error: unknown) => {
        throw partitionError(error, name);
      });
    if (!response.Body) throw new ArchiveError(`${name}: empty response for range ${offset}+${length}`);
    let filled = 0;
    for await (const chunk of response.Body as AsyncIterable<Uint8Array>) {
      if (filled + chunk.byteLength > length) throw new ArchiveError(`${name}: range ${offset}+${length} overran`);
      out.set(chunk, at + filled);
      filled += chunk.byteLength;
    }
    if (filled !== length) throw new ArchiveError(`${name}: truncated read at ${offset}: ${filled} of ${length} bytes`);
  }

  const source: ByteSource = {
    name,
    size,
    async read(offset, length, into) {
      checkRange(source, offset, length);
      const out = target(length, into);
      if (length === 0) return out;
      const parts: Promise<void>[] = [];
      for (let at = 0; at < length; at += S3_PART_BYTES) {
        const partLength = Math.min(S3_PART_BYTES, length - at);
        parts.push(limit(() => fetchInto(out, at, offset + at, partLength)));
      }
      await Promise.all(parts);
      return out;
    },
    async close() {},
  };
  return source;
}

/** Bytes of a file's start and of its end kept once read: where every format keeps what says how to read it (a zip's end record is searched for in its last 64 KiB + 22 bytes). */
export const CACHED_END_BYTES = 128 * 1024;

/**
 * A source whose first and last CACHED_END_BYTES are fetched once, each with one read, the first time
 * a read falls within them. Choosing a reader by its magic, then that reader opening the file, read
 * the same few places (a zip's directory, a Parquet footer, an HDF5 superblock, a FITS header): on S3
 * each would be a GET of its own. Reads within a cached end are views of it; others go to the source.
 */
export function withCachedEnds(source: ByteSource): ByteSource {
  const window = Math.min(CACHED_END_BYTES, source.size);
  const tailStart = source.size - window;
  let head: Promise<Uint8Array> | undefined;
  let tail: Promise<Uint8Array> | undefined;
  const served = async (cached: Promise<Uint8Array>, at: number, length: number, into?: Uint8Array) => {
    const bytes = (await cached).subarray(at, at + length);
    if (!into) return bytes;
    const out = target(length, into);
    out.set(bytes);
    return out;
  };
  const cachedSource: ByteSource = {
    name: source.name,
    size: source.size,
    async read(offset, length, into) {
      checkRange(cachedSource, offset, length);
      if (offset + length <= window) {
        head ??= source.read(0, window);
        return served(head, offset, length, into);
      }
      if (offset >= tailStart) {
        tail ??= source.read(tailStart, window);
        return served(tail, offset - tailStart, length, into);
      }
      return source.read(offset, length, into);
    },
    close: () => source.close(),
  };
  return cachedSource;
}
