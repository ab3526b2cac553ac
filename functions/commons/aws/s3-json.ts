import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** An S3 object parsed as JSON, or undefined when there is no such object (a rank that wrote no result, a summary not yet written). */
export async function readJsonObject<T>(s3: S3Client, bucket: string, key: string): Promise<T | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return JSON.parse(await object.Body!.transformToString()) as T;
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw error;
  }
}
