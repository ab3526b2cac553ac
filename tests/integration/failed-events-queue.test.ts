import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { tableDefinition } from '../../local/template';
import { ROOT } from '../../local/paths';
import { cai } from '../helpers/cli';

/**
 * `cai runs --aws --queue <FailedEventsQueueUrl>` against SQS and DynamoDB APIs (moto's server, as
 * the deploy test uses): the two messages the stack's queue receives are listed as what never
 * started, and looking leaves them in the queue.
 */
let server: ChildProcess;
let env: NodeJS.ProcessEnv;
let queueUrl: string;

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });

beforeAll(async () => {
  const port = await freePort();
  server = spawn(join(ROOT, '.venv-moto', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  env = {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'moto',
    AWS_SECRET_ACCESS_KEY: 'moto',
  };
  const config = { region: 'us-east-1', endpoint: env.AWS_ENDPOINT_URL, credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } };
  const sqs = new SQSClient(config);
  for (let i = 0; ; i++) {
    try {
      queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'cai-FailedEventsQueue' }))).QueueUrl!;
      break;
    } catch (error) {
      if (i > 100) throw error;
      await new Promise((r) => setTimeout(r, 100)); // the server is still starting
    }
  }
  await new DynamoDBClient(config).send(new CreateTableCommand({ ...tableDefinition(ROOT, 'RunsTable'), TableName: 'cai-runs' } as never));
  // Lambda's on-failure record of the initializer's invocation ...
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify({
        version: '1.0',
        timestamp: '2026-11-27T16:00:00.000Z',
        requestContext: {
          requestId: 'r1',
          functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:init:$LATEST',
          condition: 'RetriesExhausted',
          approximateInvokeCount: 3,
        },
        requestPayload: { Records: [{ s3: { bucket: { name: 'cai-control-x' }, object: { key: 'runs/survey/payload.json' } } }] },
        responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
        responsePayload: { errorType: 'Runtime.ExitError', errorMessage: 'Runtime exited with error: signal: killed' },
      }),
    }),
  );
  // ... and an execution end EventBridge could not deliver to the summarizer.
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify({
        source: 'aws.states',
        time: '2026-11-27T16:05:00Z',
        detail: { name: 'survey-abc', status: 'TIMED_OUT' },
      }),
      MessageAttributes: {
        ERROR_CODE: { DataType: 'String', StringValue: 'SDK_CLIENT_ERROR' },
        ERROR_MESSAGE: { DataType: 'String', StringValue: 'Unable to invoke Lambda function' },
      },
    }),
  );
}, 60_000);
afterAll(() => server?.kill());

test('cai runs --aws --queue lists the payloads never started with their errors, and leaves them in the queue', async () => {
  for (let look = 0; look < 2; look++) {
    const run = await cai(['runs', '--aws', '--table', 'cai-runs', '--queue', queueUrl, '--json'], env);
    expect([run.status, run.stderr]).toEqual([0, '']);
    expect(run.stdout.split('\n').slice(0, 5)).toEqual([
      'no runs yet',
      '',
      'payloads never started (1) and other events the stack gave up on (1):',
      '  2026-11-27T16:00:00.000Z  s3://cai-control-x/runs/survey/payload.json  Runtime.ExitError: Runtime exited with error: signal: killed',
      '  2026-11-27T16:05:00Z  execution survey-abc TIMED_OUT  SDK_CLIENT_ERROR: Unable to invoke Lambda function',
    ]);
    expect(run.json<{ neverStarted: unknown[] }>().neverStarted).toHaveLength(2);
  }
  // Without the queue, only the runs table is read; --queue without --aws is refused in one line.
  expect((await cai(['runs', '--aws', '--table', 'cai-runs'], env)).stdout).toBe('no runs yet\n');
  const refused = await cai(['runs', '--queue', queueUrl]);
  expect([refused.status, refused.stderr]).toEqual([2, 'cai: --queue reads the failed-events queue on AWS: give --aws too\n']);
});
