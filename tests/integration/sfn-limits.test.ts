import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { createS3Client, createSfnClient } from '../../functions/commons/aws/clients';
import { type HistoryReads, readHistories, taskFailures } from '../../functions/commons/run/attempts';
import type { MapChildExecution, MapResultManifest, MapRunResult, RankInvocation } from '../../functions/commons/run/contracts';
import { MAX_RANK_ITEM_BYTES } from '../../functions/commons/run/rank-plan';
import { type LocalS3, startLocalS3 } from '../../local/s3-server';
import { STATE_PAYLOAD_LIMIT_BYTES } from '../../functions/commons/aws/limits';
import { type LocalSfnOptions, LocalStepFunctions, type TaskHandler } from '../../local/sfn-server';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

/**
 * The local Step Functions holds AWS's limits: 256 KiB for a state's input or output and for a
 * Map item, failing the execution with States.DataLimitExceeded past any Catch; and the deployed
 * definition, whose Map writes rank outcomes to S3 (ResultWriter, emulated as AWS writes it), keeps
 * its state small at thousands of ranks, failures with long causes included. Tasks are stand-ins.
 */
let s3: LocalS3;
const client = () => createS3Client({ ...process.env, CAI_S3_ENDPOINT: s3.endpoint });
beforeAll(async () => {
  s3 = await startLocalS3(join(tempFolder('cai-sfn-'), 's3'));
  await client().send(new CreateBucketCommand({ Bucket: 'runs' }));
});
afterAll(() => s3.close());

async function execute(
  definition: object,
  items: unknown[],
  tasks: Record<string, TaskHandler>,
  name: string,
  { historyRate, ended }: { historyRate?: LocalSfnOptions['historyRate']; ended?: (sfn: LocalStepFunctions) => Promise<void> } = {},
) {
  await client().send(new PutObjectCommand({ Bucket: 'runs', Key: `${name}/manifest.json`, Body: JSON.stringify(items) }));
  const sfn = new LocalStepFunctions({
    definition: definition as never,
    s3: client(),
    tasks,
    retryIntervalOverrides: { InferRank: 0, Summarize: 0, RecordFailure: 0 },
    historyRate,
  });
  await sfn.start();
  try {
    const api = new SFNClient({ region: 'us-east-1', endpoint: sfn.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const input = {
      runId: name,
      manifest: { Bucket: 'runs', Key: `${name}/manifest.json` },
      resultBucket: 'runs',
      resultPath: name,
      maxConcurrency: 40,
    };
    const { executionArn } = await api.send(
      new StartExecutionCommand({ stateMachineArn: sfn.stateMachineArn, name, input: JSON.stringify(input) }),
    );
    for (;;) {
      const described = await api.send(new DescribeExecutionCommand({ executionArn }));
      if (described.status !== 'RUNNING') {
        await ended?.(sfn);
        return described;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await sfn.close();
  }
}

// The longest function ARN Lambda's Invoke takes (170 characters): the task's parameters around an item at their largest.
const INFERENCE_ARN = 'arn:aws:lambda:us-east-1:000000000000:function:'.padEnd(170, 'i');
const deployed = JSON.parse(
  readFileSync(join(ROOT, 'statemachine', 'cai.asl.json'), 'utf8')
    .replaceAll('${InferenceFunctionArn}', INFERENCE_ARN)
    .replaceAll('${SummarizerFunctionArn}', 'summarizer')
    .replaceAll('${ControlBucketName}', 'runs')
    .replaceAll('${Partition}', 'aws'),
);
const rankItems = (n: number) =>
  Array.from({ length: n }, (_, rank) => ({ runId: 'r', rank, partitions: [{ key: `p/${rank + 1}.pt`, bytes: 1 }] }));
const lambda = (payload: unknown) => ({ StatusCode: 200, Payload: payload });

test('the deployed definition keeps its state small at 3,000 ranks, 300 failing with long causes: outcomes go to S3', async () => {
  const summarized: unknown[] = [];
  const failed = new Set(Array.from({ length: 300 }, (_, i) => i * 10));
  const tasks: Record<string, TaskHandler> = {
    InferRank: async ({ Payload }) => {
      const { rank } = (Payload as RankInvocation).item;
      if (failed.has(rank)) throw Object.assign(new Error(`rank ${rank} failed: ${'x'.repeat(2000)}`), { name: 'RankError' });
      return lambda({ rank, status: 'SUCCEEDED' });
    },
    Summarize: async ({ Payload }) => {
      summarized.push(Payload);
      return lambda({ runId: 'big', status: 'PARTIAL' });
    },
    RecordFailure: async () => lambda({}),
  };
  const result = await execute(deployed, rankItems(3000), tasks, 'big');
  expect([result.status, result.cause]).toEqual(['SUCCEEDED', undefined]);
  expect(summarized).toHaveLength(1);
  const input = summarized[0] as { mapRun: MapRunResult };
  expect(Buffer.byteLength(JSON.stringify(input))).toBeLessThan(1024); // constant-size
  const read = async <T>(key: string) =>
    JSON.parse(await (await client().send(new GetObjectCommand({ Bucket: 'runs', Key: key }))).Body!.transformToString()) as T;
  const manifest = await read<MapResultManifest>(input.mapRun.ResultWriterDetails.Key);
  expect(input.mapRun.ResultWriterDetails.Key).toMatch(/^map-results\/[0-9a-f-]{36}\/manifest\.json$/);
  expect(manifest).toMatchObject({
    DestinationBucket: 'runs',
    MapRunArn: input.mapRun.MapRunArn,
    ResultFiles: { FAILED: [], PENDING: [] },
  });
  const children = (await Promise.all(manifest.ResultFiles.SUCCEEDED.map((f) => read<MapChildExecution[]>(f.Key)))).flat();
  expect(children).toHaveLength(3000);
  const outputs = children.map((c) => JSON.parse(c.Output!));
  expect(outputs.filter((o) => o.status === 'FAILED')).toHaveLength(300);
  expect(outputs.find((o) => o.status === 'FAILED').error.Cause).toMatch(/rank \d+ failed: x{2000}/);
});

test('a Map that collects its results into the state fails the execution past 256 KiB, and no Catch runs', async () => {
  const collecting = structuredClone(deployed);
  delete collecting.States.Infer.ResultWriter;
  collecting.States.Infer.ResultPath = '$.ranks'; // the definition before ResultWriter
  delete collecting.States.Summarize.Parameters.Payload['mapRun.$'];
  collecting.States.Summarize.Parameters.Payload['ranks.$'] = '$.ranks';
  let recorded = 0;
  const tasks: Record<string, TaskHandler> = {
    InferRank: async ({ Payload }) => lambda({ rank: (Payload as RankInvocation).item.rank, status: 'SUCCEEDED', note: 'y'.repeat(100) }),
    Summarize: async () => lambda({ runId: 'r', status: 'SUCCEEDED' }),
    RecordFailure: async () => {
      recorded++;
      return lambda({});
    },
  };
  // 3,000 outcomes of ~40 bytes each (the ResultSelector keeps rank and status): ~120 KB fits ...
  const fits = await execute(collecting, rankItems(3000), tasks, 'fits');
  expect([fits.status, fits.cause]).toEqual(['SUCCEEDED', undefined]);
  // ... 10,240 (the seed's 1 TB) do not.
  const over = await execute(collecting, rankItems(10_240), tasks, 'over');
  expect(over.status).toBe('FAILED');
  expect(over.error).toBe('States.DataLimitExceeded');
  // Seen at the Map's output or, when the emulator sees it first, as the next task's input.
  expect(over.cause).toMatch(
    /^the (output of the Infer|input of the Summarize) state has a size exceeding the maximum number of bytes service limit \(262144\)$/,
  );
  expect(recorded).toBe(0); // States.ALL does not catch it: the run would stay RUNNING but for the status rule
});

test('a Map item over 256 KiB fails the execution before any rank runs', async () => {
  let ran = 0;
  const tasks: Record<string, TaskHandler> = {
    InferRank: async () => {
      ran++;
      return lambda({ rank: 0, status: 'SUCCEEDED' });
    },
    Summarize: async () => lambda({}),
    RecordFailure: async () => lambda({}),
  };
  const huge = [
    { runId: 'r', rank: 0, partitions: Array.from({ length: 6000 }, (_, i) => ({ key: `a/long/prefix/of/partitions/${i}.pt`, bytes: 1 })) },
  ];
  expect(Buffer.byteLength(JSON.stringify(huge[0]))).toBeGreaterThan(STATE_PAYLOAD_LIMIT_BYTES);
  const result = await execute(deployed, huge, tasks, 'huge-item');
  expect(result).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
  expect(result.cause).toMatch(/^item 0 of the Infer state has a size exceeding/);
  expect(ran).toBe(0);
});

/** An item of `bytes` bytes, exactly: partitions, the last one's key padded. */
function itemOf(bytes: number) {
  const partitions: { key: string; bytes: number }[] = [];
  const item = { runId: 'r', rank: 0, partitions };
  for (let i = 0; Buffer.byteLength(JSON.stringify(item)) < bytes - 100; i++)
    partitions.push({ key: `a/long/prefix/of/partitions/${i}.pt`, bytes: 1 });
  partitions.at(-1)!.key += 'k'.repeat(bytes - Buffer.byteLength(JSON.stringify(item)));
  expect(Buffer.byteLength(JSON.stringify(item))).toBe(bytes);
  return item;
}

test("the largest item the planner allows reaches its rank: the task's parameters around it stay within 256 KiB, attempt number included", async () => {
  const given: RankInvocation[] = [];
  const tasks: Record<string, TaskHandler> = {
    InferRank: async ({ FunctionName, Payload }) => {
      expect(FunctionName).toBe(INFERENCE_ARN);
      given.push(Payload as RankInvocation);
      return lambda({ rank: 0, status: 'SUCCEEDED' });
    },
    Summarize: async () => lambda({ runId: 'r', status: 'SUCCEEDED' }),
    RecordFailure: async () => lambda({}),
  };
  const largest = itemOf(MAX_RANK_ITEM_BYTES);
  const result = await execute(deployed, [largest], tasks, 'largest-item');
  expect([result.status, result.cause]).toEqual(['SUCCEEDED', undefined]);
  expect(given).toEqual([{ item: largest, attempt: 0 }]);
  // The control: an item the size the planner once allowed (256 KiB less 100 bytes) passes as a Map item, not as the task's parameters.
  const over = await execute(deployed, [itemOf(STATE_PAYLOAD_LIMIT_BYTES - 100)], tasks, 'item-over-task');
  expect([over.status, over.error]).toEqual(['FAILED', 'States.DataLimitExceeded']);
  expect(over.cause).toMatch(/^the input of the InferRank state has a size exceeding/);
});

test('$$.State.RetryCount reaches each rank: 0 on its first attempt, 1 on its retry, counted per item', async () => {
  const given: RankInvocation[] = [];
  const summarized: unknown[] = [];
  const tasks: Record<string, TaskHandler> = {
    InferRank: async ({ Payload }) => {
      const invocation = Payload as RankInvocation;
      given.push(invocation);
      // Rank 1's first attempt dies; the state machine's retry (States.TaskFailed) runs it again.
      if (invocation.item.rank === 1 && invocation.attempt === 0) throw Object.assign(new Error('{}'), { name: 'Runtime.ExitError' });
      return lambda({ rank: invocation.item.rank, status: 'SUCCEEDED' });
    },
    Summarize: async ({ Payload }) => {
      summarized.push(Payload);
      return lambda({ runId: 'r', status: 'SUCCEEDED' });
    },
    RecordFailure: async () => lambda({}),
  };
  const items = rankItems(3);
  const result = await execute(deployed, items, tasks, 'retry-count');
  expect([result.status, result.cause]).toEqual(['SUCCEEDED', undefined]);
  expect(given.sort((a, b) => a.item.rank - b.item.rank || a.attempt - b.attempt)).toEqual([
    { item: items[0], attempt: 0 },
    { item: items[1], attempt: 0 },
    { item: items[1], attempt: 1 },
    { item: items[2], attempt: 0 },
  ]);
  // What the ResultWriter wrote holds the items as the manifest has them: the adapter's marks are not part of the state.
  const { mapRun } = summarized[0] as { mapRun: MapRunResult };
  const read = async <T>(key: string) =>
    JSON.parse(await (await client().send(new GetObjectCommand({ Bucket: 'runs', Key: key }))).Body!.transformToString()) as T;
  const manifest = await read<MapResultManifest>(mapRun.ResultWriterDetails.Key);
  const children = await read<MapChildExecution[]>(manifest.ResultFiles.SUCCEEDED[0].Key);
  expect(children.map((c) => JSON.parse(c.Input))).toEqual(items);
  expect(children.map((c) => JSON.parse(c.Output!))).toEqual(items.map(({ rank }) => ({ rank, status: 'SUCCEEDED' })));

  // A Context path the local interpreter does not hold is refused, not run with a value made up.
  const elsewhere = structuredClone(deployed);
  elsewhere.States.Summarize.Parameters.Payload['entered.$'] = '$$.State.EnteredTime';
  const refused = await execute(elsewhere, items, tasks, 'state-elsewhere');
  expect(refused.status).toBe('FAILED');
  expect(refused.cause).toMatch(
    /emulates \$\$\.State\.RetryCount only in the Parameters of a Task of a Distributed Map.*\$\$\.State\.EnteredTime/,
  );
});

test("GetExecutionHistory past its token bucket answers ThrottlingException; the summary's client retries through it, reading every history", async () => {
  // Every rank's first attempt dies, so each child execution's history has a failure to read.
  const tasks: Record<string, TaskHandler> = {
    InferRank: async ({ Payload }) => {
      const { item, attempt } = Payload as RankInvocation;
      if (attempt === 0) throw Object.assign(new Error('{}'), { name: 'Runtime.ExitError' });
      return lambda({ rank: item.rank, status: 'SUCCEEDED' });
    },
    Summarize: async ({ Payload }) => {
      mapRun = (Payload as { mapRun: MapRunResult }).mapRun;
      return lambda({ runId: 'r', status: 'SUCCEEDED' });
    },
    RecordFailure: async () => lambda({}),
  };
  // What the summarizer does: the children from the Map's results, their histories read.
  let mapRun: MapRunResult | undefined;
  const histories = async (reader: SFNClient) => {
    const read = async <T>(key: string) =>
      JSON.parse(await (await client().send(new GetObjectCommand({ Bucket: 'runs', Key: key }))).Body!.transformToString()) as T;
    const manifest = await read<MapResultManifest>(mapRun!.ResultWriterDetails.Key);
    const children = await read<MapChildExecution[]>(manifest.ResultFiles.SUCCEEDED[0].Key);
    return readHistories(
      children.map((c) => c.ExecutionArn),
      (arn, signal) => taskFailures(reader, arn, signal),
    );
  };
  // A bucket of 5 calls refilled at AWS's 20 a second, for 200 histories read 10 at a time.
  const historyRate = { bucket: 5, refillPerSecond: 20 };
  let reads: HistoryReads | undefined;
  let throttled = 0;
  await execute(deployed, rankItems(200), tasks, 'throttled-histories', {
    historyRate,
    ended: async (sfn) => {
      reads = await histories(createSfnClient({ ...process.env, CAI_SFN_ENDPOINT: sfn.endpoint }));
      throttled = sfn.historyThrottled;
    },
  });
  expect(throttled).toBeGreaterThan(0);
  expect([reads!.read.size, reads!.failed.size, reads!.unread.size]).toEqual([200, 0, 0]);
  expect([...reads!.read.values()].every((failures) => failures.length === 1 && failures[0].error.startsWith('Runtime.ExitError'))).toBe(
    true,
  );
  // The control: the SDK's default client (standard mode, three attempts) loses histories to the same bucket.
  await execute(deployed, rankItems(200), tasks, 'throttled-histories-default', {
    historyRate,
    ended: async (sfn) => {
      reads = await histories(
        new SFNClient({ region: 'us-east-1', endpoint: sfn.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }),
      );
    },
  });
  expect(reads!.failed.size).toBeGreaterThan(0);
  expect([...reads!.failed.values()][0]).toMatch(/ThrottlingException|Rate exceeded/);
});

test('a caught rank stays small whatever its error: the error takes the place of the partition list', async () => {
  // The largest item the planner allows and an error with Step Functions' longest cause.
  const item = itemOf(MAX_RANK_ITEM_BYTES);
  const cause = 'z'.repeat(32_768);
  const tasks = (summarized: unknown[]): Record<string, TaskHandler> => ({
    InferRank: async () => {
      throw Object.assign(new Error(cause), { name: 'Sandbox.Timedout' });
    },
    Summarize: async ({ Payload }) => {
      summarized.push(Payload);
      return lambda({ runId: 'r', status: 'FAILED' });
    },
    RecordFailure: async () => lambda({}),
  });
  const summarized: unknown[] = [];
  const result = await execute(deployed, [item], tasks(summarized), 'caught-big');
  expect([result.status, result.cause]).toEqual(['SUCCEEDED', undefined]);
  expect(summarized).toHaveLength(1);
  // The control: with the error beside the partitions ($.error), the caught state is over 256 KiB.
  const beside = structuredClone(deployed);
  const inferRank = beside.States.Infer.ItemProcessor.States.InferRank;
  inferRank.Catch[0].ResultPath = '$.error';
  beside.States.Infer.ItemProcessor.States.RankFailed.Parameters['error.$'] = '$.error';
  const over = await execute(beside, [item], tasks([]), 'caught-over');
  expect([over.status, over.error]).toEqual(['FAILED', 'States.DataLimitExceeded']);
});
