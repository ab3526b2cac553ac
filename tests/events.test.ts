import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { sinkFor } from '../functions/commons/partitions/locations';
import { synthesizeDataset } from '../functions/commons/partitions/synth';
import { ROOT } from './helpers/python';
import { testStack } from './helpers/stack';

/** The sample events for `sam local invoke`, fed to their handlers on the local stack. */
const event = (name: string) => JSON.parse(readFileSync(join(ROOT, 'events', name), 'utf8'));
let t: Awaited<ReturnType<typeof testStack>>;

beforeAll(async () => {
  t = await testStack(join(mkdtempSync(join(tmpdir(), 'cai-events-')), 'stack'));
  await t.bucket('cai-data');
  await synthesizeDataset({
    samples: 250,
    maxBytes: 8 * 2 ** 20,
    seed: 5,
    sink: sinkFor({ kind: 's3', bucket: 'cai-data', key: 'sample' }, () => t.s3),
  });
});
afterAll(() => t?.stack.close());

test('events/inference-rank.json runs one rank and writes its result', async () => {
  const item = event('inference-rank.json');
  expect(await t.stack.functions.inference.invoke(item)).toEqual({ rank: 0, status: 'SUCCEEDED' });
  const result = JSON.parse(await t.readText('cai-control', 'results/sample/ranks/0.json'));
  expect(result).toMatchObject({ rank: 0, samples: 250, data_path: 'sample/1.pt', batch_size: 256, num_batches: 1 });
});

test('events/summarizer.json gathers that rank into combined_data.json and summary.json', async () => {
  await t.s3.send(
    new PutObjectCommand({ Bucket: 'cai-control', Key: 'results/sample/manifest.json', Body: JSON.stringify([event('inference-rank.json')]) }),
  );
  expect(await t.stack.functions.summarizer.invoke(event('summarizer.json'))).toEqual({ runId: 'sample-0123456789ab', status: 'SUCCEEDED' });
  expect(JSON.parse(await t.readText('cai-control', 'results/sample/combined_data.json'))).toHaveLength(1);
  expect(JSON.parse(await t.readText('cai-control', 'results/sample/summary.json'))).toMatchObject({ samples: 250, predictions: 250 });
});

test('events/initializer-s3-put.json starts a run for events/payload.json', async () => {
  await t.s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: 'runs/sample/payload.json', Body: readFileSync(join(ROOT, 'events', 'payload.json')) }));
  const [outcome] = (await t.stack.functions.initializer.invoke(event('initializer-s3-put.json'))) as { runId: string; outcome: string }[];
  expect(outcome).toMatchObject({ outcome: 'STARTED', partitions: 1, ranks: 1 });
  await t.stack.idle();
  expect(await t.stack.runs.get(outcome.runId)).toMatchObject({ status: 'SUCCEEDED', samples: 250 });
});
