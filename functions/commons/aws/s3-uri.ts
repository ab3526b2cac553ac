import { UsageError } from '../errors';

/** s3://bucket/key, the bucket by S3's naming rules; the key may be a prefix, or empty. */
const S3_URI = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/;

/** s3://bucket/key → its bucket and key; `what` names the option or field it came from. */
export function parseS3Uri(uri: string, what?: string): { bucket: string; key: string } {
  const match = S3_URI.exec(uri);
  if (!match) throw new UsageError(`${what ? `${what} ` : ''}"${uri}" is not an S3 location like s3://bucket/key`);
  return { bucket: match[1], key: match[2] ?? '' };
}
