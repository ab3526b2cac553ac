import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { dynamoClient, s3Client, sfnClient } from '../commons/aws/clients';
import { readConfig } from '../commons/aws/config';
import { lambdaHandler, logger, markInitDone, metrics, startInvocation } from '../commons/aws/invocation';
import type { ExecutionStatusChange, SummarizeInput } from '../commons/run/contracts';
import { RunStore } from '../commons/run/run-store';
import { isExecutionStatusChange, recordEndedExecution, summarizeRun } from '../commons/run/summarize';

const config = readConfig();
const runs = new RunStore(dynamoClient(), config.RUNS_TABLE);
markInitDone();

type Reply = { runId: string; status: string };

/** After the Map (or on the failure path): gather results, cost and accuracy; record the run. */
export const handler = lambdaHandler(async (input: SummarizeInput | ExecutionStatusChange, lambda): Promise<Reply> => {
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const context = {
    // Lambda ends the invocation at its timeout: the summary's history reads stop in time to write it.
    deadline: Date.now() + lambda.getRemainingTimeInMillis(),
    s3: s3Client(),
    sfn: sfnClient(),
    inferenceMemoryMb: config.INFERENCE_MEMORY_MB,
    inferenceEphemeralMb: config.INFERENCE_EPHEMERAL_MB,
    runs,
    region: config.AWS_REGION,
    architecture: config.ARCHITECTURE,
    invocation: clock.bill,
  };
  if (isExecutionStatusChange(input)) {
    // The state machine's status rule: an execution ended without reaching Summarize or RecordFailure.
    const run = await recordEndedExecution(input, context);
    logger.info('execution ended', { execution: input.detail.name, status: input.detail.status, run: run?.status });
    return { runId: run?.runId ?? input.detail.name, status: run?.status ?? 'UNKNOWN' };
  }
  const record = await summarizeRun(input, context);
  metrics.addMetric(`Runs${record.status[0]}${record.status.slice(1).toLowerCase()}`, MetricUnit.Count, 1);
  // A run's total, named apart from the ranks' Samples, which the dashboard draws as objects/s: one name would count each object twice.
  metrics.addMetric('RunSamples', MetricUnit.Count, record.samples ?? 0);
  if (record.cost) metrics.addMetric('RunCostMicroUsd', MetricUnit.Count, Math.round(record.cost.totalUsd * 1e6));
  logger.info('run summarized', { runId: input.runId, status: record.status, samples: record.samples });
  return { runId: input.runId, status: record.status };
});
