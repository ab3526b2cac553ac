import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import { UsageError } from '../functions/commons/errors';
import { alive } from './served-stack';
import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ROOT } from './paths';
import { tableDefinition } from './template';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (options: { path?: string; createTableMs?: number }) => import('node:net').Server;

export interface LocalDynamo {
  endpoint: string;
  /** The operation (X-Amz-Target's last part: PutItem, GetItem, ...) of every request served so far, in order. */
  operations: string[];
  close(): Promise<void>;
}

interface Holder {
  pid: number;
  command: string;
}

/**
 * One process at a time opens a database folder (LevelDB's own lock would only make the second
 * one's requests fail with "Database is closed"): `<directory>.lock` names the holder. A lock left
 * by a process that has ended is taken over.
 */
function lockDatabase(directory: string): () => void {
  const file = `${directory}.lock`;
  const me: Holder = { pid: process.pid, command: [basename(process.argv[1] ?? 'node'), ...process.argv.slice(2)].join(' ') };
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder: Holder | undefined;
    try {
      holder = JSON.parse(readFileSync(file, 'utf8')) as Holder;
    } catch {
      // Half-written by a process that died between open and write: stale.
    }
    if (holder && holder.pid !== process.pid && alive(holder.pid)) {
      throw new UsageError(
        `${dirname(directory)} is in use by process ${holder.pid} (${holder.command}): wait for it to end, ` +
          'serve the folder to both with cai stack up, or give another --dir',
      );
    }
    rmSync(file, { force: true });
  }
}

/** The embedded DynamoDB (dynalite), keeping its tables in `directory` between runs. */
export async function startLocalDynamo(directory: string, port = 0): Promise<LocalDynamo> {
  mkdirSync(directory, { recursive: true });
  const unlock = lockDatabase(directory);
  const server = dynalite({ path: directory, createTableMs: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  } catch (error) {
    unlock();
    throw error;
  }
  const { port: bound } = server.address() as AddressInfo;
  const operations: string[] = [];
  server.on('request', (req: import('node:http').IncomingMessage) =>
    operations.push(
      String(req.headers['x-amz-target'] ?? '')
        .split('.')
        .pop()!,
    ),
  );
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    operations,
    close: () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          unlock();
          resolve();
        }),
      ),
  };
}

/** Creates the runs table (as template.yaml declares it) unless it exists. */
export async function ensureRunsTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
  } catch (error) {
    if ((error as Error).name !== 'ResourceNotFoundException') throw error;
    await client.send(new CreateTableCommand({ TableName: table, ...tableDefinition(ROOT, 'RunsTable') } as never));
  }
}
