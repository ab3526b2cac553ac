import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

// aws-local-stepfunctions uses Promise.withResolvers, which Node 20 lacks.
(Promise as unknown as { withResolvers?: unknown }).withResolvers ??= function withResolvers<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { StateMachine } = require('aws-local-stepfunctions') as typeof import('aws-local-stepfunctions');

/**
 * The local stack's Step Functions: an endpoint speaking the StartExecution / DescribeExecution
 * API (so the initializer uses the real SFN client), running the ASL definition from statemachine/
 * with aws-local-stepfunctions and the real handlers behind every Task.
 *
 * The adapter. The interpreter does not execute a Distributed Map's ItemReader, ResultWriter,
 * ItemBatcher or ToleratedFailurePercentage, so before a run the adapter reads the items the way
 * ItemReader would (the JSON array at its Bucket/Key, evaluated on the execution input), hands
 * them to the Map through ItemsPath, and drops those fields. CAI's Map catches every rank's error
 * inside its ItemProcessor, so a tolerated-failure threshold never decides its outcome; the
 * definition deployed to AWS is unchanged.
 */
export type TaskHandler = (input: { FunctionName: string; Payload: unknown }) => Promise<unknown>;

interface Execution {
  arn: string;
  name: string;
  input: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  startDate: number;
  stopDate?: number;
  output?: string;
  error?: string;
  cause?: string;
  done: Promise<void>;
}

const ITEMS_FIELD = '__caiItems';

function valueAt(input: Record<string, unknown>, path: string): unknown {
  // ItemReader parameters here are plain "$.a.b" paths.
  return path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean)
    .reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k], input);
}

type State = Record<string, unknown>;

/** The definition as the interpreter runs it, and how to fetch the items each Map needs. */
function adapt(definition: State): { definition: State; readers: Map<string, State> } {
  const copy = JSON.parse(JSON.stringify(definition)) as { States: Record<string, State> };
  const readers = new Map<string, State>();
  for (const [name, state] of Object.entries(copy.States)) {
    if (state.Type !== 'Map' || !state.ItemReader) continue;
    readers.set(name, state.ItemReader as State);
    delete state.ItemReader;
    delete state.ResultWriter;
    delete state.ItemBatcher;
    delete state.ToleratedFailurePercentage;
    delete state.ToleratedFailureCount;
    state.ItemsPath = `$.${ITEMS_FIELD}.${name}`;
  }
  return { definition: copy, readers };
}

export interface LocalSfnOptions {
  definition: State;
  s3: S3Client;
  /** Task state name → what runs it. */
  tasks: Record<string, TaskHandler>;
  /** Retry pauses in ms per state name (tests shorten them). */
  retryIntervalOverrides?: Record<string, number>;
}

export class LocalStepFunctions {
  private server?: Server;
  private readonly executions = new Map<string, Execution>();
  endpoint = '';
  readonly stateMachineArn = 'arn:aws:states:us-east-1:000000000000:stateMachine:cai-local';

  constructor(private readonly options: LocalSfnOptions) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.executions.values()].map((e) => e.done));
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** Names of every execution started. */
  executionNames(): string[] {
    return [...this.executions.keys()];
  }

  /** Executions still running, for callers that wait for quiet. */
  running(): Promise<void>[] {
    return [...this.executions.values()].filter((e) => e.status === 'RUNNING').map((e) => e.done);
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '')
        .split('.')
        .pop();
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(payload));
      };
      try {
        const request = JSON.parse(body || '{}');
        if (target === 'StartExecution') reply(200, this.startExecution(request));
        else if (target === 'DescribeExecution') reply(200, this.describe(request.executionArn));
        else reply(400, { __type: 'UnknownOperationException', message: `${target} is not served locally` });
      } catch (error) {
        const e = error as Error;
        reply(400, { __type: e.name, message: e.message });
      }
    });
  }

  private startExecution(request: { stateMachineArn: string; name: string; input?: string }) {
    const existing = this.executions.get(request.name);
    if (existing) {
      if (existing.input === (request.input ?? '{}')) return { executionArn: existing.arn, startDate: existing.startDate / 1000 };
      const error = new Error(`Execution already exists: '${existing.arn}'`);
      error.name = 'ExecutionAlreadyExists';
      throw error;
    }
    const arn = `arn:aws:states:us-east-1:000000000000:execution:cai-local:${request.name}`;
    const execution: Execution = {
      arn,
      name: request.name,
      input: request.input ?? '{}',
      status: 'RUNNING',
      startDate: Date.now(),
      done: Promise.resolve(),
    };
    execution.done = this.run(execution);
    this.executions.set(request.name, execution);
    return { executionArn: arn, startDate: execution.startDate / 1000 };
  }

  private async run(execution: Execution): Promise<void> {
    try {
      const input = JSON.parse(execution.input) as Record<string, unknown>;
      const { definition, readers } = adapt(this.options.definition);
      const items: Record<string, unknown> = {};
      for (const [name, reader] of readers) {
        const parameters = reader.Parameters as Record<string, string>;
        const bucket = String(valueAt(input, parameters['Bucket.$']) ?? parameters.Bucket);
        const key = String(valueAt(input, parameters['Key.$']) ?? parameters.Key);
        const object = await this.options.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        items[name] = JSON.parse(await object.Body!.transformToString());
      }
      const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false, checkPaths: false } });
      const run = machine.run({ ...input, [ITEMS_FIELD]: items } as never, {
        overrides: {
          taskResourceLocalHandlers: this.options.tasks as never,
          retryIntervalOverrides: this.options.retryIntervalOverrides,
        },
      });
      const output = await run.result;
      execution.status = 'SUCCEEDED';
      execution.output = JSON.stringify(output);
    } catch (error) {
      const e = error as Error & { cause?: Error };
      execution.status = 'FAILED';
      execution.error = e.name;
      execution.cause = e.message;
    } finally {
      execution.stopDate = Date.now();
    }
  }

  private describe(arn: string) {
    const execution = [...this.executions.values()].find((e) => e.arn === arn);
    if (!execution) {
      const error = new Error(`Execution does not exist: '${arn}'`);
      error.name = 'ExecutionDoesNotExist';
      throw error;
    }
    const { name, status, input, output, error, cause, startDate, stopDate } = execution;
    return {
      executionArn: arn,
      stateMachineArn: this.stateMachineArn,
      name,
      status,
      input,
      output,
      error,
      cause,
      startDate: startDate / 1000,
      stopDate: stopDate ? stopDate / 1000 : undefined,
    };
  }
}
