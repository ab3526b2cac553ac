import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { createS3Client } from '../../functions/commons/aws/clients';
import type { MapChildExecution, MapResultManifest, MapRunResult } from '../../functions/commons/run/contracts';
import { type LocalS3, startLocalS3 } from '../../local/s3-server';
import { STATE_PAYLOAD_LIMIT_BYTES } from '../../functions/commons/aws/limits';
import { LocalStepFunctions, type TaskHandler } from '../../local/sfn-server';
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

async function execute(definition: object, items: unknown[], tasks: Record<string, TaskHandler>, name: string) {
  await client().send(new PutObjectCommand({ Bucket: 'runs', Key: `${name}/manifest.json`, Body: JSON.stringify(items) }));
  const sfn = new LocalStepFunctions({
    definition: definition as never,
    s3: client(),
    tasks,
    retryIntervalOverrides: { InferRank: 0, Summarize: 0, RecordFailure: 0 },
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
      if (described.status !== 'RUNNING') return described;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await sfn.close();
  }
}

const deployed = JSON.parse(
  readFileSync(join(ROOT, 'statemachine', 'cai.asl.json'), 'utf8')
    .replaceAll('${InferenceFunctionArn}', 'inference')
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
      const { rank } = Payload as { rank: number };
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
    InferRank: async ({ Payload }) => lambda({ rank: (Payload as { rank: number }).rank, status: 'SUCCEEDED', note: 'y'.repeat(100) }),
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

test('a caught rank stays small whatever its error: the error takes the place of the partition list', async () => {
  // An item just inside 256 KiB (the planner allows that much) and an error with Step Functions' longest cause.
  const partitions: { key: string; bytes: number }[] = [];
  const item = { runId: 'r', rank: 0, partitions };
  for (let i = 0; Buffer.byteLength(JSON.stringify(item)) < STATE_PAYLOAD_LIMIT_BYTES - 100; i++) {
    partitions.push({ key: `a/long/prefix/of/partitions/${i}.pt`, bytes: 1 });
  }
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
