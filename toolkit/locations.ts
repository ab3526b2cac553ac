import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { fileSource, s3Source, type ByteSource } from '../functions/commons/tensors/byte-source';
import { parseS3Uri } from '../functions/commons/aws/s3-uri';
import { UsageError } from '../functions/commons/errors';

import { s3Client } from '../functions/commons/aws/clients';

/** A file or folder on this machine, or an object or prefix in S3 (`s3://bucket/key`). */
export type Location = { kind: 'file'; path: string } | { kind: 's3'; bucket: string; key: string };

export function parseLocation(text: string): Location {
  return text.startsWith('s3://') ? { kind: 's3', ...parseS3Uri(text) } : { kind: 'file', path: text };
}

export function describeLocation(location: Location): string {
  return location.kind === 'file' ? location.path : `s3://${location.bucket}/${location.key}`;
}

export async function openLocation(location: Location): Promise<ByteSource> {
  if (location.kind === 'file') return fileSource(location.path);
  if (!location.key) throw new UsageError(`s3://${location.bucket}/ names a bucket, not an object`);
  return s3Source(s3Client(), location.bucket, location.key);
}

/** Where a command writes named objects: files in a folder, or keys under an S3 prefix (through `client`). */
export interface ObjectSink {
  describe(name: string): string;
  put(name: string, bytes: Uint8Array, contentType?: string): Promise<void>;
}

export function sinkFor(location: Location, client: () => S3Client = s3Client): ObjectSink {
  if (location.kind === 'file') {
    const root = location.path;
    return {
      describe: (name) => join(root, name),
      async put(name, bytes) {
        const path = join(root, name);
        await mkdir(dirname(path), { recursive: true });
        // Written beside and renamed, so a reader never sees half a partition.
        const partial = `${path}.partial`;
        await writeFile(partial, bytes);
        await rename(partial, path);
      },
    };
  }
  const prefix = location.key && !location.key.endsWith('/') ? `${location.key}/` : location.key;
  return {
    describe: (name) => `s3://${location.bucket}/${prefix}${name}`,
    async put(name, bytes, contentType = 'application/octet-stream') {
      await client().send(
        new PutObjectCommand({ Bucket: location.bucket, Key: `${prefix}${name}`, Body: bytes, ContentType: contentType }),
      );
    },
  };
}
