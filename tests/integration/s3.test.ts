import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, paginateListObjectsV2, S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { fileSource, s3Source } from '../../functions/commons/tensors/byte-source';
import { openTorchPartition } from '../../toolkit/datasets/galaxy-partition';
import { createS3Client, s3Client } from '../../functions/commons/aws/clients';
import { listPartitions } from '../../functions/commons/run/rank-plan';
import { startLocalS3, type LocalS3 } from '../../local/s3-server';
import { ensureBucket } from '../../local/stack';
import { expectSameArray } from '../helpers/arrays';
import { cai } from '../helpers/cli';
import { writeTestPartition } from '../helpers/partitions';
import { ArchiveError } from '../../functions/commons/errors';
import { tempFolder } from '../helpers/temp';

const work = tempFolder('cai-s3-');
let s3: LocalS3;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  s3 = await startLocalS3(join(work, 's3'), ['survey']);
  env = { CAI_S3_ENDPOINT: s3.endpoint };
  process.env.CAI_S3_ENDPOINT = s3.endpoint;
});
afterAll(() => s3.close());

async function rowsOf(source: Awaited<ReturnType<typeof fileSource>>) {
  const reader = await openTorchPartition(source);
  const rows = await reader.readRows(0, reader.samples);
  await reader.close();
  return rows;
}

test('synth, split and inspect read and write s3:// locations', async () => {
  expect((await cai(['synth', '--samples', '900', '--size', '20MB', '--out', 's3://survey/raw', '--seed', '3'], env)).status).toBe(0);
  expect((await cai(['synth', '--samples', '900', '--size', '20MB', '--out', join(work, 'raw'), '--seed', '3'], env)).status).toBe(0);

  const manifest = await s3Client().send(new GetObjectCommand({ Bucket: 'survey', Key: 'raw/partitions.json' }));
  expect(JSON.parse(await manifest.Body!.transformToString())).toMatchObject({ samples: 900, partitions: [{ key: '1.pt' }] });

  const fromS3 = await cai(['inspect', 's3://survey/raw/1.pt', '--json'], env);
  const fromDisk = await cai(['inspect', join(work, 'raw', '1.pt'), '--json'], env);
  expect(fromS3.status).toBe(0);
  expect(fromS3.json()).toEqual(fromDisk.json());

  const split = await cai(['split', 's3://survey/raw/1.pt', '--size', '4MB', '--out', 's3://survey/parts'], env);
  expect(split.status).toBe(0);
  expect(split.stdout).toMatch(/wrote 5 partitions \(900 objects.*s3:\/\/survey\/parts/);

  // A partition read over ranged GETs decodes to the same rows as the file on disk.
  const local = await rowsOf(await fileSource(join(work, 'raw', '1.pt')));
  const remote = await rowsOf(await s3Source(s3Client(), 'survey', 'raw/1.pt'));
  expectSameArray(remote.images, local.images);
  expectSameArray(remote.redshift, local.redshift);
  const second = await rowsOf(await s3Source(s3Client(), 'survey', 'parts/2.pt'));
  expectSameArray(second.images, local.images.subarray(second.count * 5120, 2 * second.count * 5120));
});

test('ensureBucket (the stack and its test helper make buckets with it) passes a bucket that is there already and fails on any other refusal', async () => {
  const client = createS3Client(env);
  await ensureBucket(client, 'made-twice');
  await expect(ensureBucket(client, 'made-twice')).resolves.toBeUndefined();
  await expect(ensureBucket(client, 'Not_A_Bucket')).rejects.toMatchObject({ name: 'InvalidBucketName' });
});

test('a missing object and a bad location are named', async () => {
  const missing = await cai(['inspect', 's3://survey/raw/404.pt'], env);
  expect(missing.status).toBe(1);
  expect(missing.stderr.trim()).toBe('cai: no such object: s3://survey/raw/404.pt');
  const bad = await cai(['inspect', 's3://Bad_Bucket/x.pt'], env);
  expect(bad.status).toBe(2);
  expect(bad.stderr.trim()).toMatch(/is not an S3 location/);
});

test('the embedded S3 lists any number of keys, 1,000 a page as S3 does', async () => {
  const client = createS3Client({ ...process.env, CAI_S3_ENDPOINT: s3.endpoint });
  const limit = pLimit(16);
  await Promise.all(
    Array.from({ length: 2100 }, (_, i) =>
      limit(() => client.send(new PutObjectCommand({ Bucket: 'survey', Key: `many/${i + 1}.pt`, Body: 'x' }))),
    ),
  );
  const pages: number[] = [];
  for await (const page of paginateListObjectsV2({ client }, { Bucket: 'survey', Prefix: 'many/' })) pages.push(page.KeyCount ?? 0);
  expect(pages).toEqual([1000, 1000, 100]);
  const partitions = await listPartitions(client, 'survey', 'many');
  expect(partitions).toHaveLength(2100);
  expect(partitions[2099].key).toBe('many/2100.pt'); // natural order across pages
});

test('the embedded S3 refuses keys that resolve outside its folder, and writes nothing there', async () => {
  const client = createS3Client({ ...process.env, CAI_S3_ENDPOINT: s3.endpoint });
  // From <work>/s3/survey these would land in <work>/s3, <work> and <work>/s3/survey2.
  for (const key of ['../escaped.pt', '../../escaped/1.pt', 'a/../../survey2/x.pt']) {
    await expect(client.send(new PutObjectCommand({ Bucket: 'survey', Key: key, Body: 'x' }))).rejects.toMatchObject({
      name: 'InvalidArgument',
      message: 'the local S3 refuses a bucket or key that resolves outside its folder (survey)',
    });
  }
  expect(readdirSync(work)).not.toContain('escaped');
  expect(readdirSync(join(work, 's3')).filter((d) => d.startsWith('escaped') || d === 'survey2')).toEqual([]);
  // A key that only looks odd stays inside and reads back.
  await client.send(new PutObjectCommand({ Bucket: 'survey', Key: 'odd/..x/ünï cödé.pt', Body: 'y' }));
  const back = await client.send(new GetObjectCommand({ Bucket: 'survey', Key: 'odd/..x/ünï cödé.pt' }));
  expect(await back.Body!.transformToString()).toBe('y');
});

describe('S3 errors: a passing outage is retried, never taken for a bad partition', () => {
  const key = 'faults/1.pt';
  beforeAll(async () => {
    const file = join(work, 'faults-1.pt');
    writeTestPartition(file, 50);
    await s3Client().send(new PutObjectCommand({ Bucket: 'survey', Key: key, Body: readFileSync(file) }));
  });
  afterEach(() => s3.injectFaults());

  const read = async (client = createS3Client(env), from = key) => {
    const reader = await openTorchPartition(await s3Source(client, 'survey', from));
    await reader.readRows(0, reader.samples);
    return reader.samples;
  };

  test('SlowDown on the HEAD and GETs, 6 times: the client backs off and reads the partition', async () => {
    s3.injectFaults({ code: 'SlowDown', key: /^survey\/faults\//, times: 6 });
    expect(await read()).toBe(50);
    expect(s3.faultsServed()).toBeGreaterThanOrEqual(6);
    // The control: the SDK's default of 3 attempts gives up on the same faults, with S3's error.
    s3.injectFaults({ code: 'SlowDown', method: 'GET', key: /^survey\/faults\//, times: 6 });
    const plain = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await expect(read(plain)).rejects.toMatchObject({ name: 'SlowDown' });
  });

  test('the client makes 10 attempts of a request, no more: nine faults on it are read through, ten are passed on', async () => {
    // S3_RETRY's attempts are the boundary, whatever the fault; 500s back off from 50 ms where
    // SlowDowns back off from 1 s, so both sides run side by side in seconds, each with its own client.
    const other = 'faults/2.pt';
    await s3Client().send(new PutObjectCommand({ Bucket: 'survey', Key: other, Body: readFileSync(join(work, 'faults-1.pt')) }));
    s3.injectFaults(
      { code: 'InternalError', method: 'HEAD', key: /^survey\/faults\/1\.pt$/, times: 9 },
      { code: 'InternalError', method: 'HEAD', key: /^survey\/faults\/2\.pt$/, times: 10 },
    );
    const served = s3.faultsServed();
    const [nine, ten] = await Promise.allSettled([read(), read(createS3Client(env), other)]);
    expect(nine).toEqual({ status: 'fulfilled', value: 50 });
    // A HEAD's error has no body: the status says it.
    expect(ten).toMatchObject({ status: 'rejected', reason: { $metadata: { httpStatusCode: 500, attempts: 10 } } });
    expect(s3.faultsServed() - served).toBe(19);
  }, 120_000);

  test('a 500 that lasts is passed on as S3 said it, not as an ArchiveError; a missing object is an ArchiveError', async () => {
    s3.injectFaults({ code: 'InternalError', method: 'HEAD', key: /^survey\/faults\// });
    const error = await s3Source(createS3Client(env), 'survey', key).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(ArchiveError);
    expect((error as { $metadata: { httpStatusCode: number; attempts: number } }).$metadata).toMatchObject({
      httpStatusCode: 500,
      attempts: 10,
    });
    s3.injectFaults({ code: 'InternalError', method: 'GET', key: /^survey\/faults\// });
    await expect(read()).rejects.toMatchObject({ name: 'InternalError' });
    s3.injectFaults();
    const missing = await s3Source(createS3Client(env), 'survey', 'faults/none.pt').catch((e: unknown) => e);
    expect([missing instanceof ArchiveError, (missing as Error).message]).toEqual([true, 'no such object: s3://survey/faults/none.pt']);
  }, 120_000);
});
