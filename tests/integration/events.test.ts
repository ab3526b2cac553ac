import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createDynamoClient, createS3Client } from '../../functions/commons/aws/clients';
import { sinkFor } from '../../toolkit/locations';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { RunStore } from '../../functions/commons/run/run-store';
import { startLocalDynamo } from '../../local/dynamo-server';
import { startLocalS3 } from '../../local/s3-server';
import { DEFAULT_TABLE } from '../../local/stack';
import { cai } from '../helpers/cli';
import { ROOT } from '../../local/paths';
import { testStack } from '../helpers/stack';
import { tempFolder } from '../helpers/temp';

/**
 * The sample events for `sam local invoke`, each run by `cai invoke` (the Docker-less invoke): the
 * function's deployment artifact under the Runtime Interface Emulator, against the local stack's
 * state in a folder the first step fills.
 */
const dir = join(tempFolder('cai-events-'), 'stack');
const events = (name: string) => join(ROOT, 'events', name);
/** The sample run's folder: its result_path, then its run id (events/inference-rank.json). */
const RUN = 'results/sample/sample-0123456789ab';

beforeAll(async () => {
  const t = await testStack(dir);
  await t.bucket('cai-data');
  await synthesizeDataset({
    samples: 250,
    maxBytes: 8 * 2 ** 20,
    seed: 5,
    sink: sinkFor({ kind: 's3', bucket: 'cai-data', key: 'sample' }, () => t.s3),
  });
  const put = (key: string, body: string | Buffer) => t.s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: key, Body: body }));
  // The sample event is what the state machine sends a rank: its Map item, from the run's manifest, and the attempt number.
  await put(`${RUN}/manifest.json`, JSON.stringify([JSON.parse(readFileSync(events('inference-rank.json'), 'utf8')).item]));
  await put('runs/sample/payload.json', readFileSync(events('payload.json')));
  await t.stack.close();
});

/** Reads what the invocations left in the stack's folder, with the embedded servers alone. */
async function inspect<T>(use: (read: (bucket: string, key: string) => Promise<string>, runs: RunStore) => Promise<T>): Promise<T> {
  const s3 = await startLocalS3(join(dir, 's3'));
  const dynamo = await startLocalDynamo(join(dir, 'dynamodb'));
  try {
    const client = createS3Client({ ...process.env, CAI_S3_ENDPOINT: s3.endpoint });
    const read = async (bucket: string, key: string) =>
      (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
    return await use(read, new RunStore(createDynamoClient({ ...process.env, CAI_DYNAMODB_ENDPOINT: dynamo.endpoint }), DEFAULT_TABLE));
  } finally {
    await dynamo.close();
    await s3.close();
  }
}

const REPORT =
  /^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: (\d+) MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms$/m;

test('cai invoke InferenceFunction -e events/inference-rank.json runs one rank and prints the reply and the REPORT line', async () => {
  const run = await cai(['invoke', 'InferenceFunction', '-e', events('inference-rank.json'), '--dir', dir]);
  expect(run.stderr).toMatch(REPORT);
  expect(REPORT.exec(run.stderr)![1]).toBe('1769'); // the template's InferenceMemorySize
  expect(run.status).toBe(0);
  expect(run.json()).toEqual({ rank: 0, status: 'SUCCEEDED' });
  const result = JSON.parse(await inspect((read) => read('cai-control', `${RUN}/ranks/0.json`)));
  expect(result).toMatchObject({
    rank: 0,
    samples: 250,
    data_path: 'sample/1.pt',
    batch_size: 256,
    num_batches: 1,
    memory_configured_mb: 1769,
    cold_start: true,
  });
});

test('cai invoke SummarizerFunction -e events/summarizer.json gathers that rank into combined_data.json and summary.json', async () => {
  const run = await cai(['invoke', 'SummarizerFunction', '-e', events('summarizer.json'), '--dir', dir]);
  expect(run.status).toBe(0);
  expect(run.json()).toEqual({ runId: 'sample-0123456789ab', status: 'SUCCEEDED' });
  expect(REPORT.exec(run.stderr)![1]).toBe('1024');
  const [combined, summary] = await inspect((read) =>
    Promise.all([read('cai-control', `${RUN}/combined_data.json`), read('cai-control', `${RUN}/summary.json`)]),
  );
  expect(JSON.parse(combined)).toHaveLength(1);
  expect(JSON.parse(summary)).toMatchObject({ samples: 250, predictions: 250 });
});

test('cai invoke InitializerFunction -e events/initializer-s3-put.json --env-vars events/env.json starts and finishes a run', async () => {
  const run = await cai([
    'invoke',
    'InitializerFunction',
    '-e',
    events('initializer-s3-put.json'),
    '--env-vars',
    events('env.json'),
    '--dir',
    dir,
  ]);
  expect(run.status).toBe(0);
  const [outcome] = run.json<{ runId: string; outcome: string }[]>();
  expect(outcome).toMatchObject({ outcome: 'STARTED', partitions: 1, ranks: 1 });
  expect(await inspect((_, runs) => runs.get(outcome.runId))).toMatchObject({ status: 'SUCCEEDED', samples: 250 });
});

test('cai invoke names what is wrong: an unknown function, a missing event', async () => {
  const unknown = await cai(['invoke', 'NoSuchFunction', '-e', events('summarizer.json'), '--dir', dir]);
  expect(unknown.status).toBe(2);
  expect(unknown.stderr.trim()).toBe(
    'cai: no function NoSuchFunction in template.yaml (its functions: InitializerFunction, InferenceFunction, SummarizerFunction)',
  );
  const missing = await cai(['invoke', 'SummarizerFunction', '-e', 'no/such/event.json', '--dir', dir]);
  expect(missing.status).toBe(2);
  expect(missing.stderr.trim()).toBe('cai: cannot read the event no/such/event.json');
});
