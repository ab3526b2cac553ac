import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { paginateGetExecutionHistory, type SFNClient } from '@aws-sdk/client-sfn';
import pLimit from 'p-limit';
import { countsSince, requestCounts, type RequestCounts } from '../aws/clients';
import type { LambdaInvocation } from '../aws/invocation';
import { describeError } from '../errors';
import { readRequestsBound } from '../partitions/chunks';
import type { AttemptStart, CrashBilledUntil, CrashedAttempt, FailedAttempt, RankItem, RankResult } from './contracts';
import { outputKeys } from './output-keys';

/**
 * Every inference attempt accounted for, even one whose runtime died. An invocation writes a start
 * record (attempts/<rank>-<request id>.json) before it works; its handler completes it with the error
 * it caught, or its rank result names it (request_id). The summarizer bills the records never
 * completed: invocations Lambda billed and killed (out of memory, a crash, the timeout).
 */

/** What an invocation knows of itself when it starts. */
export interface AttemptContext {
  /** The state machine's attempt number for the rank (RankInvocation.attempt). */
  number: number;
  requestId: string;
  memoryMb: number;
  /** INIT billed with this invocation (a cold start), ms. */
  initMs: number;
  /** Lambda's context.getRemainingTimeInMillis() at the start. */
  remainingMs: number;
  /** This invocation's billing so far. */
  bill: () => LambdaInvocation;
}

async function putJson(s3: S3Client, bucket: string, key: string, body: unknown): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(body), ContentType: 'application/json' }));
}

/**
 * Runs one attempt of a rank with its record: the start record first (a rank that cannot write it
 * fails, so no attempt runs unrecorded), then `work`; an error is recorded on the same record and
 * rethrown, for the state machine to retry. `unrecorded` hears why a failure could not be recorded.
 */
export async function recordedAttempt<T>(
  s3: S3Client,
  item: RankItem,
  attempt: AttemptContext,
  work: () => Promise<T>,
  unrecorded: (why: string) => void,
): Promise<T> {
  const key = outputKeys(item.resultPath, item.runId).attempt(item.rank, attempt.requestId);
  const started = Date.now();
  const start: AttemptStart = {
    rank: item.rank,
    requestId: attempt.requestId,
    startedAt: new Date(started).toISOString(),
    memoryMb: attempt.memoryMb,
    initMs: attempt.initMs,
    deadline: new Date(started + attempt.remainingMs).toISOString(),
    attempt: attempt.number,
  };
  let before = requestCounts();
  try {
    await putJson(s3, item.resultBucket, key, start);
    // The start record's PUT is billed by the summary, one per record it lists.
    before = requestCounts();
    return await work();
  } catch (error) {
    const { durationMs, initMs, memoryMb } = attempt.bill();
    const requests = countsSince(before);
    requests.s3Put += 1; // this record's own PUT
    const failed: FailedAttempt & AttemptStart = { ...start, durationMs, initMs, memoryMb, error: describeError(error), requests };
    await putJson(s3, item.resultBucket, key, failed).catch((e: unknown) => unrecorded(describeError(e)));
    throw error;
  }
}

/** An error as the state machine reports it, in one line: `Error: message`. */
export function stateErrorText(e?: { Error?: string; Cause?: string }): string {
  if (!e) return 'the rank wrote no result';
  try {
    const cause = JSON.parse(e.Cause ?? '');
    return `${e.Error ?? 'Error'}: ${cause.errorMessage ?? e.Cause}`;
  } catch {
    return [e.Error, e.Cause].filter(Boolean).join(': ') || 'unknown error';
  }
}

/**
 * Whether the state machine's error is Lambda's report of a runtime killed for its memory:
 * Runtime.OutOfMemory, or Lambda.Unknown with it in the cause, as AWS's documentation has unhandled
 * errors reach Step Functions (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
 */
export function isOutOfMemory(e?: { Error?: string; Cause?: string }): boolean {
  return e?.Error === 'Runtime.OutOfMemory' || /"errorType"\s*:\s*"Runtime\.OutOfMemory"/.test(e?.Cause ?? '');
}

/**
 * Why a rank failed, in one line. A rank killed for its memory says at what memory size, how much
 * it needs as planned (or that the plan was short of it), and what to do.
 */
export function rankFailureText(
  error: { Error?: string; Cause?: string } | undefined,
  item: RankItem,
  crashed: CrashedAttempt[],
  memoryMb: number,
): string {
  if (!isOutOfMemory(error)) return stateErrorText(error);
  const own = crashed.filter((c) => c.rank === item.rank);
  const at = own.at(-1)?.memoryMb ?? memoryMb;
  const killed = own.filter((c) => c.error.startsWith('Runtime.OutOfMemory')).length;
  const planned = item.plannedMemoryMb;
  const needs =
    planned && planned > at
      ? `needs about ${planned} MB`
      : `needs more than ${at} MB${planned ? ` (planned at ~${planned} MB: more than the plan holds for this model or batch)` : ''}`;
  const remedy = `split the partition${item.batchSize ? ', lower batch_size' : ''} or raise InferenceMemorySize`;
  return `out of memory at ${at} MB${killed > 1 ? ` on all ${killed} attempts` : ''}: ${needs}; ${remedy}`;
}

/** A failed invocation in a child execution's history: when its task started and failed (ms), and the error. */
export interface TaskFailure {
  startedAt?: number;
  at: number;
  error: string;
}

/**
 * The failures of a rank's child execution, from its history (GetExecutionHistory), oldest first,
 * each with the start of its task. Invocations Lambda refused (Lambda.*Exception: throttled, a
 * service fault) never ran and are not billed, so they are left out.
 */
export async function taskFailures(sfn: SFNClient, executionArn: string, signal?: AbortSignal): Promise<TaskFailure[]> {
  const failures: TaskFailure[] = [];
  let startedAt: number | undefined;
  // The API's largest page (1,000 events): a rank's history is one call, whatever its retries.
  const pages = paginateGetExecutionHistory(
    { client: sfn, pageSize: 1000 },
    { executionArn, includeExecutionData: true },
    { abortSignal: signal },
  );
  for await (const page of pages) {
    for (const event of page.events ?? []) {
      const at = event.timestamp?.getTime();
      if (event.type === 'TaskStarted') startedAt = at;
      const details = event.taskFailedEventDetails ?? event.taskTimedOutEventDetails;
      if (!details || at === undefined) continue;
      if (!/^Lambda\.\w+Exception$/.test(details.error ?? '')) {
        failures.push({ startedAt, at, error: stateErrorText({ Error: details.error, Cause: details.cause }) });
      }
      startedAt = undefined;
    }
  }
  return failures.sort((a, b) => a.at - b.at);
}

/** The attempt records of a run, read: failed ones, and those only started (candidates for a crash). */
export interface AttemptRecords {
  failed: FailedAttempt[];
  started: AttemptStart[];
  /** Records listed: one start PUT each. */
  records: number;
}

/** The rank and request id an attempt record's key names (<rank>-<request id>.json). */
export function attemptOfKey(key: string): { rank: number; requestId: string } | undefined {
  const match = /(?:^|\/)(\d+)-([^/]+)\.json$/.exec(key);
  return match ? { rank: Number(match[1]), requestId: match[2] } : undefined;
}

/**
 * Reads the attempt records a rank result does not already complete: a rank result names the
 * invocation that wrote it, whose record is then not read (one GET per failure, not per rank).
 */
export async function readAttemptRecords(
  s3: S3Client,
  bucket: string,
  keys: string[],
  results: (RankResult | undefined)[],
  limit: <T>(task: () => Promise<T>) => Promise<T>,
): Promise<AttemptRecords> {
  const completed = new Set(results.flatMap((r) => (r?.request_id ? [`${r.rank}-${r.request_id}`] : [])));
  const open = keys.filter((key) => {
    const attempt = attemptOfKey(key);
    return !attempt || !completed.has(`${attempt.rank}-${attempt.requestId}`);
  });
  const read = async (key: string) => {
    try {
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return JSON.parse(await object.Body!.transformToString()) as Partial<FailedAttempt & AttemptStart>;
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  };
  const records = await Promise.all(open.map((key) => limit(() => read(key))));
  const failed: FailedAttempt[] = [];
  const started: AttemptStart[] = [];
  for (const record of records) {
    if (!record) continue;
    if (record.error !== undefined) failed.push(record as FailedAttempt);
    else if (record.startedAt) started.push(record as AttemptStart);
  }
  return { failed, started, records: keys.length };
}

/** What the summary knows of how each rank ended: its child execution, and the error its Map caught. */
export interface RankEnd {
  executionArn?: string;
  /** When the rank's child execution ended (ms). */
  stoppedAt?: number;
  /** The caught error, when the rank failed. */
  caught?: { Error?: string; Cause?: string };
}

/**
 * GetExecutionHistory calls in flight at once: well inside the API's burst (GET_EXECUTION_HISTORY_RATE,
 * 400 calls); past it, the SFN client's retries (SFN_READ_RETRY) wait for the refill of 20 a second.
 */
export const HISTORY_READ_CONCURRENCY = 10;

/** Child executions' histories as read by a deadline: each one's failures, why a read failed, and those never read. */
export interface HistoryReads {
  read: Map<string, TaskFailure[]>;
  failed: Map<string, string>;
  /** Not read: the deadline came first (never started, or abandoned in flight). */
  unread: Set<string>;
}

/**
 * Reads histories `concurrency` at a time, in the order given, until `deadline` (ms since the
 * epoch): then reads in flight are aborted and not waited for, and the rest are not started.
 */
export async function readHistories(
  arns: string[],
  failuresOf: (executionArn: string, signal: AbortSignal) => Promise<TaskFailure[]>,
  { concurrency = HISTORY_READ_CONCURRENCY, deadline = Infinity }: { concurrency?: number; deadline?: number } = {},
): Promise<HistoryReads> {
  const read = new Map<string, TaskFailure[]>();
  const failed = new Map<string, string>();
  const stop = new AbortController();
  const limit = pLimit(concurrency);
  const reads = Promise.all(
    arns.map((arn) =>
      limit(async () => {
        if (stop.signal.aborted) return;
        try {
          const failures = await failuresOf(arn, stop.signal);
          if (!stop.signal.aborted) read.set(arn, failures);
        } catch (error) {
          if (!stop.signal.aborted) failed.set(arn, describeError(error));
        }
      }),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  // A timer past 2^31 - 1 ms fires at once: a deadline that far off is no deadline.
  const waitMs = deadline - Date.now();
  const timeUp = new Promise<void>((resolve) => {
    if (waitMs < 2 ** 31) timer = setTimeout(resolve, Math.max(0, waitMs));
  });
  await Promise.race([reads, timeUp]);
  clearTimeout(timer);
  stop.abort();
  limit.clearQueue();
  return { read: new Map(read), failed: new Map(failed), unread: new Set(arns.filter((arn) => !read.has(arn) && !failed.has(arn))) };
}

export interface CrashContext {
  items: RankItem[];
  failed: FailedAttempt[];
  /** The ranks' results, any order. */
  results: (RankResult | undefined)[];
  ends: Map<number, RankEnd>;
  /** A child execution's failed invocations; absent where histories cannot be read (the failure path). */
  failuresOf?: (executionArn: string, signal: AbortSignal) => Promise<TaskFailure[]>;
  /** When history reads stop (ms since the epoch); none: every history is read. */
  historyDeadline?: number;
  /** History reads in flight at once (default HISTORY_READ_CONCURRENCY). */
  historyConcurrency?: number;
  /** The inference function's memory size, for an invocation that died before writing its record. */
  memoryMb: number;
  /** The summarizer's clock (ms). */
  now: number;
}

/** The crashed attempts billed, and what the summary could not see. */
export interface CrashBill {
  crashed: CrashedAttempt[];
  /**
   * Ranks whose child execution's history was to be read and was not (the deadline came first, the
   * read failed, or the execution is not known): their crashes with a record are billed up to the
   * next moment known after them (an estimate at or above Lambda's bill).
   */
  historiesNotRead: number;
  /**
   * Of those ranks, attempts known only from a later attempt's number (no record of their own):
   * omitted from the cost. Each died before writing its record, or was refused by Lambda (throttled),
   * which bills nothing; only the history tells which.
   */
  attemptsNotBilled: number;
}

const noRequests = (): RequestCounts => ({ s3Get: 0, s3Put: 0, s3List: 0, dynamoWrite: 0, dynamoRead: 0 });

/** What the records tell of one rank's attempts. */
interface RankAttempts {
  rank: number;
  /** Start records never completed, oldest first. */
  starts: AttemptStart[];
  /** When each attempt whose handler recorded its error started (ms). */
  failedStarts: number[];
  end: RankEnd;
  /** Attempts the attempt numbers show that left no record: died before writing one, or refused by Lambda. */
  unrecorded: number;
  /** Whether the history tells what the records cannot: a death's end and error, or attempts without a record. */
  needsHistory: boolean;
}

function rankAttempts(rank: number, started: AttemptStart[], context: CrashContext): RankAttempts {
  const end = context.ends.get(rank) ?? {};
  const starts = started.filter((s) => s.rank === rank).sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const failed = context.failed.filter((f) => f.rank === rank);
  const results = context.results.filter((r): r is RankResult => r?.rank === rank);
  const numbered = [...starts, ...failed, ...results.map((r) => ({ attempt: r.attempt }))];
  // Attempt k had k before it: the highest number seen bounds the attempts that ran.
  const known = numbered.reduce((most, r) => Math.max(most, (r.attempt ?? -1) + 1), 0);
  const unrecorded = Math.max(0, known - numbered.length);
  return {
    rank,
    starts,
    failedStarts: failed.filter((f) => f.startedAt).map((f) => Date.parse(f.startedAt!)),
    end,
    unrecorded,
    // Records without a number (older ones) cannot say whether attempts are missing: their history can.
    needsHistory: starts.length > 0 || Boolean(end.caught) || unrecorded > 0 || failed.some((f) => f.attempt === undefined),
  };
}

/**
 * The invocations whose runtime died, billed. Where the rank's child execution's history is read
 * (ranks with a death, a caught error, or attempts the attempt numbers show left no record), it is
 * the truth: each failed invocation in it that no handler recorded as failed is a crash, billed
 * from its start record (or, with none written, from its task's start) up to when the state
 * machine saw it fail. Histories are read HISTORY_READ_CONCURRENCY at a time until the deadline,
 * those whose attempts nothing else shows first. Elsewhere each start record no handler completed
 * is billed up to the earliest known moment after the death: the rank's next attempt's start, else
 * its end, else now; never past the function's timeout. Every bound is at or after the death, so a
 * crash is never billed less than Lambda billed it; attempts known only by number, without their
 * history, are counted and not billed.
 */
export async function billCrashes(started: AttemptStart[], context: CrashContext): Promise<CrashBill> {
  const troubled = new Set([
    ...started.map((s) => s.rank),
    ...context.failed.map((f) => f.rank),
    ...[...context.ends].filter(([, end]) => end.caught).map(([rank]) => rank),
    ...context.results.filter((r) => (r?.attempt ?? 0) > 0).map((r) => r!.rank),
  ]);
  const ranks = [...troubled].map((rank) => rankAttempts(rank, started, context));
  // Attempts without a record first: only their history shows them. A death with a record has a bound without it.
  const wanted = ranks
    .filter((r) => r.needsHistory)
    .sort(
      (a, b) => Number(b.unrecorded > 0 || Boolean(b.end.caught)) - Number(a.unrecorded > 0 || Boolean(a.end.caught)) || a.rank - b.rank,
    );
  const arns = wanted.flatMap((r) => (r.end.executionArn ? [r.end.executionArn] : []));
  const histories = context.failuresOf
    ? await readHistories(arns, context.failuresOf, { concurrency: context.historyConcurrency, deadline: context.historyDeadline })
    : undefined;

  const crashed: CrashedAttempt[] = [];
  let historiesNotRead = 0;
  let attemptsNotBilled = 0;
  for (const { rank, starts, failedStarts, end, unrecorded, needsHistory } of ranks) {
    const item = context.items.find((i) => i.rank === rank);
    const reads = noRequests();
    reads.s3Get = (item?.partitions ?? []).reduce((n, p) => n + readRequestsBound(p.bytes), 0);
    const crash = (start: Partial<AttemptStart>, from: number, to: number, bound: CrashBilledUntil, error: string) => {
      // Lambda bills no further than the function's timeout.
      const deadline = start.deadline ? Date.parse(start.deadline) : Infinity;
      const [billedUntil, until] = to > deadline ? (['timeout', deadline] as const) : ([bound, to] as const);
      crashed.push({
        rank,
        requestId: start.requestId ?? '-',
        startedAt: new Date(from).toISOString(),
        memoryMb: start.memoryMb ?? context.memoryMb,
        initMs: start.initMs ?? 0,
        durationMs: Math.max(0, until - from),
        billedUntil,
        error,
        requests: { ...reads },
      });
    };

    const arn = end.executionArn;
    const failures = arn ? histories?.read.get(arn) : undefined;
    if (failures) {
      // In time order, each record claims the first failure at or after its start; a failure none claims died before writing one.
      const records = [
        ...starts.map((start) => ({ at: Date.parse(start.startedAt), start })),
        ...failedStarts.map((at) => ({ at, start: undefined })),
      ].sort((a, b) => a.at - b.at);
      const claimed = new Map<TaskFailure, { start?: AttemptStart }>();
      for (const record of records) {
        const failure = failures.find((f) => f.at >= record.at && !claimed.has(f));
        if (failure) claimed.set(failure, { start: record.start });
        else if (record.start)
          crash(
            record.start,
            record.at,
            context.now,
            'summary',
            'the runtime ended without a reply; its history shows no failure after it started',
          );
      }
      for (const failure of failures) {
        const owner = claimed.get(failure);
        if (owner?.start) crash(owner.start, Date.parse(owner.start.startedAt), failure.at, 'failure', failure.error);
        else if (!owner && failure.startedAt !== undefined) crash({}, failure.startedAt, failure.at, 'failure', failure.error);
      }
      continue;
    }
    const failedRead = arn ? histories?.failed.get(arn) : undefined;
    const unknown = failedRead
      ? `its history could not be read: ${failedRead}`
      : arn && histories?.unread.has(arn)
        ? "its history was not read: the summary's deadline came first"
        : 'its child execution is not known';
    if (needsHistory && context.failuresOf) {
      historiesNotRead++;
      attemptsNotBilled += unrecorded;
    }
    // No history: each start record billed up to the next attempt, the rank's end, or now.
    const attemptStarts = [
      ...starts.map((s) => Date.parse(s.startedAt)),
      ...failedStarts,
      ...context.results.filter((r) => r?.rank === rank && r.started_at).map((r) => Date.parse(r!.started_at!)),
    ].sort((a, b) => a - b);
    const lastStart = attemptStarts[attemptStarts.length - 1];
    for (const s of starts) {
      const from = Date.parse(s.startedAt);
      const candidates: [CrashBilledUntil, number | undefined][] = [
        ['next attempt', attemptStarts.find((t) => t > from)],
        ['rank end', end.stoppedAt],
        ['summary', context.now],
      ];
      const [billedUntil, until] = candidates.find(([, t]) => t !== undefined) as [CrashBilledUntil, number];
      // The rank's last attempt, when the Map caught its error: that is the error it saw.
      const caught = from === lastStart && end.caught ? stateErrorText(end.caught) : undefined;
      crash(s, from, until, billedUntil, caught ?? `the runtime ended without a reply; the state machine's error is unknown (${unknown})`);
    }
  }
  return {
    crashed: crashed.sort((a, b) => a.rank - b.rank || a.startedAt.localeCompare(b.startedAt)),
    historiesNotRead,
    attemptsNotBilled,
  };
}

/** What a run's failed and crashed attempts add to its bill: their invocations, their requests, and every start record's PUT. */
export function attemptsUsage(
  failed: FailedAttempt[],
  crashed: CrashedAttempt[],
  records: number,
): { invocations: LambdaInvocation[]; requests: RequestCounts[] } {
  const invocations = [...failed, ...crashed].map(({ memoryMb, durationMs, initMs }) => ({ memoryMb, durationMs, initMs }));
  const startRecords: RequestCounts = { s3Get: 0, s3Put: records, s3List: 0, dynamoWrite: 0, dynamoRead: 0 };
  return { invocations, requests: [...failed.map((a) => a.requests), ...crashed.map((a) => a.requests), startRecords] };
}

/**
 * Retries of the ranks' task, each a state transition: a rank's attempts less one. Attempt k had k
 * before it, failed or refused by Lambda (a throttled attempt leaves no record), so the highest
 * attempt number a rank's result or records carry counts them all; records without a number (older
 * ones, an attempt found only in a history) count one attempt each, never twice: the larger of the two.
 */
export function rankRetries(results: RankResult[], failed: FailedAttempt[], crashed: CrashedAttempt[]): number {
  const ranks = new Map<number, { highest: number; recorded: number }>();
  const see = (rank: number, attempt: number | undefined) => {
    const seen = ranks.get(rank) ?? { highest: -1, recorded: 0 };
    ranks.set(rank, { highest: Math.max(seen.highest, attempt ?? -1), recorded: seen.recorded + 1 });
  };
  for (const r of results) see(r.rank, r.attempt);
  for (const f of failed) see(f.rank, f.attempt);
  for (const c of crashed) see(c.rank, undefined);
  return [...ranks.values()].reduce((sum, { highest, recorded }) => sum + Math.max(highest + 1, recorded) - 1, 0);
}
