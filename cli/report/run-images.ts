import type { S3Client } from '@aws-sdk/client-s3';
import type { OutputStatistics } from '../../functions/commons/model/task-statistics';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { s3Source } from '../../functions/commons/tensors/byte-source';
import { readObjectImages, type ObjectImages, type ObjectRef } from './object-images';

/** The bucket the run read its partitions from: its payload's data_bucket. */
export function dataBucketOf(run: RunRecord): string | undefined {
  const bucket = (run.payload as { data_bucket?: unknown } | null)?.data_bucket;
  return typeof bucket === 'string' && bucket ? bucket : undefined;
}

/** The top objects of every score output: the objects a report draws. */
export const topObjects = (statistics: Record<string, OutputStatistics> | undefined): ObjectRef[] =>
  Object.values(statistics ?? {}).flatMap((s) => (s.task === 'score' ? s.top.map(({ partition, row }) => ({ partition, row })) : []));

/**
 * Thumbnails of a run's top-scoring objects, read from its partitions in its data bucket; none to
 * draw: undefined. A partition gone or unreadable is noted, never fatal: the report is still made.
 */
export async function runObjectImages(
  run: RunRecord,
  statistics: Record<string, OutputStatistics> | undefined,
  s3: S3Client,
): Promise<ObjectImages | undefined> {
  const objects = topObjects(statistics);
  if (!objects.length) return undefined;
  const bucket = dataBucketOf(run);
  if (!bucket) {
    return {
      images: new Map(),
      unread: [...new Set(objects.map((o) => o.partition))].map((partition) => ({
        partition,
        error: "the run's payload names no data bucket",
      })),
    };
  }
  return readObjectImages(objects, (partition) => s3Source(s3, bucket, partition));
}
