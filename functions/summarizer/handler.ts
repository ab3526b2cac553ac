import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { dynamoClient, s3Client } from '../commons/aws/clients';
import { readConfig } from '../commons/aws/config';
import { lambdaHandler, logger, markInitDone, metrics, startInvocation } from '../commons/aws/invocation';
import type { SummarizeInput } from '../commons/run/contracts';
import { RunStore } from '../commons/run/run-store';
import { summarizeRun } from '../commons/run/summary';

const config = readConfig();
const runs = new RunStore(dynamoClient(), config.RUNS_TABLE);
markInitDone();

/** After the Map (or on the failure path): gather results, cost and accuracy; record the run. */
export const handler = lambdaHandler(async (input: SummarizeInput): Promise<{ runId: string; status: string }> => {
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const record = await summarizeRun(input, {
    s3: s3Client(),
    runs,
    region: config.AWS_REGION,
    architecture: config.ARCHITECTURE,
    invocation: clock.bill,
  });
  metrics.addMetric(`Runs${record.status[0]}${record.status.slice(1).toLowerCase()}`, MetricUnit.Count, 1);
  metrics.addMetric('Samples', MetricUnit.Count, record.samples ?? 0);
  if (record.cost) metrics.addMetric('RunCostMicroUsd', MetricUnit.Count, Math.round(record.cost.totalUsd * 1e6));
  logger.info('run summarized', { runId: input.runId, status: record.status, samples: record.samples });
  return { runId: input.runId, status: record.status };
});
