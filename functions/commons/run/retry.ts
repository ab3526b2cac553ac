import { paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { parseS3Uri } from '../aws/s3-uri';
import { CaiError } from '../errors';
import type { MapRunResult, ModelObject, PartitionFailure, PartitionObject, Payload, RankItem, RankResult } from './contracts';
import { parsePayload } from './payload';
import type { RunRecord, RunStore } from './run-store';
import { partitionName } from './partition-name';
import { readJsonObject } from '../aws/s3-json';

/**
 * A retry (a payload `{"retry_of": "<runId>"}`, or `cai runs retry`) runs again only what an
 * earlier run did not finish: its failed partitions and the partitions of its ranks that left no
 * result, read from its outputs (summary.json's failures, the manifest's ranks), never by listing
 * the data again; with the earlier run's payload and exactly its model's version (the ETag its
 * manifest holds). An earlier run whose every partition has predictions but whose execution failed
 * after them (its summary failed) is completed by summarizing it again, running nothing.
 */

/** What a retry cannot do, in one line: recorded on the retry's run, or said by `cai runs retry`. */
export class RetryRefusal extends CaiError {}

export type RetryPlan =
  /** Partitions to run again, with the earlier run's payload and model. */
  | { kind: 'rerun'; earlier: RunRecord; payload: Payload; partitions: PartitionObject[]; model?: ModelObject }
  /** Nothing to run again: the earlier run is summarized again over its rank results. */
  | { kind: 'resummarize'; earlier: RunRecord; payload: Payload; mapRun?: MapRunResult };

/** Rank results written under the run's ranks/ folder, by rank. */
/** An s3:// object parsed as JSON, or undefined when there is none. */
const readJson = <T>(s3: S3Client, uri: string) => {
  const { bucket, key } = parseS3Uri(uri);
  return readJsonObject<T>(s3, bucket, key);
};

async function writtenRanks(s3: S3Client, rankResults: string): Promise<Set<number>> {
  const { bucket, key } = parseS3Uri(rankResults);
  const ranks = new Set<number>();
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: key })) {
    for (const object of page.Contents ?? []) {
      const match = /(\d+)\.json$/.exec(object.Key ?? '');
      if (match) ranks.add(Number(match[1]));
    }
  }
  return ranks;
}

/**
 * The keys of the earlier run's partitions without predictions: summary.json's failures (all of
 * them, the ranks that left no result included), or, with no summary (the execution never started,
 * or nothing summarized it), the partitions of ranks with no result and the failures of those with one.
 */
async function unfinishedKeys(s3: S3Client, earlier: RunRecord, items: RankItem[]): Promise<Set<string>> {
  const outputs = earlier.outputs!;
  const summary = await readJson<{ failures?: PartitionFailure[] }>(s3, outputs.summary);
  if (summary?.failures) return new Set(summary.failures.map((f) => f.partition));
  const written = await writtenRanks(s3, outputs.rankResults);
  const keys = new Set<string>();
  const limit = pLimit(32);
  await Promise.all(
    items.map((item) =>
      limit(async () => {
        const result = written.has(item.rank) ? await readJson<RankResult>(s3, `${outputs.rankResults}${item.rank}.json`) : undefined;
        for (const key of result ? result.failures.map((f) => f.partition) : item.partitions.map(partitionName)) keys.add(key);
      }),
    ),
  );
  return keys;
}

/** The Map's outcomes as the record names them (outputs.mapResults, a folder holding the ResultWriter's manifest.json). */
function mapRunOf(earlier: RunRecord): MapRunResult | undefined {
  if (!earlier.outputs?.mapResults) return undefined;
  const { bucket, key } = parseS3Uri(earlier.outputs.mapResults);
  return { MapRunArn: '', ResultWriterDetails: { Bucket: bucket, Key: `${key}manifest.json` } };
}

/** The payload a run ran: its own, or for a retry (`{"retry_of": …}`) that of the first run it goes back to. */
async function payloadOf(run: RunRecord, runs: RunStore): Promise<Payload> {
  const seen = new Set<string>();
  for (let record: RunRecord | undefined = run; record && !seen.has(record.runId); record = await runs.get(record.retryOf ?? '')) {
    seen.add(record.runId);
    if (!record.retryOf) {
      try {
        return parsePayload(record.payload).payload;
      } catch (error) {
        throw new RetryRefusal(`run ${record.runId}'s payload no longer reads as a payload: upload a corrected payload.json instead`, {
          cause: error,
        });
      }
    }
  }
  throw new RetryRefusal(`run ${run.runId} retries a run no longer in table ${runs.table}: upload its payload.json again instead`);
}

/** What a retry of run `runId` would do, or a RetryRefusal saying why it cannot. */
export async function planRetry(runId: string, runs: RunStore, s3: S3Client): Promise<RetryPlan> {
  const earlier = await runs.get(runId);
  if (!earlier) throw new RetryRefusal(`no run ${runId} in table ${runs.table}`);
  if (earlier.status === 'RUNNING') throw new RetryRefusal(`run ${runId} is still RUNNING: retry it when it has ended`);
  // SUCCEEDED is no failed partition and an execution that succeeded: nothing of it is left to do.
  if (earlier.status === 'SUCCEEDED') {
    const done = earlier.partitions ? `every one of its partitions (${earlier.partitions}) has its predictions` : 'it ran no partition';
    throw new RetryRefusal(`run ${runId} is SUCCEEDED: ${done}; nothing to retry`);
  }
  if (earlier.retriedBy) throw new RetryRefusal(`run ${runId} was retried by run ${earlier.retriedBy}: retry that one`);
  if (!earlier.outputs) {
    throw new RetryRefusal(
      `run ${runId} never started (${earlier.error ?? 'refused at validation'}): nothing of it to retry; upload a corrected payload.json instead`,
    );
  }
  const payload = await payloadOf(earlier, runs);
  const items = (await readJson<RankItem[]>(s3, earlier.outputs.manifest)) ?? [];
  const unfinished = await unfinishedKeys(s3, earlier, items);
  const partitions = items.flatMap((item) => item.partitions).filter((p) => unfinished.has(partitionName(p)));
  if (partitions.length > 0) return { kind: 'rerun', earlier, payload, partitions, model: items[0]?.model };
  if (earlier.status === 'FAILED' && items.length > 0) return { kind: 'resummarize', earlier, payload, mapRun: mapRunOf(earlier) };
  throw new RetryRefusal(`run ${runId} is ${earlier.status} and left no partition to run again: nothing to retry`);
}
