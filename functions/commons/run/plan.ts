import { paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import type { PartitionObject, Payload, RankItem } from './contracts';

/** File names CAI takes as partitions. */
export const PARTITION_SUFFIX = '.pt';

/** Natural order: digit runs compare as numbers, so 2.pt < 10.pt (the prototype sorted as text). */
export function naturalCompare(a: string, b: string): number {
  const split = (s: string) => s.split(/(\d+)/);
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] === y[i]) continue;
    const numeric = i % 2 === 1;
    if (numeric) {
      const d = Number(x[i]) - Number(y[i]) || x[i].length - y[i].length;
      if (d) return d;
    } else {
      return x[i] < y[i] ? -1 : 1;
    }
  }
  return x.length - y.length;
}

/** The folder a data prefix names: "100MB" and "100MB/" both mean the objects under "100MB/". */
export function folderOf(prefix: string): string {
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** Every `.pt` object directly under the prefix (all pages), in natural order. */
export async function listPartitions(s3: S3Client, bucket: string, prefix: string): Promise<PartitionObject[]> {
  const folder = folderOf(prefix);
  const found: PartitionObject[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: folder, Delimiter: '/' })) {
    for (const object of page.Contents ?? []) {
      if (object.Key?.endsWith(PARTITION_SUFFIX)) found.push({ key: object.Key, bytes: object.Size ?? 0 });
    }
  }
  return found.sort((a, b) => naturalCompare(a.key, b.key));
}

/**
 * Partitions to ranks: largest first onto the least-loaded rank (by bytes), so ranks finish
 * together; each rank keeps its partitions in natural order, and ranks are numbered in the order
 * of their first partitions. Deterministic.
 */
export function assignRanks(partitions: PartitionObject[], worldSize: number): PartitionObject[][] {
  const ranks = Math.min(worldSize, partitions.length);
  const load = new Array<number>(ranks).fill(0);
  const assigned: PartitionObject[][] = Array.from({ length: ranks }, () => []);
  const bySize = partitions.map((p, index) => ({ p, index })).sort((a, b) => b.p.bytes - a.p.bytes || a.index - b.index);
  const order = new Map(partitions.map((p, i) => [p, i]));
  for (const { p } of bySize) {
    let target = 0;
    for (let r = 1; r < ranks; r++) if (load[r] < load[target]) target = r;
    assigned[target].push(p);
    load[target] += p.bytes;
  }
  for (const rank of assigned) rank.sort((a, b) => order.get(a)! - order.get(b)!);
  // Ranks numbered in the order of their first partition: with one partition each, rank i has the i-th.
  return assigned.sort((a, b) => order.get(a[0])! - order.get(b[0])!);
}

export interface ManifestPlan {
  items: RankItem[];
  /** Partitions chosen (after file_limit), in natural order. */
  partitions: PartitionObject[];
  warnings: string[];
}

export function planRun(runId: string, payload: Payload, available: PartitionObject[]): ManifestPlan {
  const warnings: string[] = [];
  const limit = payload.file_limit ?? available.length;
  if (limit > available.length) {
    warnings.push(`file_limit ${limit} exceeds the ${available.length} partitions found; running all of them`);
  }
  const partitions = available.slice(0, limit);
  const worldSize = payload.world_size ?? partitions.length;
  if (worldSize > partitions.length) {
    warnings.push(`world_size ${worldSize} exceeds the ${partitions.length} partitions; using ${partitions.length} ranks`);
  }
  const items = assignRanks(partitions, worldSize).map((assigned, rank, all) => ({
    runId,
    rank,
    worldSize: all.length,
    batchSize: payload.batch_size,
    dataBucket: payload.data_bucket,
    partitions: assigned,
    resultBucket: payload.bucket,
    resultPath: payload.result_path,
  }));
  return { items, partitions, warnings };
}
