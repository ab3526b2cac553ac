import { billRun, type CostBreakdown } from '../functions/commons/billing/cost';
import type { RunRecord } from '../functions/commons/run/run-store';
import type { BilledInvocation } from './lambda-runtime';

/**
 * A run's cost with Lambda billed from the emulator's REPORT lines (what Lambda itself bills)
 * rather than from the durations the functions measure of themselves (what the summarizer can
 * see on AWS); transitions and requests are the run record's.
 */
export function costBilledByLambda(reports: BilledInvocation[], record: RunRecord): CostBreakdown | undefined {
  const recorded = record.cost;
  if (!recorded) return undefined;
  return billRun(
    {
      invocations: reports.map(({ memoryMb, durationMs, initMs }) => ({ memoryMb, durationMs, initMs })),
      stateTransitions: recorded.stepFunctions.transitions,
      s3: { get: recorded.s3.get, put: recorded.s3.put, list: recorded.s3.list },
      dynamo: { writes: recorded.dynamodb.writes, reads: recorded.dynamodb.reads },
    },
    recorded.region,
    recorded.architecture,
  );
}
