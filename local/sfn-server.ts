import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GET_EXECUTION_HISTORY_RATE, STATE_PAYLOAD_LIMIT_BYTES } from '../functions/commons/aws/limits';
import type { ExecutionStatusChange } from '../functions/commons/run/contracts';
import type { MapRunCounts as WatchedMapRunCounts } from '../toolkit/run-progress';

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
 * The local stack's Step Functions: an endpoint speaking Step Functions' JSON API (StartExecution,
 * StopExecution, DescribeExecution, GetExecutionHistory, ListStateMachines, DescribeStateMachine,
 * ListExecutions, ListMapRuns, DescribeMapRun: the initializer's and summarizer's SDK calls and what
 * `cai runs watch` and the AWS CLI ask), running the ASL definition from statemachine/ with
 * aws-local-stepfunctions and the real handlers behind every Task. A Distributed Map's Map Run is
 * kept from the moment its items are read, its counts moved by the interpreter's iteration events.
 *
 * The adapter. The interpreter does not execute a Distributed Map's ItemReader, ResultWriter,
 * ItemBatcher or ToleratedFailurePercentage, so an ItemReader becomes a step before the Map that
 * reads the items the way ItemReader would (the JSON array at its Bucket/Key, evaluated on the
 * Map's input; a failed read is States.ItemReaderFailed, which the Map's Catch handles as on AWS),
 * hands them to the Map through ItemsPath, and those fields are dropped. A ResultWriter becomes a step after
 * the Map that writes what AWS writes (manifest.json and SUCCEEDED_0.json under
 * <Prefix>/<map run id>/) and puts {MapRunArn, ResultWriterDetails} where the Map's ResultPath
 * says. CAI's Map catches every rank's error inside its ItemProcessor, so a tolerated-failure
 * threshold never decides its outcome; the definition deployed to AWS is unchanged.
 *
 * The Context object's $$.State.RetryCount, which the interpreter lacks, is emulated for the Tasks
 * of such a Map's ItemProcessor: the adapter marks each item with its iteration, points the path at
 * that mark ($$.Execution.Input, the child's input), and the task's runner puts in its place how many
 * times it ran that task for that iteration before (a retry is a run again; each Task is entered
 * once per iteration in CAI's definition). The mark is no part of the state AWS would hold: it is
 * left out of sizes, of the task's parameters and of what the ResultWriter writes. Any other $$.State
 * path is refused when the execution starts.
 *
 * AWS's payload limit holds: a state's input or output, a task's parameters and a Map item of
 * more than 256 KiB fail the execution with States.DataLimitExceeded, which no Catch handles.
 * An execution ends as on AWS: SUCCEEDED, FAILED, TIMED_OUT (past the definition's TimeoutSeconds,
 * else a Standard execution's one year) or ABORTED (StopExecution), and each end is announced as
 * EventBridge's "Execution Status Change" event. StartExecution is idempotent only while an
 * execution of that name and input runs; a closed one's name answers ExecutionAlreadyExists.
 * Tests make the API throttle or fail as the service does (injectFaults). GetExecutionHistory is
 * held to AWS's token bucket (400 calls, 20 a second), answering ThrottlingException past it.
 */
export type TaskHandler = (input: { FunctionName: string; Payload: unknown }) => Promise<unknown>;

interface Execution {
  arn: string;
  name: string;
  input: string;
  status: ExecutionStatus;
  startDate: number;
  /** Ends the run as TIMED_OUT or ABORTED, with the error and cause AWS reports. */
  stop: (status: 'TIMED_OUT' | 'ABORTED', error: string, cause: string) => void;
  stopDate?: number;
  output?: string;
  error?: string;
  cause?: string;
  done: Promise<void>;
  /** Each Map state's iterations (its child executions on AWS), by index. */
  iterations: Map<string, Map<number, Iteration>>;
  /** State transitions as Step Functions bills them: each state entered (in child executions too), each retry, each child execution's start. */
  transitions: number;
  /** Each Distributed Map's Map Run, by the Map state's name (one per Map state entered). */
  mapRuns: Map<string, MapRun>;
}

/** The child executions' (and items') counts of a Map Run, as DescribeMapRun reports them: what the watch reads, and redrive's two. */
interface MapRunCounts extends WatchedMapRunCounts {
  failuresNotRedrivable: number;
  pendingRedrive: number;
}

/** A Distributed Map's run: what ListMapRuns and DescribeMapRun answer. One item is one child execution here (no ItemBatcher). */
interface MapRun {
  id: string;
  arn: string;
  executionArn: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  startDate: number;
  stopDate?: number;
  maxConcurrency: number;
  toleratedFailurePercentage: number;
  toleratedFailureCount: number;
  counts: MapRunCounts;
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
  /** Resolves once its end's event is recorded: every event of it before is too. */
  recorded: Promise<void>;
  markRecorded: () => void;
}

/** The longest a ResultWriter waits for its iterations' events to be recorded (they reach the log after the interpreter ran them). */
const EVENTS_RECORDED_WAIT_MS = 5000;

/** A Map's iteration by index, made (started with the execution, until its own start is recorded) the first time it is asked for. */
function iterationAt(execution: Execution, map: string, index: number): Iteration {
  if (!execution.iterations.has(map)) execution.iterations.set(map, new Map());
  const iterations = execution.iterations.get(map)!;
  let iteration = iterations.get(index);
  if (!iteration) {
    let markRecorded!: () => void;
    const recorded = new Promise<void>((resolve) => (markRecorded = resolve));
    iteration = { startDate: execution.startDate, tasks: [], recorded, markRecorded };
    iterations.set(index, iteration);
  }
  return iteration;
}

type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/**
 * An error the local Step Functions answers instead of a request's reply, as the service does: a
 * throttle past the account's API rate, or a transient 5xx (Step Functions API reference, common errors).
 */
export interface SfnFault {
  code: 'ThrottlingException' | 'ServiceUnavailable' | 'InternalFailure';
  /** Only this action (StartExecution, …); any when unset. */
  operation?: string;
  /** How many matching requests fail; every one when unset. */
  times?: number;
  /** The request is carried out and only its reply is lost, replaced by the error (a 5xx after the work was done). */
  afterServing?: boolean;
}

const FAULT_REPLIES: Record<SfnFault['code'], { status: number; message: string }> = {
  ThrottlingException: { status: 400, message: 'Rate exceeded' },
  ServiceUnavailable: { status: 503, message: 'Service Unavailable' },
  InternalFailure: { status: 500, message: 'An internal error occurred' },
};

/** A Standard workflow's longest execution without a TimeoutSeconds: one year (Step Functions quotas). */
const STANDARD_EXECUTION_LIMIT_MS = 365 * 24 * 3600 * 1000;

const ITEMS_FIELD = '__caiItems';
const RESULTS_FIELD = '__caiMapResults';
/** Each Map item's mark: {[RETRY_COUNT_OF]: "<map>#<index>"}, where $$.State.RetryCount is counted. */
const ITERATION_FIELD = '__caiIteration';
const RETRY_COUNT_OF = '__caiRetryCountOf';
const RETRY_COUNT_PATH = '$$.State.RetryCount';

/** A JSON replacer leaving out the adapter's own fields, which are not part of the state. */
const withoutAdapterFields = (key: string, v: unknown) =>
  key === ITEMS_FIELD || key === RESULTS_FIELD || key === ITERATION_FIELD ? undefined : v;

/** The JSON size AWS would see. */
function payloadBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value, withoutAdapterFields) ?? '');
}

/**
 * A task's parameters as AWS would pass them: the adapter's fields left out, and each iteration's
 * mark where $$.State.RetryCount was replaced by the runs of this task for that iteration so far
 * (`runs`, one execution's, counted here).
 */
function withRetryCounts(task: string, parameters: unknown, runs: Map<string, number>): unknown {
  const counted = new Map<string, number>();
  return JSON.parse(
    JSON.stringify(parameters, (key, value: unknown) => {
      if (key === ITERATION_FIELD) return undefined;
      const of = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[RETRY_COUNT_OF] : undefined;
      if (typeof of !== 'string') return withoutAdapterFields(key, value);
      const id = `${task}\n${of}`;
      if (!counted.has(id)) {
        counted.set(id, (runs.get(id) ?? -1) + 1);
        runs.set(id, counted.get(id)!);
      }
      return counted.get(id);
    }) ?? 'null',
  );
}

/** Points each "<field>.$": "$$.State.RetryCount" of the Tasks' Parameters at the iteration's mark; how many it pointed. */
function markRetryCounts(states: Record<string, State>): number {
  let marked = 0;
  const visit = (node: unknown) => {
    if (node === null || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key.endsWith('.$') && value === RETRY_COUNT_PATH) {
        (node as Record<string, unknown>)[key] = `$$.Execution.Input.${ITERATION_FIELD}`;
        marked++;
      } else visit(value);
    }
  };
  for (const state of Object.values(states)) if (state.Type === 'Task') visit(state.Parameters);
  return marked;
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

interface ItemReaderStep {
  map: string;
  /** Bucket and Key, each a value or a path into the Map's input ("Bucket.$"). */
  parameters: Record<string, string>;
  /** Whether its items carry their iteration's mark (a Task of the Map reads $$.State.RetryCount). */
  markItems: boolean;
  /** The Map's concurrency and failure tolerance as declared, for its Map Run. */
  maxConcurrency?: number;
  maxConcurrencyPath?: string;
  toleratedFailurePercentage?: number;
  toleratedFailureCount?: number;
}

class ItemReaderFailed extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'States.ItemReaderFailed';
  }
}

interface ResultWriterStep {
  map: string;
  parameters: Record<string, string>;
  /** The Map's own ResultPath, where {MapRunArn, ResultWriterDetails} goes. */
  resultPath: string;
}

/** The definition as the interpreter runs it, how to fetch each Map's items, and its result writers. */
function adapt(definition: State): { definition: State; readers: Map<string, ItemReaderStep>; writers: Map<string, ResultWriterStep> } {
  const copy = JSON.parse(JSON.stringify(definition)) as { StartAt: string; States: Record<string, State> };
  const readers = new Map<string, ItemReaderStep>();
  const writers = new Map<string, ResultWriterStep>();
  for (const [name, state] of Object.entries(copy.States)) {
    if (state.Type !== 'Map' || !state.ItemReader) continue;
    const reader = `${name}.ItemReader`;
    const processor = (state.ItemProcessor ?? state.Iterator) as { States: Record<string, State> } | undefined;
    readers.set(reader, {
      map: name,
      parameters: (state.ItemReader as State).Parameters as Record<string, string>,
      markItems: processor ? markRetryCounts(processor.States) > 0 : false,
      maxConcurrency: state.MaxConcurrency as number | undefined,
      maxConcurrencyPath: state.MaxConcurrencyPath as string | undefined,
      toleratedFailurePercentage: state.ToleratedFailurePercentage as number | undefined,
      toleratedFailureCount: state.ToleratedFailureCount as number | undefined,
    });
    // Whatever led to the Map leads to its reader; the reader's failure goes where the Map's would.
    redirect(copy, name, reader);
    copy.States[reader] = {
      Type: 'Task',
      Resource: 'arn:aws:states:::s3:getObject',
      Next: name,
      ...(state.Catch ? { Catch: state.Catch } : {}),
    };
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
  // What the adapter does not emulate is refused, not left to fail each task at run time.
  const unemulated = /"(\$\$\.State\.[\w.]*)"/.exec(JSON.stringify(copy));
  if (unemulated) {
    throw new Error(
      `the local Step Functions emulates ${RETRY_COUNT_PATH} only in the Parameters of a Task of a Distributed Map read by an ItemReader; the definition uses ${unemulated[1]} elsewhere`,
    );
  }
  return { definition: copy, readers, writers };
}

/** The Map states in distributed mode (each iteration a child execution on AWS), at the top level where CAI has them. */
function distributedMaps(definition: State): Set<string> {
  const states = (definition as { States: Record<string, State> }).States;
  return new Set(
    Object.entries(states)
      .filter(([, state]) => {
        const processor = state.ItemProcessor as { ProcessorConfig?: { Mode?: string } } | undefined;
        return state.Type === 'Map' && processor?.ProcessorConfig?.Mode === 'DISTRIBUTED';
      })
      .map(([name]) => name),
  );
}

/** Points StartAt and every transition to `from` at `to`. */
function redirect(machine: { StartAt: string; States: Record<string, State> }, from: string, to: string): void {
  if (machine.StartAt === from) machine.StartAt = to;
  for (const state of Object.values(machine.States)) {
    if (state.Next === from) state.Next = to;
    if (state.Default === from) state.Default = to;
    for (const branch of [...((state.Catch as State[]) ?? []), ...((state.Choices as State[]) ?? [])])
      if (branch.Next === from) branch.Next = to;
  }
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
  /** How long an execution may run, ms (tests shorten it): the definition's TimeoutSeconds, else one year. */
  executionTimeoutMs?: number;
  /** GetExecutionHistory's token bucket (tests shrink it); AWS's by default. */
  historyRate?: { bucket: number; refillPerSecond: number };
}

export class LocalStepFunctions {
  private server?: Server;
  private readonly executions = new Map<string, Execution>();
  /** Child executions the ResultWriter named, by ARN. */
  private readonly children = new Map<string, Iteration>();
  /** Every Map Run, by ARN. */
  private readonly mapRuns = new Map<string, MapRun>();
  endpoint = '';
  readonly stateMachineArn = 'arn:aws:states:us-east-1:000000000000:stateMachine:cai-local';
  /** When this state machine was created: when the server started. */
  private readonly creationDate = Date.now();
  /** The largest payload seen of each kind the limit applies to, bytes: what a run's state sizes were. */
  readonly largestPayloads: Record<string, number> = {};

  /** How long an execution started from now on may run, ms (see LocalSfnOptions). */
  executionTimeoutMs?: number;
  private faults: (SfnFault & { left: number })[] = [];
  private served = 0;
  /** GetExecutionHistory calls refused for the rate (ThrottlingException) so far. */
  historyThrottled = 0;
  private readonly historyRate: { bucket: number; refillPerSecond: number };
  private historyTokens: number;
  private historyRefilledAt = Date.now();

  constructor(private readonly options: LocalSfnOptions) {
    this.executionTimeoutMs = options.executionTimeoutMs;
    this.historyRate = options.historyRate ?? GET_EXECUTION_HISTORY_RATE;
    this.historyTokens = this.historyRate.bucket;
  }

  /** Takes a token from GetExecutionHistory's bucket, refilled for the time since the last call; false: none left. */
  private takeHistoryToken(): boolean {
    const now = Date.now();
    const { bucket, refillPerSecond } = this.historyRate;
    this.historyTokens = Math.min(bucket, this.historyTokens + ((now - this.historyRefilledAt) / 1000) * refillPerSecond);
    this.historyRefilledAt = now;
    if (this.historyTokens < 1) return false;
    this.historyTokens -= 1;
    return true;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.executions.values()].map((e) => e.done));
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The state transitions an execution has made so far (see Execution.transitions). */
  transitionsOf(name: string): number | undefined {
    return this.executions.get(name)?.transitions;
  }

  /** Names of every execution started. */
  executionNames(): string[] {
    return [...this.executions.keys()];
  }

  /** Executions still running, for callers that wait for quiet. */
  running(): Promise<void>[] {
    return [...this.executions.values()].filter((e) => e.status === 'RUNNING').map((e) => e.done);
  }

  /** A test switch: the requests that match fail with these faults, in turn, from now on (replacing earlier ones). */
  injectFaults(...faults: SfnFault[]): void {
    this.faults = faults.map((f) => ({ ...f, left: f.times ?? Infinity }));
  }

  /** Requests answered with an injected fault so far. */
  faultsServed(): number {
    return this.served;
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
      const fault = this.faults.find((f) => f.left > 0 && (!f.operation || f.operation === target));
      if (fault) {
        fault.left--;
        this.served++;
      }
      try {
        const request = JSON.parse(body || '{}');
        if (fault && !fault.afterServing) throw fault;
        const result = this.handle(target, request);
        if (fault) throw fault;
        reply(200, result);
      } catch (error) {
        if (fault) {
          const { status, message } = FAULT_REPLIES[fault.code];
          return reply(status, { __type: fault.code, message });
        }
        const e = error as Error;
        reply(400, { __type: e.name, message: e.message });
      }
    });
  }

  /** One API action's reply; its errors are thrown, named as the API names them. */
  private handle(target: string | undefined, request: Record<string, string>): unknown {
    if (target === 'StartExecution') return this.startExecution(request as never);
    if (target === 'StopExecution') return this.stopExecution(request as never);
    if (target === 'DescribeExecution') return this.describe(request.executionArn);
    if (target === 'GetExecutionHistory') {
      if (!this.takeHistoryToken()) {
        this.historyThrottled++;
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      }
      return this.history(request.executionArn);
    }
    if (target === 'ListStateMachines') return this.listStateMachines();
    if (target === 'DescribeStateMachine') return this.describeStateMachine(request.stateMachineArn);
    if (target === 'ListExecutions') return this.listExecutions(request as never);
    if (target === 'ListMapRuns') return this.listMapRuns(request as never);
    if (target === 'DescribeMapRun') return this.describeMapRun(request.mapRunArn);
    throw Object.assign(new Error(`${target} is not served locally`), { name: 'UnknownOperationException' });
  }

  private startExecution(request: { stateMachineArn: string; name: string; input?: string }) {
    const existing = this.executions.get(request.name);
    if (existing) {
      // Idempotent only while it runs with the same input; a closed execution's name is taken (StartExecution's API reference).
      if (existing.status === 'RUNNING' && existing.input === (request.input ?? '{}'))
        return { executionArn: existing.arn, startDate: existing.startDate / 1000 };
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
      stop: () => {},
      done: Promise.resolve(),
      iterations: new Map(),
      transitions: 0,
      mapRuns: new Map(),
    };
    execution.done = this.run(execution);
    this.executions.set(request.name, execution);
    return { executionArn: arn, startDate: execution.startDate / 1000 };
  }

  private stopExecution(request: { executionArn: string; error?: string; cause?: string }) {
    const execution = [...this.executions.values()].find((e) => e.arn === request.executionArn);
    if (!execution)
      throw Object.assign(new Error(`Execution Does Not Exist: '${request.executionArn}'`), { name: 'ExecutionDoesNotExist' });
    execution.stop('ABORTED', request.error ?? '', request.cause ?? '');
    return { stopDate: (execution.stopDate ?? Date.now()) / 1000 };
  }

  private async run(execution: Execution): Promise<void> {
    // The first payload over the limit ends the execution, past any Catch, as on AWS.
    let overLimit: DataLimitExceeded | undefined;
    // A stop from outside (StopExecution, the execution's time limit) ends it the same way.
    let stopped: { status: 'TIMED_OUT' | 'ABORTED'; error: string; cause: string } | undefined;
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
    execution.stop = (status, error, cause) => {
      if (execution.status !== 'RUNNING' || stopped) return;
      stopped = { status, error, cause };
      abort();
    };
    const limitSeconds = (this.options.definition as { TimeoutSeconds?: number }).TimeoutSeconds;
    const timeoutMs = this.executionTimeoutMs ?? (limitSeconds !== undefined ? limitSeconds * 1000 : STANDARD_EXECUTION_LIMIT_MS);
    // Past 2^31 - 1 ms a timer fires at once: a year is never waited for here.
    const timer =
      timeoutMs < 2 ** 31
        ? setTimeout(() => execution.stop('TIMED_OUT', 'States.Timeout', `the execution ran longer than ${timeoutMs / 1000} s`), timeoutMs)
        : undefined;
    try {
      const input = JSON.parse(execution.input) as Record<string, unknown>;
      const { definition, readers, writers } = adapt(this.options.definition);
      const distributed = distributedMaps(this.options.definition);
      const tasks: Record<string, (input: never) => Promise<unknown>> = {};
      // Each task's runs per Map iteration: its $$.State.RetryCount.
      const runs = new Map<string, number>();
      for (const [name, handler] of Object.entries(this.options.tasks)) {
        // Over the limit, the task never runs: the execution is failing (already aborted).
        tasks[name] = async (parameters) => {
          const given = withRetryCounts(name, parameters, runs) as Parameters<TaskHandler>[0];
          if (!check(`the input of the ${name} state`, given)) throw overLimit!;
          return handler(given);
        };
      }
      for (const [step, reader] of readers) {
        tasks[step] = async (state) => {
          const items = await this.readItems(reader, state as Record<string, unknown>);
          items.forEach((item, index) => check(`item ${index} of the ${reader.map} state`, item));
          if (overLimit) throw overLimit;
          const marked = reader.markItems
            ? items.map((item, index) => {
                if (item === null || typeof item !== 'object' || Array.isArray(item))
                  throw new Error(
                    `item ${index} of the ${reader.map} state is not an object: the local Step Functions cannot mark it for ${RETRY_COUNT_PATH}`,
                  );
                return { ...item, [ITERATION_FIELD]: { [RETRY_COUNT_OF]: `${reader.map}#${index}` } };
              })
            : items;
          this.startMapRun(execution, reader, state as Record<string, unknown>, items.length);
          return setAt(state as Record<string, unknown>, `$.${ITEMS_FIELD}.${reader.map}`, marked);
        };
      }
      for (const [step, writer] of writers) {
        tasks[step] = (state) => this.writeMapResults(execution, writer, state as Record<string, unknown>);
      }
      const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false, checkPaths: false } });
      const run = machine.run(input as never, {
        overrides: { taskResourceLocalHandlers: tasks as never, retryIntervalOverrides: this.options.retryIntervalOverrides },
      });
      abort = run.abort;
      void (async () => {
        for await (const event of run.eventLogs) {
          this.recordIteration(execution, event);
          // The adapter's own steps (an ItemReader's, a ResultWriter's) are part of their Map on AWS.
          if ((event.type === 'StateEntered' && !/\.(ItemReader|ResultWriter)$/.test(event.state.name)) || event.type === 'StateRetried')
            execution.transitions++;
          // A Distributed Map's child execution is billed a transition for its start (docs/architecture.md, Cost).
          if (event.type === 'MapIterationStarted' && distributed.has(event.parentState.name)) execution.transitions++;
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
      execution.status = stopped?.status ?? 'FAILED';
      execution.error = stopped ? stopped.error : e.name;
      execution.cause = stopped ? stopped.cause : e.message;
    } finally {
      clearTimeout(timer);
      execution.stopDate = Date.now();
      this.endMapRuns(execution);
      this.options.onExecutionEnded?.({
        source: 'aws.states',
        'detail-type': 'Step Functions Execution Status Change',
        detail: {
          executionArn: execution.arn,
          stateMachineArn: this.stateMachineArn,
          name: execution.name,
          status: execution.status,
          input: execution.input,
          error: execution.error || null,
          cause: execution.cause || null,
        },
      });
    }
  }

  /** What an ItemReader does: the JSON array at its Bucket/Key, evaluated on the Map's input. */
  private async readItems(reader: ItemReaderStep, state: Record<string, unknown>): Promise<unknown[]> {
    const field = (name: string) =>
      String(reader.parameters[`${name}.$`] ? valueAt(state, reader.parameters[`${name}.$`]) : reader.parameters[name]);
    const [bucket, key] = [field('Bucket'), field('Key')];
    try {
      const object = await this.options.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const items = JSON.parse(await object.Body!.transformToString()) as unknown;
      if (!Array.isArray(items)) throw new Error('the object is not a JSON array');
      return items;
    } catch (error) {
      throw new ItemReaderFailed(
        `cannot read the items of the ${reader.map} state from s3://${bucket}/${key}: ${(error as Error).name}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  /** What a ResultWriter does after the Map: the children's results to S3, where they went into the state. */
  private async writeMapResults(execution: Execution, writer: ResultWriterStep, state: Record<string, unknown>) {
    const results = (state[RESULTS_FIELD] as Record<string, unknown[]>)[writer.map];
    const items = (state[ITEMS_FIELD] as Record<string, unknown[]>)[writer.map];
    // Each of Bucket and Prefix is a value, or a path into the Map's input ("Bucket.$").
    const field = (name: string) => {
      const path = writer.parameters[`${name}.$`];
      return path === undefined ? writer.parameters[name] : valueAt(state, String(path));
    };
    const bucket = String(field('Bucket'));
    const prefix = String(field('Prefix') ?? '');
    const mapRun = execution.mapRuns.get(writer.map);
    const runId = mapRun?.id ?? randomUUID();
    const mapRunArn = mapRun?.arn ?? this.mapRunArn(writer.map, runId);
    const folder = `${prefix.replace(/\/+$/, '')}${prefix ? '/' : ''}${runId}`;
    const stopped = Date.now();
    // The interpreter has run every iteration; its events may still be on their way to the log.
    const iterations = results.map((_, index) => iterationAt(execution, writer.map, index));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(iterations.map((i) => i.recorded)),
      new Promise((resolve) => (timer = setTimeout(resolve, EVENTS_RECORDED_WAIT_MS))),
    ]);
    clearTimeout(timer);
    const children = results.map((output, index) => {
      const arn = `arn:aws:states:us-east-1:000000000000:execution:cai-local/${writer.map}:${runId}-${index}`;
      const iteration = iterations[index];
      this.children.set(arn, iteration);
      return {
        ExecutionArn: arn,
        Input: JSON.stringify(items[index], withoutAdapterFields),
        InputDetails: { Included: true },
        Name: `${runId}-${index}`,
        Output: JSON.stringify(output, withoutAdapterFields),
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
    if (mapRun) {
      // Every child's result is in SUCCEEDED_0.json: the Map Run has ended.
      mapRun.counts.resultsWritten = children.length;
      mapRun.status = 'SUCCEEDED';
      mapRun.stopDate = Date.now();
    }
    const next = { ...state };
    for (const field of [RESULTS_FIELD, ITEMS_FIELD]) {
      const remaining = { ...(next[field] as Record<string, unknown>) };
      delete remaining[writer.map];
      next[field] = remaining;
    }
    return setAt(next, writer.resultPath, { MapRunArn: mapRunArn, ResultWriterDetails: { Bucket: bucket, Key: manifestKey } });
  }

  /** A Map Run's ARN: the state machine's name, the Map's label (its state name) and the run's id. */
  private mapRunArn(map: string, id: string): string {
    return `${this.stateMachineArn.replace(':stateMachine:', ':mapRun:')}/${map}:${id}`;
  }

  /** The Map Run a Distributed Map starts once its ItemReader has read its items, all of them pending. */
  private startMapRun(execution: Execution, reader: ItemReaderStep, input: Record<string, unknown>, items: number): void {
    const id = randomUUID();
    const fromPath = reader.maxConcurrencyPath ? Number(valueAt(input, reader.maxConcurrencyPath)) : undefined;
    const zero = {
      running: 0,
      succeeded: 0,
      failed: 0,
      timedOut: 0,
      aborted: 0,
      resultsWritten: 0,
      failuresNotRedrivable: 0,
      pendingRedrive: 0,
    };
    const mapRun: MapRun = {
      id,
      arn: this.mapRunArn(reader.map, id),
      executionArn: execution.arn,
      status: 'RUNNING',
      startDate: Date.now(),
      maxConcurrency: fromPath ?? reader.maxConcurrency ?? 0,
      toleratedFailurePercentage: reader.toleratedFailurePercentage ?? 0,
      toleratedFailureCount: reader.toleratedFailureCount ?? 0,
      counts: { ...zero, pending: items, total: items },
    };
    execution.mapRuns.set(reader.map, mapRun);
    this.mapRuns.set(mapRun.arn, mapRun);
  }

  /** An execution that ends while its Map Runs run ends them: ABORTED (its running children aborted) when stopped, else FAILED. */
  private endMapRuns(execution: Execution): void {
    for (const mapRun of execution.mapRuns.values()) {
      if (mapRun.status !== 'RUNNING') continue;
      mapRun.status = execution.status === 'ABORTED' ? 'ABORTED' : 'FAILED';
      mapRun.counts.aborted += mapRun.counts.running;
      mapRun.counts.running = 0;
      mapRun.stopDate = execution.stopDate;
    }
  }

  /** A Map iteration's start, end and task failures, from the interpreter's events (a child execution's history on AWS). */
  private recordIteration(execution: Execution, event: InterpreterEvent): void {
    if (event.index === undefined) return;
    const mapRun = event.parentState && execution.mapRuns.get(event.parentState.name);
    if (mapRun?.status === 'RUNNING') {
      // Each iteration is one child execution: pending, then running, then succeeded or failed.
      const counts = mapRun.counts;
      if (event.type === 'MapIterationStarted') {
        counts.pending--;
        counts.running++;
      } else if (event.type === 'MapIterationSucceeded' || event.type === 'MapIterationFailed') {
        counts.running--;
        counts[event.type === 'MapIterationSucceeded' ? 'succeeded' : 'failed']++;
      }
    }
    if (event.type === 'MapIterationStarted') {
      iterationAt(execution, event.parentState!.name, event.index).startDate = event.timestamp;
      return;
    }
    const iterationOf = () => [...execution.iterations.values()].map((m) => m.get(event.index!)).find(Boolean);
    if (event.type === 'MapIterationSucceeded' || event.type === 'MapIterationFailed') {
      const iteration = iterationAt(execution, event.parentState!.name, event.index);
      iteration.stopDate = event.timestamp;
      iteration.markRecorded();
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

  /** ListStateMachines: the one state machine this server runs. */
  private listStateMachines() {
    const name = this.stateMachineArn.split(':').pop();
    return { stateMachines: [{ stateMachineArn: this.stateMachineArn, name, type: 'STANDARD', creationDate: this.creationDate / 1000 }] };
  }

  private describeStateMachine(arn: string) {
    if (arn !== this.stateMachineArn) throw awsError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
    return {
      stateMachineArn: arn,
      name: arn.split(':').pop(),
      status: 'ACTIVE',
      definition: JSON.stringify(this.options.definition),
      roleArn: 'arn:aws:iam::000000000000:role/cai-local',
      type: 'STANDARD',
      creationDate: this.creationDate / 1000,
    };
  }

  /** ListExecutions of the state machine, newest first, a page of maxResults (AWS's default 100, at most 1000) at a time. */
  private listExecutions(request: {
    stateMachineArn?: string;
    mapRunArn?: string;
    statusFilter?: string;
    maxResults?: number;
    nextToken?: string;
  }) {
    if (request.mapRunArn) throw awsError('ValidationException', "ListExecutions of a Map Run's child executions is not served locally");
    if (request.stateMachineArn !== this.stateMachineArn)
      throw awsError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${request.stateMachineArn}'`);
    const executions = [...this.executions.values()]
      .filter((e) => !request.statusFilter || e.status === request.statusFilter)
      .sort((a, b) => b.startDate - a.startDate)
      .map((e) => ({
        executionArn: e.arn,
        stateMachineArn: this.stateMachineArn,
        name: e.name,
        status: e.status,
        startDate: e.startDate / 1000,
        ...(e.stopDate ? { stopDate: e.stopDate / 1000 } : {}),
      }));
    return page('executions', executions, request);
  }

  /** ListMapRuns of an execution: each Distributed Map it has entered. */
  private listMapRuns(request: { executionArn: string; maxResults?: number; nextToken?: string }) {
    const execution = [...this.executions.values()].find((e) => e.arn === request.executionArn);
    if (!execution) throw awsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${request.executionArn}'`);
    const mapRuns = [...execution.mapRuns.values()].map((m) => ({
      executionArn: m.executionArn,
      mapRunArn: m.arn,
      stateMachineArn: this.stateMachineArn,
      startDate: m.startDate / 1000,
      ...(m.stopDate ? { stopDate: m.stopDate / 1000 } : {}),
    }));
    return page('mapRuns', mapRuns, request);
  }

  /** DescribeMapRun: one item per child execution, so itemCounts and executionCounts are the same counts. */
  private describeMapRun(arn: string) {
    const mapRun = this.mapRuns.get(arn);
    if (!mapRun) throw awsError('ResourceNotFound', `Resource not found: '${arn}'`);
    return {
      mapRunArn: mapRun.arn,
      executionArn: mapRun.executionArn,
      status: mapRun.status,
      startDate: mapRun.startDate / 1000,
      ...(mapRun.stopDate ? { stopDate: mapRun.stopDate / 1000 } : {}),
      maxConcurrency: mapRun.maxConcurrency,
      toleratedFailurePercentage: mapRun.toleratedFailurePercentage,
      toleratedFailureCount: mapRun.toleratedFailureCount,
      itemCounts: { ...mapRun.counts },
      executionCounts: { ...mapRun.counts },
      redriveCount: 0,
    };
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

/** An error as the JSON protocol returns it: its name is the __type. */
function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

/** A page of a List* answer: nextToken is the offset of the next page; maxResults 0 or absent is AWS's default of 100. */
function page<K extends string, T>(
  key: K,
  all: T[],
  request: { maxResults?: number; nextToken?: string },
): Record<K, T[]> & { nextToken?: string } {
  const size = request.maxResults || 100;
  if (!Number.isInteger(size) || size < 0 || size > 1000)
    throw awsError(
      'ValidationException',
      `1 validation error detected: Value '${request.maxResults}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000`,
    );
  const from = request.nextToken ? Number(Buffer.from(request.nextToken, 'base64url').toString()) : 0;
  if (!Number.isInteger(from) || from < 0) throw awsError('InvalidToken', `Invalid Token: '${request.nextToken}'`);
  const next = from + size < all.length ? Buffer.from(String(from + size)).toString('base64url') : undefined;
  return { [key]: all.slice(from, from + size), ...(next ? { nextToken: next } : {}) } as Record<K, T[]> & { nextToken?: string };
}
