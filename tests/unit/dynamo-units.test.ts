import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { countsSince, createDynamoClient, requestCounts } from '../../functions/commons/aws/clients';
import { itemBytes, writeUnits } from '../../functions/commons/billing/dynamo-units';

/**
 * The request counter bills what DynamoDB answered it consumed. The answers are made up here, below
 * the counter (in the client's deserialize step, no server reached): the
 * embedded DynamoDB's own answers are in tests/integration/dynamo-units.test.ts.
 */
function answering(answer: () => unknown) {
  const client = createDynamoClient({ CAI_DYNAMODB_ENDPOINT: 'http://127.0.0.1:9', AWS_REGION: 'us-east-1' });
  client.middlewareStack.add(() => async () => ({ response: {}, output: { $metadata: {}, ...(answer() as object) } }) as never, {
    step: 'deserialize',
    priority: 'high',
  });
  return client;
}

test('a write counts the capacity units DynamoDB answered, its indexes included', async () => {
  const client = answering(() => ({ ConsumedCapacity: { TableName: 'runs', CapacityUnits: 12, Table: { CapacityUnits: 4 } } }));
  const before = requestCounts();
  await client.send(new PutCommand({ TableName: 'runs', Item: { runId: 'a' }, ReturnConsumedCapacity: 'INDEXES' }));
  await client.send(
    new UpdateCommand({ TableName: 'runs', Key: { runId: 'a' }, UpdateExpression: 'SET a = :a', ExpressionAttributeValues: { ':a': 1 } }),
  );
  expect(countsSince(before)).toMatchObject({ dynamoWrite: 24, dynamoRead: 0 });
});

test('a read counts its (possibly half) read units', async () => {
  const client = answering(() => ({ ConsumedCapacity: { TableName: 'runs', CapacityUnits: 0.5 } }));
  const before = requestCounts();
  await client.send(new GetCommand({ TableName: 'runs', Key: { runId: 'a' }, ReturnConsumedCapacity: 'TOTAL' }));
  expect(countsSince(before)).toMatchObject({ dynamoWrite: 0, dynamoRead: 0.5 });
});

test('an answer without consumed capacity, and a refused request, count one each', async () => {
  const before = requestCounts();
  await answering(() => ({})).send(new PutCommand({ TableName: 'runs', Item: { runId: 'a' } }));
  const refused = answering(() => {
    throw Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException', $metadata: {} });
  });
  await expect(refused.send(new PutCommand({ TableName: 'runs', Item: { runId: 'a' } }))).rejects.toThrow('conditional');
  expect(countsSince(before)).toMatchObject({ dynamoWrite: 2 });
});

test("an item's size by DynamoDB's rule: names and values, numbers by significant digits, lists and maps 3 bytes and 1 an element", () => {
  expect(itemBytes({ ab: 'héllo' })).toBe(2 + 6);
  expect(itemBytes({ n: 12345, z: 0, big: 1.5e20 })).toBe(1 + 4 + (1 + 2) + (3 + 2));
  expect(itemBytes({ l: ['a', true, null], m: { k: 'v' }, gone: undefined })).toBe(1 + (3 + 2 + 2 + 2) + 1 + (3 + 1 + 1 + 1));
  expect(writeUnits(3.5 * 1024, 2)).toBe(12);
  expect(writeUnits(1024, 2)).toBe(3);
  expect(writeUnits(0, 0)).toBe(1);
});
