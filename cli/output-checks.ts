import { realpathSync, statSync, statfsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { UsageError } from '../functions/commons/errors';
import { formatBytes } from '../toolkit/sizes';
import type { Location } from '../toolkit/locations';

/**
 * Checks made before a command computes anything, so that a typo in an output option fails at once
 * and never destroys an input or fills a disk.
 */

/** The path as the file system resolves it (symlinks followed), for paths that may not exist yet. */
function canonical(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    try {
      return resolve(realpathSync(dirname(absolute)), basename(absolute));
    } catch {
      return absolute;
    }
  }
}

const sameLocation = (a: Location, b: Location) =>
  a.kind === 'file' && b.kind === 'file'
    ? canonical(a.path) === canonical(b.path)
    : a.kind === 's3' && b.kind === 's3' && a.bucket === b.bucket && a.key === b.key;

/** A local file to be written: not one of the inputs, not a folder, in a folder that exists. */
export function checkOutputFile(out: string, what: string, inputs: Location[]): void {
  if (out.startsWith('s3://')) throw new UsageError(`${what} ${out}: writes a local file, not an S3 object`);
  if (inputs.some((input) => sameLocation(input, { kind: 'file', path: out }))) {
    throw new UsageError(`${what} ${out} is the input: it would be replaced`);
  }
  const existing = statSync(out, { throwIfNoEntry: false });
  if (existing?.isDirectory()) throw new UsageError(`${what} ${out} is a folder, not a file`);
  const folder = dirname(resolve(out));
  if (!statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${what} ${out}: folder ${folder} does not exist`);
}

/** The names a dataset writer gives its files: 1.pt … N.pt and partitions.json. */
const WRITTEN_NAME = /^(\d+\.pt|partitions\.json)$/;

/** A folder or prefix partitions are written to must not be where the input is one of their names. */
export function checkNotOverwritingInput(out: Location, input: Location): void {
  const inputName = input.kind === 'file' ? basename(input.path) : basename(input.key);
  if (!WRITTEN_NAME.test(inputName)) return;
  const folder: Location =
    input.kind === 'file' ? { kind: 'file', path: dirname(input.path) } : { kind: 's3', bucket: input.bucket, key: dirname(input.key) };
  const target: Location = out.kind === 's3' ? { ...out, key: out.key.replace(/\/+$/, '') || '.' } : out;
  if (sameLocation(folder, target)) {
    throw new UsageError(`--out is the folder of the input, whose ${inputName} it would replace: write the partitions elsewhere`);
  }
}

/** Refuses a local write larger than its file system's free space. */
export function checkFreeSpace(out: Location, bytes: number, what: string): void {
  if (out.kind !== 'file') return;
  let folder = resolve(out.path);
  while (!statSync(folder, { throwIfNoEntry: false })) folder = dirname(folder);
  const { bavail, bsize } = statfsSync(folder);
  const free = bavail * bsize;
  if (bytes > free) {
    throw new UsageError(`${what} would write ${formatBytes(bytes)} to ${out.path}, and its file system has ${formatBytes(free)} free`);
  }
}
