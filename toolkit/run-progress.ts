import type { RequestCounts } from '../functions/commons/aws/clients';
import { billRun, type Architecture } from '../functions/commons/billing/cost';
import { stateTransitions } from '../functions/commons/billing/run-usage';
import { rankRetries } from '../functions/commons/run/attempts';
import type { PartitionFailure, RankItem, RankResult } from '../functions/commons/run/contracts';
import type { RunRecord } from '../functions/commons/run/run-store';

/**
 * A run while it runs (`cai runs watch`, `cai start`): its ranks from the Map Run's own counts
 * (DescribeMapRun), its objects, failures and cost from the rank results already in S3
 * (ranks/<rank>.json), against what the run record planned. Plain arithmetic over what was read.
 */

/** DescribeMapRun's itemCounts (one item per rank: CAI's Map has no ItemBatcher). */
export interface MapRunCounts {
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  timedOut: number;
  aborted: number;
  total: number;
  resultsWritten: number;
}

export interface ProgressInput {
  record: RunRecord;
  /** The Map Run's counts; absent before the Map has read its items (or where no Step Functions answers). */
  mapRun?: { status: string; startDate?: Date; counts: MapRunCounts };
  /** The run's manifest: each rank's partitions (absent until the initializer wrote it). */
  items?: RankItem[];
  /** The rank results in S3 so far. */
  results: RankResult[];
  /** Now, ms since the epoch. */
  now: number;
  /** Whose prices bill the cost so far. */
  region: string;
  architecture: Architecture;
}

export interface RunProgress {
  runId: string;
  /** The record's status: RUNNING until the summarizer (or the failure path) has written it. */
  status: RunRecord['status'];
  /** Whether the Map Run has ended: every rank has ended. */
  ranksEnded: boolean;
  ranks: { pending: number; running: number; succeeded: number; failed: number; total: number };
  partitions: { done: number; failed: number; total: number };
  objects: number;
  objectsPerSecond: number;
  /** Seconds until the last rank ends, from the rate of partition bytes done so far; null before any is done. */
  etaSeconds: number | null;
  elapsedSeconds: number;
  /** The first partition failures so far (at most FIRST_FAILURES). */
  failures: PartitionFailure[];
  /** The ranks' bill so far (their invocations, requests and state transitions, and the initializer's): the summary adds its own. */
  costUsd: number;
}

/** How many partition failures the view names. */
export const FIRST_FAILURES = 3;

const sum = <T>(list: T[], of: (t: T) => number) => list.reduce((n, t) => n + of(t), 0);

/**
 * Where the run stands. A rank succeeded when its result is in S3; it failed when the Map Run
 * counts it ended but it wrote no result (its error was caught, or its child execution failed).
 * Once every rank has ended, the partitions of the ranks that wrote no result are failed, as the
 * summary counts them; before that, which ranks those are is not known, only how many.
 */
export function runProgress(input: ProgressInput): RunProgress {
  const { record, mapRun, items, results, now } = input;
  const total = mapRun?.counts.total ?? record.ranks ?? 0;
  const counts = mapRun?.counts;
  const ended = counts ? counts.succeeded + counts.failed + counts.timedOut + counts.aborted : 0;
  const ranksEnded = mapRun ? mapRun.status !== 'RUNNING' : record.status !== 'RUNNING';
  // A rank writes its result before its child execution ends: the results may be ahead of the counts.
  const succeeded = results.length;
  const failed = ranksEnded ? Math.max(0, total - succeeded) : Math.max(0, ended - succeeded);
  const pending = ranksEnded ? 0 : Math.min(counts?.pending ?? total, total - succeeded - failed);
  const running = Math.max(0, total - succeeded - failed - pending);

  const written = new Set(results.map((r) => r.rank));
  const missing = ranksEnded ? (items ?? []).filter((item) => !written.has(item.rank)) : [];
  const failures: PartitionFailure[] = [
    ...results.flatMap((r) => r.failures),
    ...missing.flatMap((item) =>
      item.partitions.map((p) => ({ partition: p.key, rank: item.rank, error: `rank ${item.rank} ended without a result` })),
    ),
  ];
  // Partitions of the ranks ended: those that wrote a result, and (once all have ended) those that wrote none.
  const partitionsDone = sum(
    (items ?? []).filter((item) => written.has(item.rank) || ranksEnded),
    (item) => item.partitions.length,
  );

  const startedAt = mapRun?.startDate?.getTime() ?? Date.parse(record.startedAt);
  const elapsedSeconds = Math.max(0, (now - startedAt) / 1000);
  const objects = sum(results, (r) => r.samples);
  const bytesOf = (item: RankItem) => sum(item.partitions, (p) => p.bytes);
  const totalBytes = sum(items ?? [], bytesOf);
  const doneBytes = sum(
    (items ?? []).filter((item) => written.has(item.rank)),
    bytesOf,
  );
  const etaSeconds = ranksEnded ? 0 : doneBytes > 0 && elapsedSeconds > 0 ? (elapsedSeconds * (totalBytes - doneBytes)) / doneBytes : null;

  return {
    runId: record.runId,
    status: record.status,
    ranksEnded,
    ranks: { pending, running, succeeded, failed, total },
    partitions: { done: partitionsDone, failed: failures.length, total: record.partitions ?? sum(items ?? [], (i) => i.partitions.length) },
    objects,
    objectsPerSecond: elapsedSeconds > 0 ? objects / elapsedSeconds : 0,
    etaSeconds,
    elapsedSeconds,
    failures: failures.slice(0, FIRST_FAILURES),
    costUsd: costSoFar(input, failed),
  };
}

/** The ranks' invocations and requests, the initializer's, and the transitions of the ranks ended so far, at the region's prices. */
function costSoFar(input: ProgressInput, failedRanks: number): number {
  const { record, results } = input;
  const initializer = record.initializer;
  const requests: RequestCounts[] = [...results.map((r) => r.requests), ...(initializer?.requests ? [initializer.requests] : [])];
  const total = (k: keyof RequestCounts) => sum(requests, (r) => r[k] ?? 0);
  // The Map's own transition is counted once it has started; Summarize's only by the summary.
  const transitions = input.mapRun
    ? stateTransitions({
        ranks: results.length + failedRanks,
        // The retries of the ranks with results, by their attempt numbers; a failed rank's are known only to its history.
        retries: rankRetries(results, [], []),
        caughtRanks: failedRanks,
        failurePath: false,
        mapResultFiles: 0,
      }) - 1
    : 0;
  return billRun(
    {
      invocations: [
        ...(initializer ? [initializer] : []),
        ...results.map((r) => ({ memoryMb: r.memory_configured_mb, durationMs: r.duration_ms, initMs: r.init_s * 1000 })),
      ],
      stateTransitions: transitions,
      s3: { get: total('s3Get'), put: total('s3Put'), list: total('s3List') },
      dynamo: { writes: total('dynamoWrite'), reads: total('dynamoRead') },
    },
    input.region,
    input.architecture,
  ).totalUsd;
}

const clock = (seconds: number) => {
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

/** A bar of the ranks ended, `width` characters wide. */
export function progressBar(p: RunProgress, width = 20): string {
  const done = p.ranks.total ? (p.ranks.succeeded + p.ranks.failed) / p.ranks.total : 0;
  const full = Math.round(done * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** The view as one line of text. */
export function progressText(p: RunProgress): string {
  const r = p.ranks;
  return [
    `${p.status}`,
    `ranks ${r.succeeded + r.failed}/${r.total} (${r.pending} pending, ${r.running} running, ${r.succeeded} succeeded, ${r.failed} failed)`,
    `${p.objects} objects (${p.objectsPerSecond.toFixed(0)}/s)`,
    `partitions ${p.partitions.done}/${p.partitions.total}, ${p.partitions.failed} failed`,
    `ETA ${p.etaSeconds === null ? '-' : clock(p.etaSeconds)}`,
    `$${p.costUsd.toExponential(2)} so far`,
  ].join('  ');
}

/** The first failures, one line each. */
export function failureLines(p: RunProgress): string[] {
  return p.failures.map((f) => `  failed ${f.partition} (rank ${f.rank ?? '-'}): ${f.error.split('\n')[0].slice(0, 200)}`);
}

/** The JSON line of `--json`. */
/** One `cai runs watch --json` line: the view in the CLI's snake_case, as scripts read it. */
export interface ProgressJsonLine {
  runId: string;
  status: RunRecord['status'];
  ranks: RunProgress['ranks'];
  partitions: RunProgress['partitions'];
  objects: number;
  objects_per_s: number;
  eta_s: number | null;
  elapsed_s: number;
  cost_usd: number;
  failures: PartitionFailure[];
}

export function progressJson(p: RunProgress): ProgressJsonLine {
  return {
    runId: p.runId,
    status: p.status,
    ranks: p.ranks,
    partitions: p.partitions,
    objects: p.objects,
    objects_per_s: Number(p.objectsPerSecond.toFixed(3)),
    eta_s: p.etaSeconds === null ? null : Number(p.etaSeconds.toFixed(1)),
    elapsed_s: Number(p.elapsedSeconds.toFixed(3)),
    cost_usd: p.costUsd,
    failures: p.failures,
  };
}
