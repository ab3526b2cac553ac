import type { RunRecord, RunStore } from '../functions/commons/run/run-store';

/**
 * A run and its retries (retryOf / retriedBy on the records), oldest first, and what they gave
 * together: each retry ran only what the one before it left, so their partitions are disjoint and
 * the chain's predictions, partitions with predictions and cost are sums over its runs.
 */
export interface RunChain {
  runs: RunRecord[];
  /** The first run's partitions: the dataset the chain covers. */
  partitions: number;
  /** Partitions with predictions in some run of the chain. */
  predicted: number;
  predictions: number;
  costUsd: number;
}

/** The chain a run belongs to, read from the runs table; undefined for a run never retried and no retry. */
export async function runChain(store: RunStore, run: RunRecord): Promise<RunChain | undefined> {
  if (!run.retryOf && !run.retriedBy) return undefined;
  let first = run;
  const back = new Set([run.runId]);
  for (let earlier = run.retryOf; earlier && !back.has(earlier);) {
    const record = await store.get(earlier);
    if (!record) break;
    back.add(record.runId);
    first = record;
    earlier = record.retryOf;
  }
  const runs = [first];
  for (let later = first.retriedBy; later && !runs.some((r) => r.runId === later);) {
    const record = later === run.runId ? run : await store.get(later);
    if (!record) break;
    runs.push(record);
    later = record.retriedBy;
  }
  const sum = (f: (r: RunRecord) => number) => runs.reduce((s, r) => s + f(r), 0);
  return {
    runs,
    partitions: first.partitions ?? 0,
    predicted: sum((r) => (r.status === 'RUNNING' ? 0 : (r.partitions ?? 0) - (r.failedPartitions ?? 0))),
    predictions: sum((r) => r.predictions ?? 0),
    costUsd: sum((r) => r.cost?.totalUsd ?? 0),
  };
}

/** The chain in lines, for `cai runs show`. */
export function chainLines(chain: RunChain): string[] {
  const usd = chain.costUsd < 0.01 ? chain.costUsd.toExponential(2) : chain.costUsd.toFixed(4);
  return [
    `  retries     ${chain.runs.map((r) => `${r.runId} (${r.status})`).join(' → ')}`,
    `  together    ${chain.predicted} of ${chain.partitions} partitions with predictions, ${chain.predictions} predictions, $${usd} in all`,
    ...chain.runs.filter((r) => r.outputs && (r.predictions ?? 0) > 0).map((r) => `              predictions ${r.outputs!.predictions}`),
  ];
}
