import { crc32, createInflateRaw, type InflateRaw } from 'node:zlib';
import type { ByteSource } from '../tensors/byte-source';
import type { ZipEntry } from '../tensors/zip-reader';
import { ArchiveError } from '../errors';

/** Compressed bytes fetched from the source at once: few ranged reads, even from S3. */
const FETCH_BYTES = 1024 * 1024;
/**
 * Compressed bytes given to zlib at once. Deflate expands at most about 1032:1, so one step makes at
 * most ~16 MiB of output, however hostile the stream; a stream that outgrows its declared size is
 * stopped at the first chunk past it.
 */
const STEP_BYTES = 16 * 1024;
const OUTPUT_CHUNK_BYTES = 64 * 1024;
/** Deflate's largest expansion (258 bytes from about 2 bits), with slack for a tiny stream. */
export const MAX_DEFLATE_RATIO = 1032;

/**
 * A deflated zip entry read front to back: `skip` and `read` move a cursor through its uncompressed
 * bytes, inflating only as far as asked. Nothing behind the cursor is kept, so memory is what the
 * caller asks for plus one step's output; going back means starting again from the entry's start.
 */
export class DeflatedEntryReader {
  private readonly inflater: InflateRaw;
  private readonly queue: Buffer[] = [];
  private queueHead = 0;
  private queued = 0;
  /** Uncompressed bytes handed out or skipped. */
  position = 0;
  private produced = 0;
  private crc = 0;
  private fed = 0;
  private fetched: Uint8Array = new Uint8Array(0);
  private fetchedAt = 0;
  private ended = false;
  private failure?: ArchiveError;

  constructor(
    private readonly source: ByteSource,
    private readonly entry: ZipEntry,
    private readonly dataOffset: number,
    private readonly label: string,
  ) {
    this.inflater = createInflateRaw({ chunkSize: OUTPUT_CHUNK_BYTES });
    this.inflater.on('data', (chunk: Buffer) => {
      this.produced += chunk.length;
      if (this.produced > entry.size) {
        this.fail(`inflates past the ${entry.size} bytes its zip directory declares (a corrupt entry or a deflate bomb)`);
        return;
      }
      this.crc = crc32(chunk, this.crc);
      this.queue.push(chunk);
      this.queued += chunk.length;
    });
    this.inflater.on('error', (error: Error) => this.fail(`is not valid deflate data (${error.message})`, error));
    this.inflater.on('end', () => {
      this.ended = true;
      if (this.produced !== entry.size) this.fail(`inflates to ${this.produced} bytes, not the ${entry.size} its zip directory declares`);
      else if (this.crc !== entry.crc32) this.fail('fails its checksum; the archive is corrupt');
    });
  }

  private fail(what: string, cause?: unknown): void {
    this.failure ??= new ArchiveError(`${this.label}: compressed entry ${what}`, { cause });
    this.inflater.destroy();
  }

  close(): void {
    this.inflater.destroy();
  }

  /** Gives zlib the next step of compressed bytes (ends its input after the last) and waits until it is taken. */
  private async step(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.ended) throw new ArchiveError(`${this.label}: truncated: compressed entry ends after ${this.produced} bytes`);
    const remaining = this.entry.compressedSize - this.fed;
    if (remaining === 0) {
      await new Promise<void>((resolve) => {
        this.inflater.once('close', resolve);
        this.inflater.once('end', resolve);
        this.inflater.end();
      });
    } else {
      if (this.fetchedAt + this.fetched.length <= this.fed) {
        this.fetched = await this.source.read(this.dataOffset + this.fed, Math.min(FETCH_BYTES, remaining));
        this.fetchedAt = this.fed;
      }
      const from = this.fed - this.fetchedAt;
      const slice = this.fetched.subarray(from, Math.min(from + STEP_BYTES, this.fetched.length));
      this.fed += slice.length;
      // A stream destroyed mid-step (a bomb stopped) may never call back: its close ends the wait too.
      await new Promise<void>((resolve) => {
        this.inflater.once('close', resolve);
        this.inflater.write(slice, () => {
          this.inflater.off('close', resolve);
          resolve();
        });
      });
      // Output of the step arrives as 'data' events; give any still queued a turn.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Copies (or, without `into`, drops) the next `length` uncompressed bytes. */
  private async take(length: number, into?: Uint8Array): Promise<void> {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`cannot move a deflated entry's cursor by ${length} bytes`);
    let done = 0;
    while (done < length) {
      if (this.queued === 0) {
        await this.step();
        continue;
      }
      const head = this.queue[0];
      const n = Math.min(length - done, head.length - this.queueHead);
      into?.set(head.subarray(this.queueHead, this.queueHead + n), done);
      done += n;
      this.queueHead += n;
      this.queued -= n;
      this.position += n;
      if (this.queueHead === head.length) {
        this.queue.shift();
        this.queueHead = 0;
      }
    }
    // Read to its end, the entry must end there too and match its checksum.
    while (this.position === this.entry.size && !this.ended) await this.step();
    if (this.failure) throw this.failure;
  }

  skip(length: number): Promise<void> {
    return this.take(length);
  }

  /** Fills `into` with the next `into.length` bytes. */
  read(into: Uint8Array): Promise<void> {
    return this.take(into.length, into);
  }
}

/** Refuses an entry that declares more bytes than deflate can make of its compressed size. */
export function checkDeflateRatio(entry: ZipEntry, label: string): void {
  if (entry.size > entry.compressedSize * MAX_DEFLATE_RATIO + 64) {
    throw new ArchiveError(
      `${label}: compressed entry declares ${entry.size} bytes from ${entry.compressedSize}, more than deflate can expand to`,
    );
  }
}

export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;
