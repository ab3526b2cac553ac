import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { STATE_PAYLOAD_LIMIT_BYTES } from '../functions/commons/aws/limits';
import type { ExecutionStatusChange } from '../functions/commons/run/contracts';

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
 * them to the Map through ItemsPath, and drops those fields. A ResultWriter becomes a step after
 * the Map that writes what AWS writes (manifest.json and SUCCEEDED_0.json under
 * <Prefix>/<map run id>/) and puts {MapRunArn, ResultWriterDetails} where the Map's ResultPath
 * says. CAI's Map catches every rank's error inside its ItemProcessor, so a tolerated-failure
 * threshold never decides its outcome; the definition deployed to AWS is unchanged.
 *
 * AWS's payload limit holds: a state's input or output, a task's parameters and a Map item of
 * more than 256 KiB fail the execution with States.DataLimitExceeded, which no Catch handles.
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
  /** Each Map state's iterations (its child executions on AWS), by index. */
  iterations: Map<string, Map<number, Iteration>>;
}

/** What recordIteration reads of the interpreter's events. */
interface InterpreterEvent {
  type: string;
  timestamp: number;
  index?: number;
  parentState?: { name: string };
  state?: { type: string };
  Error?: string;
  Cause?: unknown;
}

/** One Map iteration, as its child execution's history would tell it. */
interface Iteration {
  startDate: number;
  stopDate?: number;
  /** Each run of a task (each retry is one): GetExecutionHistory's TaskStarted, and its TaskFailed when it failed. */
  tasks: { startedAt: number; failed?: { at: number; error: string; cause: string } }[];
}

const ITEMS_FIELD = '__caiItems';
const RESULTS_FIELD = '__caiMapResults';

/** The JSON size AWS would see: the adapter's own fields are not part of the state. */
function payloadBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value, (key, v) => (key === ITEMS_FIELD || key === RESULTS_FIELD ? undefined : v)) ?? '');
}

class DataLimitExceeded extends Error {
  constructor(what: string) {
    super(`${what} has a size exceeding the maximum number of bytes service limit (${STATE_PAYLOAD_LIMIT_BYTES})`);
    this.name = 'States.DataLimitExceeded';
  }
}

function valueAt(input: Record<string, unknown>, path: string): unknown {
  // ItemReader parameters here are plain "$.a.b" paths.
  return path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean)
    .reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k], input);
}

type State = Record<string, unknown>;

interface ResultWriterStep {
  map: string;
  parameters: Record<string, string>;
  /** The Map's own ResultPath, where {MapRunArn, ResultWriterDetails} goes. */
  resultPath: string;
}

/** The definition as the interpreter runs it, how to fetch each Map's items, and its result writers. */
function adapt(definition: State): { definition: State; readers: Map<string, State>; writers: Map<string, ResultWriterStep> } {
  const copy = JSON.parse(JSON.stringify(definition)) as { States: Record<string, State> };
  const readers = new Map<string, State>();
  const writers = new Map<string, ResultWriterStep>();
  for (const [name, state] of Object.entries(copy.States)) {
    if (state.Type !== 'Map' || !state.ItemReader) continue;
    readers.set(name, state.ItemReader as State);
    const writer = state.ResultWriter as State | undefined;
    delete state.ItemReader;
    delete state.ResultWriter;
    delete state.ItemBatcher;
    delete state.ToleratedFailurePercentage;
    delete state.ToleratedFailureCount;
    state.ItemsPath = `$.${ITEMS_FIELD}.${name}`;
    if (writer) {
      const step = `${name}.ResultWriter`;
      writers.set(step, {
        map: name,
        parameters: writer.Parameters as Record<string, string>,
        resultPath: String(state.ResultPath ?? '$'),
      });
      // The writer takes the whole state and returns it with the results replaced by where they went.
      copy.States[step] = {
        Type: 'Task',
        Resource: 'arn:aws:states:::s3:putObject',
        ...(state.Next ? { Next: state.Next } : { End: true }),
        ...(state.Catch ? { Catch: state.Catch } : {}),
      };
      state.ResultPath = `$.${RESULTS_FIELD}.${name}`;
      state.Next = step;
      delete state.End;
    }
  }
  return { definition: copy, readers, writers };
}

function setAt(target: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const keys = path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean);
  if (keys.length === 0) return value as Record<string, unknown>;
  let node = target;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[keys[keys.length - 1]] = value;
  return target;
}

export interface LocalSfnOptions {
  definition: State;
  s3: S3Client;
  /** Task state name → what runs it. */
  tasks: Record<string, TaskHandler>;
  /** Retry pauses in ms per state name (tests shorten them). */
  retryIntervalOverrides?: Record<string, number>;
  /** Called when an execution ends, as EventBridge's "Execution Status Change" event would be sent. */
  onExecutionEnded?: (event: ExecutionStatusChange) => void;
}

export class LocalStepFunctions {
  private server?: Server;
  private readonly executions = new Map<string, Execution>();
  /** Child executions the ResultWriter named, by ARN. */
  private readonly children = new Map<string, Iteration>();
  endpoint = '';
  readonly stateMachineArn = 'arn:aws:states:us-east-1:000000000000:stateMachine:cai-local';
  /** The largest payload seen of each kind the limit applies to, bytes: what a run's state sizes were. */
  readonly largestPayloads: Record<string, number> = {};

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
        else if (target === 'GetExecutionHistory') reply(200, this.history(request.executionArn));
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
      iterations: new Map(),
    };
    execution.done = this.run(execution);
    this.executions.set(request.name, execution);
    return { executionArn: arn, startDate: execution.startDate / 1000 };
  }

  private async run(execution: Execution): Promise<void> {
    // The first payload over the limit ends the execution, past any Catch, as on AWS.
    let overLimit: DataLimitExceeded | undefined;
    let abort = () => {};
    const check = (what: string, value: unknown) => {
      const bytes = payloadBytes(value);
      // The largest payload of each kind (items, a state's input, ...), whatever its index.
      const kind = what.replace(/\d+/g, 'N');
      this.largestPayloads[kind] = Math.max(this.largestPayloads[kind] ?? 0, bytes);
      if (!overLimit && bytes > STATE_PAYLOAD_LIMIT_BYTES) {
        overLimit = new DataLimitExceeded(what);
        abort();
      }
      return !overLimit;
    };
    try {
      const input = JSON.parse(execution.input) as Record<string, unknown>;
      const { definition, readers, writers } = adapt(this.options.definition);
      const items: Record<string, unknown[]> = {};
      for (const [name, reader] of readers) {
        const parameters = reader.Parameters as Record<string, string>;
        const bucket = String(valueAt(input, parameters['Bucket.$']) ?? parameters.Bucket);
        const key = String(valueAt(input, parameters['Key.$']) ?? parameters.Key);
        const object = await this.options.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        items[name] = JSON.parse(await object.Body!.transformToString());
        items[name].forEach((item, index) => check(`item ${index} of the ${name} state`, item));
      }
      if (overLimit) throw overLimit;
      const tasks: Record<string, (input: never) => Promise<unknown>> = {};
      for (const [name, handler] of Object.entries(this.options.tasks)) {
        // Over the limit, the task never runs: the execution is failing (already aborted).
        tasks[name] = async (parameters) => {
          if (!check(`the input of the ${name} state`, parameters)) throw overLimit!;
          return handler(parameters);
        };
      }
      for (const [step, writer] of writers) {
        tasks[step] = (state) => this.writeMapResults(execution, writer, state as Record<string, unknown>, items[writer.map]);
      }
      const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false, checkPaths: false } });
      const run = machine.run({ ...input, [ITEMS_FIELD]: items } as never, {
        overrides: { taskResourceLocalHandlers: tasks as never, retryIntervalOverrides: this.options.retryIntervalOverrides },
      });
      abort = run.abort;
      void (async () => {
        for await (const event of run.eventLogs) {
          this.recordIteration(execution, event);
          if (event.type !== 'StateEntered' && event.type !== 'StateExited') continue;
          const where = `the ${event.type === 'StateEntered' ? 'input' : 'output'} of the ${event.state.name} state`;
          check(where, event.type === 'StateEntered' ? event.state.input : event.state.output);
        }
      })();
      const output = await run.result;
      if (overLimit) throw overLimit;
      check('the execution output', output);
      if (overLimit) throw overLimit;
      execution.status = 'SUCCEEDED';
      execution.output = JSON.stringify(output);
    } catch (error) {
      // The interpreter wraps the state's error; AWS reports the state's own error and cause.
      const wrapped = error as Error & { cause?: Error };
      const e = overLimit ?? (wrapped.cause instanceof Error ? wrapped.cause : wrapped);
      execution.status = 'FAILED';
      execution.error = e.name;
      execution.cause = e.message;
    } finally {
      execution.stopDate = Date.now();
      this.options.onExecutionEnded?.({
        source: 'aws.states',
        'detail-type': 'Step Functions Execution Status Change',
        detail: {
          executionArn: execution.arn,
          name: execution.name,
          status: execution.status,
          input: execution.input,
          error: execution.error ?? null,
          cause: execution.cause ?? null,
        },
      });
    }
  }

  /** What a ResultWriter does after the Map: the children's results to S3, where they went into the state. */
  private async writeMapResults(execution: Execution, writer: ResultWriterStep, state: Record<string, unknown>, items: unknown[]) {
    const results = (state[RESULTS_FIELD] as Record<string, unknown[]>)[writer.map];
    // Each of Bucket and Prefix is a value, or a path into the Map's input ("Bucket.$").
    const field = (name: string) => {
      const path = writer.parameters[`${name}.$`];
      return path === undefined ? writer.parameters[name] : valueAt(state, String(path));
    };
    const bucket = String(field('Bucket'));
    const prefix = String(field('Prefix') ?? '');
    const runId = randomUUID();
    const mapRunArn = `arn:aws:states:us-east-1:000000000000:mapRun:cai-local/${writer.map}:${runId}`;
    const folder = `${prefix.replace(/\/+$/, '')}${prefix ? '/' : ''}${runId}`;
    const stopped = Date.now();
    const iterations = execution.iterations.get(writer.map) ?? new Map<number, Iteration>();
    const children = results.map((output, index) => {
      const arn = `arn:aws:states:us-east-1:000000000000:execution:cai-local/${writer.map}:${runId}-${index}`;
      const iteration = iterations.get(index) ?? { startDate: execution.startDate, tasks: [] };
      this.children.set(arn, iteration);
      return {
        ExecutionArn: arn,
        Input: JSON.stringify(items[index]),
        InputDetails: { Included: true },
        Name: `${runId}-${index}`,
        Output: JSON.stringify(output),
        OutputDetails: { Included: true },
        RedriveCount: 0,
        RedriveStatus: 'NOT_REDRIVABLE',
        RedriveStatusReason: 'Execution is SUCCEEDED and cannot be redriven',
        StartDate: new Date(iteration.startDate).toISOString(),
        StateMachineArn: this.stateMachineArn,
        Status: 'SUCCEEDED',
        StopDate: new Date(iteration.stopDate ?? stopped).toISOString(),
      };
    });
    const put = async (key: string, body: string) => {
      await this.options.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
      return { Key: key, Size: Buffer.byteLength(body) };
    };
    const succeeded = children.length ? [await put(`${folder}/SUCCEEDED_0.json`, JSON.stringify(children))] : [];
    const manifestKey = `${folder}/manifest.json`;
    await put(
      manifestKey,
      JSON.stringify({ DestinationBucket: bucket, MapRunArn: mapRunArn, ResultFiles: { FAILED: [], PENDING: [], SUCCEEDED: succeeded } }),
    );
    const next = { ...state };
    const remaining = { ...(next[RESULTS_FIELD] as Record<string, unknown>) };
    delete remaining[writer.map];
    next[RESULTS_FIELD] = remaining;
    return setAt(next, writer.resultPath, { MapRunArn: mapRunArn, ResultWriterDetails: { Bucket: bucket, Key: manifestKey } });
  }

  /** A Map iteration's start, end and task failures, from the interpreter's events (a child execution's history on AWS). */
  private recordIteration(execution: Execution, event: InterpreterEvent): void {
    if (event.index === undefined) return;
    if (event.type === 'MapIterationStarted') {
      const map = event.parentState!.name;
      if (!execution.iterations.has(map)) execution.iterations.set(map, new Map());
      execution.iterations.get(map)!.set(event.index, { startDate: event.timestamp, tasks: [] });
      return;
    }
    const iterationOf = () => [...execution.iterations.values()].map((m) => m.get(event.index!)).find(Boolean);
    if (event.type === 'MapIterationSucceeded' || event.type === 'MapIterationFailed') {
      const map = execution.iterations.get(event.parentState!.name);
      const iteration = map?.get(event.index);
      if (iteration) iteration.stopDate = event.timestamp;
    } else if ((event.type === 'StateEntered' || event.type === 'StateRetried') && event.state?.type === 'Task') {
      iterationOf()?.tasks.push({ startedAt: event.timestamp });
    } else if (event.type === 'StateFailed' && event.state?.type === 'Task') {
      const task = iterationOf()?.tasks.at(-1);
      if (task) task.failed = { at: event.timestamp, error: String(event.Error), cause: String(event.Cause ?? '') };
    }
  }

  /** GetExecutionHistory of a child execution: its start, each task's start and failure (as the lambda:invoke integration reports them), its end. */
  private history(arn: string) {
    const iteration = this.children.get(arn);
    if (!iteration) {
      const error = new Error(`Execution does not exist: '${arn}'`);
      error.name = 'ExecutionDoesNotExist';
      throw error;
    }
    const events: Record<string, unknown>[] = [{ timestamp: iteration.startDate / 1000, type: 'ExecutionStarted' }];
    for (const task of iteration.tasks) {
      events.push({
        timestamp: task.startedAt / 1000,
        type: 'TaskStarted',
        taskStartedEventDetails: { resourceType: 'lambda', resource: 'invoke' },
      });
      if (!task.failed) continue;
      const { at, error, cause } = task.failed;
      events.push({
        timestamp: at / 1000,
        type: 'TaskFailed',
        taskFailedEventDetails: { resourceType: 'lambda', resource: 'invoke', error, cause },
      });
    }
    if (iteration.stopDate) events.push({ timestamp: iteration.stopDate / 1000, type: 'ExecutionSucceeded' });
    return { events: events.map((event, i) => ({ id: i + 1, previousEventId: i, ...event })) };
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
