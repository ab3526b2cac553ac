import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { RUNS_TABLE_DEFINITION } from '../functions/commons/run/run-store';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (options: { path?: string; createTableMs?: number }) => import('node:net').Server;

export interface LocalDynamo {
  endpoint: string;
  close(): Promise<void>;
}

/** The embedded DynamoDB (dynalite), keeping its tables in `directory` between runs. */
export async function startLocalDynamo(directory: string, port = 0): Promise<LocalDynamo> {
  mkdirSync(directory, { recursive: true });
  const server = dynalite({ path: directory, createTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Creates the runs table (as template.yaml declares it) unless it exists. */
export async function ensureRunsTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
  } catch (error) {
    if ((error as Error).name !== 'ResourceNotFoundException') throw error;
    await client.send(new CreateTableCommand({ TableName: table, ...RUNS_TABLE_DEFINITION } as never));
  }
}
