import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
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
  /** The capacity units each of those requests consumed, as answered (indexes included); absent where none was asked or it failed. */
  consumedUnits: (number | undefined)[];
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
  const consumedUnits: (number | undefined)[] = [];
  const [serve] = server.listeners('request') as Handler[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const operation = String(req.headers['x-amz-target'] ?? '')
      .split('.')
      .pop()!;
    const at = operations.push(operation) - 1;
    void withIndexUnits(serve, operation, req, res, (units) => (consumedUnits[at] = units)).catch((error: unknown) => {
      res.statusCode = 500;
      res.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(error) }));
    });
  });
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    operations,
    consumedUnits,
    close: () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          unlock();
          resolve();
        }),
      ),
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type Item = Record<string, { [type: string]: unknown }>;
interface KeyElement {
  AttributeName: string;
}
interface TableShape {
  KeySchema: KeyElement[];
  GlobalSecondaryIndexes?: { IndexName: string; KeySchema: KeyElement[]; Projection?: { ProjectionType?: string } }[];
}
interface WriteRequest {
  TableName: string;
  Key?: Item;
  Item?: Item;
  ReturnConsumedCapacity?: string;
}
interface Consumed {
  CapacityUnits: number;
  TableName: string;
  Table?: { CapacityUnits: number };
  GlobalSecondaryIndexes?: Record<string, { CapacityUnits: number }>;
}

const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

/** A request to dynalite's own handler, not over the network (so not among the served requests): for the item before and after a write. */
function ask<T>(serve: Handler, operation: string, body: object): Promise<T> {
  const req = Object.assign(Readable.from([Buffer.from(JSON.stringify(body))]), {
    method: 'POST',
    url: '/',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `DynamoDB_20120810.${operation}`,
      'x-amz-date': '20200101T000000Z',
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=local',
    },
  });
  return new Promise<T>((resolve, reject) => {
    const res = {
      statusCode: 200,
      setHeader: () => undefined,
      end: (answer: string) => {
        const parsed = JSON.parse(answer) as T & { __type?: string; message?: string };
        if (res.statusCode !== 200) reject(new Error(`${operation}: ${parsed.__type} ${parsed.message ?? ''}`));
        else resolve(parsed);
      },
    };
    serve(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
}

const keyOf = (item: Item, schema: KeyElement[]) => Object.fromEntries(schema.map((k) => [k.AttributeName, item[k.AttributeName]]));
const inIndex = (item: Item | undefined, schema: KeyElement[]) => Boolean(item && schema.every((k) => item[k.AttributeName] !== undefined));
const sameKey = (a: Item, b: Item, schema: KeyElement[]) =>
  schema.every((k) => JSON.stringify(a[k.AttributeName]) === JSON.stringify(b[k.AttributeName]));

/**
 * Serves a request with dynalite, adding to a write's consumed capacity what DynamoDB adds for the
 * table's global secondary indexes (dynalite reports the table's units only): each index the item is
 * in before or after the write costs the table's units again, twice where the write changes the
 * item's key in that index (a delete and a put). Every index is taken as projecting ALL attributes,
 * as CAI's do, so an index entry is the item's size. Records the units each request consumed.
 */
async function withIndexUnits(
  serve: Handler,
  operation: string,
  req: IncomingMessage,
  res: ServerResponse,
  record: (units: number | undefined) => void,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const replay = Object.assign(Readable.from(body.length ? [body] : []), { method: req.method, url: req.url, headers: req.headers });
  let request: WriteRequest | undefined;
  try {
    request = JSON.parse(body.toString('utf8')) as WriteRequest;
  } catch {
    // dynalite answers a body that is not JSON itself.
  }
  const write = WRITES.has(operation) && request?.ReturnConsumedCapacity && request.ReturnConsumedCapacity !== 'NONE';
  let table: TableShape | undefined;
  let before: Item | undefined;
  if (write && request) {
    table = (await ask<{ Table: TableShape }>(serve, 'DescribeTable', { TableName: request.TableName })).Table;
    const key = request.Key ?? keyOf(request.Item ?? {}, table.KeySchema);
    before = (await ask<{ Item?: Item }>(serve, 'GetItem', { TableName: request.TableName, Key: key, ConsistentRead: true })).Item;
  }
  const end = res.end.bind(res) as (chunk?: string) => ServerResponse;
  res.end = ((chunk?: string) => {
    void answer(chunk).then(end, (error: unknown) => {
      res.statusCode = 500;
      end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(error) }));
    });
    return res;
  }) as typeof res.end;
  async function answer(chunk?: string): Promise<string | undefined> {
    if (res.statusCode !== 200 || typeof chunk !== 'string' || !chunk.startsWith('{')) return chunk;
    const answered = JSON.parse(chunk) as { ConsumedCapacity?: Consumed };
    const consumed = answered.ConsumedCapacity;
    if (!consumed || !write || !table || !request) {
      record(consumed?.CapacityUnits);
      return chunk;
    }
    const after =
      operation === 'PutItem'
        ? request.Item
        : operation === 'UpdateItem'
          ? (await ask<{ Item?: Item }>(serve, 'GetItem', { TableName: request.TableName, Key: request.Key, ConsistentRead: true })).Item
          : undefined;
    const tableUnits = consumed.CapacityUnits;
    const indexes: Record<string, { CapacityUnits: number }> = {};
    for (const index of table.GlobalSecondaryIndexes ?? []) {
      const old = inIndex(before, index.KeySchema);
      const now = inIndex(after, index.KeySchema);
      const writes = old && now ? (sameKey(before!, after!, index.KeySchema) ? 1 : 2) : old || now ? 1 : 0;
      if (writes) indexes[index.IndexName] = { CapacityUnits: writes * tableUnits };
    }
    const indexUnits = Object.values(indexes).reduce((s, i) => s + i.CapacityUnits, 0);
    answered.ConsumedCapacity = {
      ...consumed,
      CapacityUnits: tableUnits + indexUnits,
      ...(request.ReturnConsumedCapacity === 'INDEXES' ? { Table: { CapacityUnits: tableUnits }, GlobalSecondaryIndexes: indexes } : {}),
    };
    record(answered.ConsumedCapacity.CapacityUnits);
    const text = JSON.stringify(answered);
    // The SDK checks the answer's CRC32.
    res.setHeader('x-amz-crc32', crc32(text));
    res.setHeader('Content-Length', Buffer.byteLength(text, 'utf8'));
    return text;
  }
  serve(replay as unknown as IncomingMessage, res);
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
