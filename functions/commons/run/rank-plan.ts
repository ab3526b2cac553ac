import { paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { CaiError } from '../errors';
import { ARM64_RATE_FACTOR, type Architecture, galaxiesPerSecond, workersFor } from '../model/lambda-sizing';
import { rankMemory, type RankMemory } from '../model/rank-memory';
import { STATE_PAYLOAD_LIMIT_BYTES } from '../aws/limits';
import { BYTES_PER_GALAXY } from '../partitions/galaxy';
import { isTensorFileName } from '../partitions/file-names';
import type { ModelObject, PartitionObject, Payload, RankItem } from './contracts';

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

/**
 * The most pages of S3's listing (1,000 keys each) the initializer reads for one run: 200,000
 * objects, whose listing and plan were measured to fit its memory and timeout (docs/deploy.md).
 */
export const MAX_LISTING_PAGES = 200;

export interface ListingOptions {
  /** Refuse a folder that needs more pages than this (absent: list them all). */
  maxPages?: number;
  /** Stops the listing at its next page once aborted. */
  signal?: AbortSignal;
  /** Called after each page with the pages listed so far. */
  onPage?: (pages: number) => void;
}

/**
 * Every data file under the prefix, sub-folders included (`healpix=1234/001-of-002.hdf5`), by its
 * extension (tensor-files.ts; its content decides how it is read): all pages, or PlanError past
 * maxPages, in natural order of the whole key.
 */
export async function listPartitions(
  s3: S3Client,
  bucket: string,
  prefix: string,
  options: ListingOptions = {},
): Promise<PartitionObject[]> {
  const folder = folderOf(prefix);
  const found: PartitionObject[] = [];
  let pages = 0;
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: folder })) {
    options.signal?.throwIfAborted();
    for (const object of page.Contents ?? []) {
      if (object.Key && isTensorFileName(object.Key)) found.push({ key: object.Key, bytes: object.Size ?? 0 });
    }
    options.onPage?.(++pages);
    if (options.maxPages !== undefined && pages >= options.maxPages && page.IsTruncated) {
      const most = options.maxPages * 1000;
      throw new PlanError(
        `s3://${bucket}/${folder} holds more than ${most.toLocaleString('en-US')} objects (${options.maxPages} pages of S3's listing), more than one run lists: split its partitions into folders of at most ${most.toLocaleString('en-US')}`,
        'data_prefix',
      );
    }
  }
  return found.sort((a, b) => naturalCompare(a.key, b.key));
}

/**
 * Partitions to ranks: largest first onto the least-loaded rank (by bytes), so ranks finish
 * together; each rank keeps its partitions in natural order, and ranks are numbered in the order
 * of their first partitions. Deterministic; O(n log ranks), for tens of thousands of partitions.
 */
export function assignRanks(partitions: PartitionObject[], worldSize: number): PartitionObject[][] {
  const ranks = Math.min(worldSize, partitions.length);
  const assigned: PartitionObject[][] = Array.from({ length: ranks }, () => []);
  const order = new Map(partitions.map((p, i) => [p, i]));
  const bySize = [...partitions].sort((a, b) => b.bytes - a.bytes || order.get(a)! - order.get(b)!);
  // A binary min-heap of [load, rank]: ties go to the lowest rank, as a linear scan would.
  const heap: [number, number][] = Array.from({ length: ranks }, (_, r) => [0, r]);
  const less = (a: [number, number], b: [number, number]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  for (const p of bySize) {
    const top = heap[0];
    assigned[top[1]].push(p);
    top[0] += p.bytes;
    for (let i = 0; ;) {
      const [l, r] = [2 * i + 1, 2 * i + 2];
      let smallest = i;
      if (l < heap.length && less(heap[l], heap[smallest])) smallest = l;
      if (r < heap.length && less(heap[r], heap[smallest])) smallest = r;
      if (smallest === i) break;
      [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
      i = smallest;
    }
  }
  for (const rank of assigned) rank.sort((a, b) => order.get(a)! - order.get(b)!);
  // Ranks numbered in the order of their first partition: with one partition each, rank i has the i-th.
  return assigned.sort((a, b) => order.get(a[0])! - order.get(b[0])!);
}

/** What bounds a rank: the inference function's memory (its speed, and what a rank may hold) and timeout. */
export interface RankLimits {
  memoryMb: number;
  timeoutS: number;
  /** The inference function's architecture (absent: x86_64): arm64 plans at x86_64's rate × ARM64_RATE_FACTOR. */
  architecture?: Architecture;
  /** What the inference function runs, for its memory plan (absent: memory is not planned). */
  inference?: {
    modelBytes: number;
    /** InferenceWorkers: 0 is one per vCPU share of the memory size. */
    workers: number;
    /** The batch a payload without batch_size gets. */
    batchSize: number;
  };
}

/** Lambda's largest memory size (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). */
export const MAX_LAMBDA_MEMORY_MB = 10240;

/** A rank planned above this share of the memory size is warned about: the estimate is within about 10 % of what is measured. */
export const RANK_MEMORY_WARNING = 0.9;

/** A rank is planned to take at most this share of the function's timeout (S3, INIT and noise take the rest). */
export const RANK_TIME_BUDGET = 0.6;

/** A run that cannot be planned within a Lambda's limits. */
export class PlanError extends CaiError {
  constructor(
    message: string,
    readonly field: 'world_size' | 'data_prefix' | 'batch_size',
  ) {
    super(message);
  }
}

/**
 * The summarizer holds every rank's result at once: 236 MB measured at 10,240 ranks (npm run
 * bench:summarizer), about 23 KB a rank, whole process included. A run gets at most the ranks
 * that fill 80 % of its memory (1,024 MB: 35,617 ranks).
 */
export const SUMMARIZER_KB_PER_RANK = 23;
export const summarizableRanks = (memoryMb: number): number => Math.floor((0.8 * memoryMb * 1000) / SUMMARIZER_KB_PER_RANK);

/** Refuses more ranks than the summarizer's memory can summarize. */
export function checkSummarizable(ranks: number, summarizerMemoryMb: number): void {
  const most = summarizableRanks(summarizerMemoryMb);
  if (ranks <= most) return;
  throw new PlanError(
    `${ranks} ranks are more than the summarizer summarizes in its ${summarizerMemoryMb} MB (at most ${most}, ${SUMMARIZER_KB_PER_RANK} KB a rank): set world_size to at most ${most}, or raise the template's SummarizerMemorySize`,
    'world_size',
  );
}

const rateOf = (limits: RankLimits) => galaxiesPerSecond(limits.memoryMb, limits.architecture);
const estimateSeconds = (bytes: number, limits: RankLimits) => bytes / BYTES_PER_GALAXY / rateOf(limits);
const itemBytes = (item: RankItem) => Buffer.byteLength(JSON.stringify(item));

/**
 * The most an item may take: the InferRank task's parameters, which Step Functions holds to the same
 * 256 KiB, wrap it in {"FunctionName": <an ARN, at most 170 characters: Lambda's Invoke API>,
 * "Payload": {"item": <item>, "attempt": <the retry count>}}, under 256 bytes.
 */
export const MAX_RANK_ITEM_BYTES = STATE_PAYLOAD_LIMIT_BYTES - 256;

export interface ManifestPlan {
  items: RankItem[];
  /** Partitions chosen (after file_limit), in natural order. */
  partitions: PartitionObject[];
  warnings: string[];
}

/** Plans a run's ranks; `model` (a run's own model, as the initializer found it) goes in every item. */
export function planRanks(
  runId: string,
  payload: Payload,
  available: PartitionObject[],
  limits?: RankLimits,
  model?: ModelObject,
): ManifestPlan {
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
  const itemsFor = (w: number) =>
    assignRanks(partitions, w).map((assigned, rank, all) => ({
      runId,
      rank,
      worldSize: all.length,
      batchSize: payload.batch_size,
      dataBucket: payload.data_bucket,
      partitions: assigned,
      resultBucket: payload.bucket,
      resultPath: payload.result_path,
      ...(model ? { model } : {}),
    }));
  const items = itemsFor(worldSize);
  // Ranks are sized by the deployed model's measured rate: a run's own model has none measured.
  if (model) warnings.push(`ranks are planned at the deployed model's rate; if ${payload.model} is slower, set world_size higher`);
  // A run's own model is held by each worker instead of the deployed one: its size is what they hold.
  const inference = limits?.inference && model ? { ...limits.inference, modelBytes: model.bytes } : limits?.inference;
  if (limits && inference) for (const warning of planMemory(items, { ...limits, inference }, payload.batch_size)) warnings.push(warning);
  if (limits) checkWithinLimits(items, partitions, limits, (w) => itemsFor(w), payload.world_size !== undefined);
  return { items, partitions, warnings };
}

/** One rank's peak memory at a memory size, from its largest partition. */
function memoryOf(item: RankItem, limits: RankLimits, memoryMb: number, batchSize?: number): RankMemory {
  const { modelBytes, workers, batchSize: defaultBatch } = limits.inference!;
  return rankMemory({
    modelBytes,
    workers: workers || workersFor(memoryMb),
    batchSize: batchSize ?? defaultBatch,
    partitionBytes: item.partitions.reduce((most, p) => Math.max(most, p.bytes), 0),
    decodeBytes: item.partitions.reduce((most, p) => Math.max(most, p.decodeBytes ?? 0), 0),
  });
}

/**
 * Each rank's peak memory planned (rank-memory.ts) and kept on its item; a rank that cannot fit the
 * inference function's memory refuses the run, naming its partition and the memory size that
 * would fit (the workers follow the memory size unless InferenceWorkers fixes them). Warnings for
 * ranks planned close to the limit.
 */
function planMemory(items: RankItem[], limits: RankLimits, batchSize?: number): string[] {
  const mb = (n: number) => `${Math.round(n).toLocaleString('en-US')} MB`;
  for (const item of items) item.plannedMemoryMb = memoryOf(item, limits, limits.memoryMb, batchSize).totalMb;
  const largest = items.reduce((a, b) => (b.plannedMemoryMb! > a.plannedMemoryMb! ? b : a));
  const need = memoryOf(largest, limits, limits.memoryMb, batchSize);
  if (need.totalMb <= limits.memoryMb) {
    if (need.totalMb <= RANK_MEMORY_WARNING * limits.memoryMb) return [];
    return [
      `rank ${largest.rank} is planned at ~${mb(need.totalMb)} of the inference function's ${mb(limits.memoryMb)}: close enough to be killed for memory if the estimate is low`,
    ];
  }
  let fits: number | undefined;
  for (let m = limits.memoryMb + 1; m <= MAX_LAMBDA_MEMORY_MB && fits === undefined; m++) {
    if (memoryOf(largest, limits, m, batchSize).totalMb <= m) fits = m;
  }
  const partition = largest.partitions.reduce((a, b) => (b.bytes > a.bytes ? b : a)).key;
  const workers = limits.inference!.workers || workersFor(limits.memoryMb);
  const parts =
    `${workers} worker${workers === 1 ? "'s" : "s'"} sessions ${mb(need.sessionsMb)}, batches of ${batchSize ?? limits.inference!.batchSize} ` +
    `${mb(need.batchesMb)}, read-ahead ${mb(need.readAheadMb)}, runtime ${mb(need.runtimeMb)}`;
  const remedy = fits
    ? `set InferenceMemorySize to at least ${fits}${batchSize ? ', or lower batch_size' : ''}`
    : `no memory size up to ${MAX_LAMBDA_MEMORY_MB} MB fits it: lower ${batchSize ? 'batch_size or ' : ''}InferenceWorkers`;
  throw new PlanError(
    `partition ${partition} needs ~${mb(need.totalMb)} in a rank (${parts}), over the inference function's ${mb(limits.memoryMb)}: ${remedy}`,
    batchSize ? 'batch_size' : 'data_prefix',
  );
}

/** Refuses a plan whose slowest rank would not finish well inside the timeout, or whose item is too big. */
function checkWithinLimits(
  items: RankItem[],
  partitions: PartitionObject[],
  limits: RankLimits,
  itemsFor: (worldSize: number) => RankItem[],
  worldSizeGiven: boolean,
): void {
  const budget = limits.timeoutS * RANK_TIME_BUDGET;
  // Folded, never spread into Math.max's arguments: a spread of 200,000 items overflows the stack.
  const slowest = (list: RankItem[]) =>
    list.reduce(
      (most, i) =>
        Math.max(
          most,
          estimateSeconds(
            i.partitions.reduce((s, p) => s + p.bytes, 0),
            limits,
          ),
        ),
      0,
    );
  const fits = (list: RankItem[]) =>
    slowest(list) <= budget && list.reduce((most, i) => Math.max(most, itemBytes(i)), 0) <= MAX_RANK_ITEM_BYTES;
  if (fits(items)) return;
  const arm64 = limits.architecture === 'arm64' ? ` on arm64 (x86_64's rate × ${ARM64_RATE_FACTOR}, assumed)` : '';
  const speed = `${Math.round(rateOf(limits))} galaxies/s at ${limits.memoryMb} MB${arm64}`;
  const within = `the ${Math.round(budget)} s budget (${RANK_TIME_BUDGET * 100} % of the inference function's ${limits.timeoutS} s timeout)`;
  const biggest = partitions.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  if (estimateSeconds(biggest.bytes, limits) > budget) {
    throw new PlanError(
      `partition ${biggest.key} alone would take ~${Math.round(estimateSeconds(biggest.bytes, limits))} s at ${speed}, over ${within}: ` +
        'split the data into smaller partitions (cai split --size) or give the inference function more memory',
      'data_prefix',
    );
  }
  // The smallest world size that fits: from the lower bound the total work sets, doubling, then halving back.
  const total = partitions.reduce((s, p) => s + estimateSeconds(p.bytes, limits), 0);
  let low = Math.max(items.length, Math.ceil(total / budget)) - 1;
  let high = low + 1;
  while (high < partitions.length && !fits(itemsFor(high))) [low, high] = [high, Math.min(partitions.length, high * 2)];
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (fits(itemsFor(mid))) high = mid;
    else low = mid;
  }
  const reason =
    slowest(items) > budget
      ? `~${Math.round(slowest(items))} s for its slowest rank at ${speed}, over ${within}`
      : `rank items over Step Functions' 256 KiB`;
  throw new PlanError(
    worldSizeGiven
      ? `world_size ${items.length} plans ${reason}; the smallest world_size that fits is ${high}`
      : `${items.length} ranks plan ${reason}; set world_size to at least ${high}`,
    'world_size',
  );
}
