import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoClient, countsSince, requestCounts } from '../../functions/commons/aws/clients';
import { RunStore, type RunRecord } from '../../functions/commons/run/run-store';
import { ensureRunsTable, startLocalDynamo, type LocalDynamo } from '../../local/dynamo-server';
import { tempFolder } from '../helpers/temp';

/**
 * A run record's writes cost write units by its size, for the table and each of its two indexes
 * (byStartedAt, byDataset, both projecting ALL): what DynamoDB answers, counted by the request counter.
 */
let dir: string;
let dynamo: LocalDynamo;
let runs: RunStore;

beforeAll(async () => {
  dir = tempFolder('cai-dynamo-units-');
  dynamo = await startLocalDynamo(join(dir, 'dynamodb'));
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  await ensureRunsTable(new DynamoDBClient({ region: 'us-east-1', endpoint: dynamo.endpoint, credentials }), 'runs');
  runs = new RunStore(createDynamoClient({ ...process.env, CAI_DYNAMODB_ENDPOINT: dynamo.endpoint }), 'runs');
});

afterAll(() => dynamo?.close());

/** Its size by DynamoDB's rule, for a record of strings and lists of strings only: names and values in UTF-8, a list 3 bytes and 1 an element. */
function stringItemBytes(item: Record<string, string | string[]>): number {
  return Object.entries(item).reduce(
    (sum, [name, value]) =>
      sum +
      Buffer.byteLength(name) +
      (Array.isArray(value) ? 3 + value.reduce((s, v) => s + 1 + Buffer.byteLength(v), 0) : Buffer.byteLength(value)),
    0,
  );
}

const record = (runId: string, payload: string): RunRecord => ({
  runId,
  recordType: 'run',
  status: 'RUNNING',
  startedAt: '2026-12-06T00:00:00.000Z',
  payloadUri: `s3://cai-control/runs/${runId}/payload.json`,
  payload,
  dataset: 'data/galaxies',
  warnings: [],
});

test('a 3.5 KB record costs 4 write units for the table and 4 for each of its two indexes, per write', async () => {
  const first = record('units-a', 'x'.repeat(3400));
  const bytes = stringItemBytes(first as unknown as Record<string, string | string[]>);
  expect(bytes).toBeGreaterThan(3 * 1024);
  expect(bytes).toBeLessThanOrEqual(3.5 * 1024);
  const units = Math.ceil(bytes / 1024) * 3;
  expect(units).toBe(12);

  const before = requestCounts();
  expect(await runs.create(first)).toBe(true);
  expect(countsSince(before).dynamoWrite).toBe(units);
  expect(dynamo.consumedUnits[dynamo.operations.lastIndexOf('PutItem')]).toBe(units);

  // An update costs the larger of the item's sizes before and after: grown past 5 KB, 6 units for each.
  const grown = requestCounts();
  await runs.update('units-a', { executionName: 'y'.repeat(2000) });
  const after = stringItemBytes({ ...(first as unknown as Record<string, string | string[]>), executionName: 'y'.repeat(2000) });
  expect(Math.ceil(after / 1024)).toBe(6);
  expect(countsSince(grown).dynamoWrite).toBe(Math.ceil(after / 1024) * 3);

  // And shrunk again, still the larger: the size before.
  const shrunk = requestCounts();
  await runs.update('units-a', {}, ['executionName']);
  expect(countsSince(shrunk).dynamoWrite).toBe(Math.ceil(after / 1024) * 3);
});

test('a refused write (the run exists) is counted as one request, as DynamoDB answers no capacity with the error', async () => {
  const before = requestCounts();
  expect(await runs.create(record('units-a', 'x'))).toBe(false);
  expect(countsSince(before).dynamoWrite).toBe(1);
});

test('a small record costs one unit for the table and each index; a read of it half a unit (eventually consistent, up to 4 KB)', async () => {
  const before = requestCounts();
  await runs.create(record('units-b', 'small'));
  expect(countsSince(before).dynamoWrite).toBe(3);
  const read = requestCounts();
  await runs.get('units-b');
  expect(countsSince(read).dynamoRead).toBe(0.5);
});
