import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { countsSince, createS3Client, requestCounts } from '../../functions/commons/aws/clients';
import { billRun } from '../../functions/commons/billing/cost';

/**
 * The embedded S3 stores no SSE-KMS objects, so this server answers as S3 does for one: the
 * x-amz-server-side-encryption header on each GET, HEAD and PUT, and the bucket key's header when
 * the key name says so (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
 */
let server: Server;
let endpoint: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': '2' };
      if (req.url!.includes('kms')) headers['x-amz-server-side-encryption'] = 'aws:kms';
      if (req.url!.includes('bucket-key')) headers['x-amz-server-side-encryption-bucket-key-enabled'] = 'true';
      if (req.url!.includes('aes')) headers['x-amz-server-side-encryption'] = 'AES256';
      res.writeHead(200, req.method === 'PUT' ? { ...headers, 'content-length': '0', etag: '"e"' } : headers);
      res.end(req.method === 'GET' ? 'ok' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('each GET and PUT of an SSE-KMS object is a KMS request; HEADs and SSE-S3 objects are not; bucket-key ones are told apart', async () => {
  const s3 = createS3Client({ CAI_S3_ENDPOINT: endpoint, AWS_REGION: 'us-east-1' });
  const before = requestCounts();
  const get = async (Key: string) => (await s3.send(new GetObjectCommand({ Bucket: 'b', Key }))).Body!.transformToString();
  await get('kms/a');
  await get('kms/b');
  await s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'kms/c', Body: 'x' }));
  await s3.send(new HeadObjectCommand({ Bucket: 'b', Key: 'kms/a' }));
  await get('aes/d');
  await s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'aes/e', Body: 'x' }));
  await get('kms/bucket-key/f');
  const counted = countsSince(before);
  expect(counted).toMatchObject({ s3Get: 5, s3Put: 2, kms: 4, kmsBucketKey: 1 });
  // Billed at $0.03 per 10,000 requests, bucket-key ones included (an upper bound of those).
  const cost = billRun(
    {
      invocations: [],
      stateTransitions: 0,
      s3: { get: 0, put: 0, list: 0 },
      dynamo: { writes: 0, reads: 0 },
      kms: { requests: counted.kms!, bucketKey: counted.kmsBucketKey! },
    },
    'us-east-1',
    'x86_64',
  );
  expect(cost.kms).toEqual({ requests: 4, bucketKey: 1, usd: expect.closeTo((4 * 0.03) / 10_000, 15) });
  expect(cost.totalUsd).toBeCloseTo((4 * 0.03) / 10_000, 15);
});
