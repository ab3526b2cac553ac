import middy from '@middy/core';
import { dynamoClient, s3Client } from '../commons/clients';
import { readConfig } from '../commons/config';
import { logger, markInitDone, startInvocation } from '../commons/lambda';
import { RunStore } from '../commons/run-store';
import { summarizeRun, type SummarizeInput } from '../commons/summary';

const config = readConfig();
const runs = new RunStore(dynamoClient(), config.RUNS_TABLE);
markInitDone();

/** After the Map (or on the failure path): gather results, cost and accuracy; record the run. */
export const handler = middy(async (input: SummarizeInput): Promise<{ runId: string; status: string }> => {
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const record = await summarizeRun(input, {
    s3: s3Client(),
    runs,
    region: config.AWS_REGION,
    architecture: config.ARCHITECTURE,
    invocation: clock.bill,
  });
  logger.info('run summarized', { runId: input.runId, status: record.status, samples: record.samples });
  return { runId: input.runId, status: record.status };
});
