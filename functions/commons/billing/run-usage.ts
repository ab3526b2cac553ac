import type { RequestCounts } from '../aws/clients';

/**
 * What a run asks of Step Functions, and the requests that no function's counter sees, from the
 * run's shape: the summarizer bills a finished run with it, the cost model forecasts one with it.
 */
export interface RunShape {
  /** Ranks: one child execution of the Distributed Map each. */
  ranks: number;
  /** Retries of the ranks' task, inside their child executions: after a failed attempt and after Lambda's refusal (throttling) alike. */
  retries: number;
  /** Ranks whose failure the Map's Catch recorded. */
  caughtRanks: number;
  /** The run ended on the failure path (RecordFailure, RunFailed) rather than through Summarize. */
  failurePath: boolean;
  /** Result files the Map's ResultWriter wrote; 0 when it wrote none. */
  mapResultFiles: number;
}

/**
 * State transitions Step Functions bills (https://aws.amazon.com/step-functions/pricing/): the main
 * workflow's Map and Summarize (and the failure path's two states); for each child execution of the
 * Distributed Map, one for its start ("you'll be charged one state transition for each child
 * workflow execution that the Distributed Map state starts",
 * https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html), its task, each
 * retry, and the state that records a caught failure.
 */
export const stateTransitions = (run: RunShape): number => 2 + (run.failurePath ? 2 : 0) + 2 * run.ranks + run.retries + run.caughtRanks;

/**
 * Requests no counter in CAI's processes sees: the Map's ItemReader GET of the manifest; the
 * ResultWriter's PUTs of its files and its manifest; the summarizer's last three PUTs (combined data
 * twice, summary) and its record update; the initializer's update after its own count.
 */
export const uncountedRequests = (
  run: RunShape,
  /**
   * Write units of the run record's two writes among them (the initializer's update after its count,
   * the summarizer's last): each by the item's size, for the table and its indexes (billing/dynamo-units.ts).
   */
  recordWriteUnits: number,
): RequestCounts => ({
  s3Get: 1,
  s3Put: 3 + (run.mapResultFiles ? run.mapResultFiles + 1 : 0),
  s3List: 0,
  dynamoWrite: recordWriteUnits,
  dynamoRead: 0,
});
