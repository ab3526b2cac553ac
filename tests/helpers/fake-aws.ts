import { S3Client } from '@aws-sdk/client-s3';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { RequestCounts } from '../../functions/commons/aws/clients';
import type { InitializeContext } from '../../functions/commons/run/initialize';
import type { RunRecord, RunStore } from '../../functions/commons/run/run-store';

/**
 * In-memory stand-ins for the initializer's S3, Step Functions and runs table, answering the few
 * calls it makes as AWS does (ListObjectsV2 a page of at most 1,000 keys at a time), for pure tests.
 */
export function fakeInitializer(objects: Record<string, { body?: string; bytes?: number }>, extra: Partial<InitializeContext> = {}) {
  const keys = Object.keys(objects).sort();
  // The keys under each prefix, found once: a listing of 200 pages would otherwise filter every key 200 times.
  const listings = new Map<string, string[]>();
  const listing = (prefix: string) => {
    if (!listings.has(prefix))
      listings.set(
        prefix,
        keys.filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('/')),
      );
    return listings.get(prefix)!;
  };
  const written: Record<string, string> = {};
  const started: { name: string; input: string }[] = [];
  const records = new Map<string, RunRecord>();
  // A real client whose send answers here: the SDK's paginators take only an S3Client.
  const s3 = new S3Client({ region: 'us-east-1' });
  s3.send = (async (command: { constructor: { name: string }; input: Record<string, string> }) => {
    const { Key, Prefix, ContinuationToken, Body } = command.input;
    switch (command.constructor.name) {
      case 'GetObjectCommand': {
        const body = objects[Key]?.body;
        if (body === undefined) throw Object.assign(new Error('no such key'), { name: 'NoSuchKey' });
        return { ContentLength: Buffer.byteLength(body), Body: { transformToString: async () => body } };
      }
      case 'ListObjectsV2Command': {
        const under = listing(Prefix);
        const from = Number(ContinuationToken ?? 0);
        const page = under.slice(from, from + 1000);
        const more = from + 1000 < under.length;
        return {
          Contents: page.map((k) => ({ Key: k, Size: objects[k].bytes ?? 0 })),
          IsTruncated: more,
          NextContinuationToken: more ? String(from + 1000) : undefined,
        };
      }
      case 'PutObjectCommand':
        written[Key] = Body;
        return {};
      default:
        throw new Error(`fake S3: ${command.constructor.name}`);
    }
  }) as never;
  const sfn = {
    async send(command: { input: { name: string; input: string } }) {
      started.push(command.input);
      return { executionArn: `arn:aws:states:us-east-1:000000000000:execution:cai:${command.input.name}` };
    },
  } as unknown as SFNClient;
  const runs = {
    table: 'runs',
    async create(record: RunRecord) {
      if (records.has(record.runId)) return false;
      records.set(record.runId, structuredClone(record));
      return true;
    },
    async update(runId: string, fields: Partial<RunRecord>) {
      records.set(runId, { ...records.get(runId)!, ...fields });
    },
    async get(runId: string) {
      return records.get(runId);
    },
  } as unknown as RunStore;
  const none: RequestCounts = { s3Get: 0, s3Put: 0, s3List: 0, dynamoWrite: 0, dynamoRead: 0 };
  const context: InitializeContext = {
    s3,
    sfn,
    runs,
    stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:cai',
    maxConcurrency: 100,
    writableBuckets: ['cai-control'],
    readableDataBuckets: ['cai-control'],
    rankLimits: { memoryMb: 1769, timeoutS: 900 },
    modelLimits: { controlBucket: 'cai-control', buckets: [], storageBytes: 448 * 2 ** 20 },
    invocation: () => ({ durationMs: 1, initMs: 0, memoryMb: 256 }),
    requests: () => none,
    ...extra,
  };
  return { context, written, started, records };
}
