import { cpus } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createDynamoClient, createS3Client } from '../functions/commons/aws/clients';
import type { InitializeOutcome } from '../functions/commons/run/initialize';
import { RunStore } from '../functions/commons/run/run-store';
import { ensureRunsTable, startLocalDynamo, type LocalDynamo } from './dynamo-server';
import { buildArtifacts, type Artifacts } from './artifacts';
import { AccountConcurrency, type BilledInvocation, LambdaError, LocalFunction, TooManyRequestsError } from './lambda-runtime';
import { startLocalS3, type LocalS3 } from './s3-server';
import { ROOT } from './paths';
import { FAILED_EVENTS_FOLDER, type InvocationRecord } from '../toolkit/failed-events';
import { checkReservedConcurrency, LOCAL_ACCOUNT_CONCURRENCY, startLocalLambdaApi, type LocalLambdaApi } from './lambda-api';
import type { ServedStack } from './served-stack';
import { LocalStepFunctions } from './sfn-server';
import {
  deployedDefinition,
  FUNCTIONS,
  type FunctionConfig,
  type FunctionId,
  functionConfig,
  LOCAL_STACK_UUID,
  type ResolveOptions,
  eventSources,
  notificationMatches,
} from './template';
import { matchesEventPattern } from './event-pattern';

export { ROOT };

/**
 * The local stack: embedded S3 (s3rver) and DynamoDB (dynalite), the state machine from
 * statemachine/ run by the local Step Functions endpoint, and the three handler bundles in local
 * Lambda containers. An upload of a payload.json fires the initializer, as the S3 notification
 * does on AWS. State lives under `directory` (default .cai/), so later commands see past runs.
 */
export interface LocalStackOptions {
  directory: string;
  modelPath: string;
  /** Inference containers at once (default: one per core). */
  workers?: number;
  table?: string;
  /** Retry pauses in ms per state (tests shorten them). */
  retryIntervalOverrides?: Record<string, number>;
  inferenceMemoryMb?: number;
  /** Per function, values for environment variables its template declares (as `--env-vars` gives them). */
  environment?: Partial<Record<FunctionId, Record<string, string>>>;
  /** Copy the functions' log lines to stderr as well (`cai invoke`, as `sam local invoke` shows them). */
  echoLogs?: boolean;
  /** Template parameters over samconfig.toml's, as `sam deploy --parameter-overrides` gives them. */
  parameterOverrides?: Record<string, string>;
  /** Use the servers of a stack another process serves, and start only Lambda containers here. */
  attach?: ServedStack;
  /** The account's unreserved concurrency: what GetAccountSettings reports and what the functions may run at once (default 1,000). */
  accountConcurrency?: number;
  /** How long an execution may run before it ends TIMED_OUT, ms (tests shorten it; default as on AWS). */
  executionTimeoutMs?: number;
}

export const DEFAULT_TABLE = 'cai-runs';
/** The local stack's control bucket (the template's ControlBucket) and the demo data's bucket. */
export const CONTROL_BUCKET = 'cai-control';
export const DATA_BUCKET = 'cai-data';

/**
 * The local stack is deployed as one deploys with a data bucket: DataBucketName is cai-data unless
 * samconfig.toml or --parameter-overrides say otherwise (empty: the control bucket, as on AWS).
 */
export const LOCAL_PARAMETERS = { DataBucketName: DATA_BUCKET };

/** One function's configuration in the local stack: the control bucket the template names is cai-control here. */
export function localFunctionConfig(id: FunctionId, options: ResolveOptions = {}): FunctionConfig {
  const config = functionConfig(ROOT, id, { defaults: LOCAL_PARAMETERS, ...options });
  const templateControl = `cai-control-${LOCAL_STACK_UUID}`;
  for (const [name, value] of Object.entries(config.environment)) if (value === templateControl) config.environment[name] = CONTROL_BUCKET;
  return config;
}

/** The buckets the local stack's functions may write: its control bucket and the template's ResultBucketNames. */
export function writableBuckets(parameterOverrides: Record<string, string> = {}): string[] {
  const { environment } = localFunctionConfig('InitializerFunction', { overrides: parameterOverrides });
  return [CONTROL_BUCKET, ...environment.RESULT_BUCKETS.split(',').filter(Boolean)];
}

/** The bucket the local inference function may read partitions from (DataBucketName, or the control bucket), as the initializer checks it. */
export function readableDataBuckets(parameterOverrides: Record<string, string> = {}): string[] {
  return [localFunctionConfig('InitializerFunction', { overrides: parameterOverrides }).environment.DATA_BUCKET];
}

/** Creates a bucket on the embedded S3 unless it is there already. */
export async function ensureBucket(s3: S3Client, name: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: name })).catch((error: Error) => {
    if (!/BucketAlready/.test(error.name)) throw error;
  });
}

/** The local stand-ins for the state machine's and the functions' ARNs. */
const LOCAL_STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:000000000000:stateMachine:cai-local';
const functionArn = (id: FunctionId) => `arn:aws:lambda:us-east-1:000000000000:function:cai-${FUNCTIONS[id]}`;

/** Delays between Lambda's retries of a failed asynchronous invocation (AWS: about 1 and 2 minutes; shortened here). */
export const ASYNC_RETRY_DELAYS_MS = [1000, 2000];

/** Lambda's wait before running a throttled asynchronous event again: from 1 s, doubling, to 5 minutes on AWS; here from 50 ms to 5 s. */
export const ASYNC_THROTTLE_DELAY_MS = { first: 50, max: 5000 };

/**
 * An asynchronous invocation (an S3 notification, an EventBridge rule's): a function error is
 * retried twice, as Lambda does; then, as the template's on-failure destination, Lambda's record
 * of the invocation (the event and the error) is kept under `<state>/failed-events/`, where
 * `cai runs` finds it, before the error is passed on. A throttled event goes back to the queue and
 * is tried again later, which counts as none of the retries.
 */
async function invokeAsync(fn: LocalFunction, event: unknown, stateDirectory: string): Promise<unknown> {
  let throttleDelayMs = ASYNC_THROTTLE_DELAY_MS.first;
  for (let attempt = 0; ;) {
    try {
      return await fn.invoke(event);
    } catch (error) {
      if (error instanceof TooManyRequestsError) {
        await new Promise((r) => setTimeout(r, throttleDelayMs));
        throttleDelayMs = Math.min(throttleDelayMs * 2, ASYNC_THROTTLE_DELAY_MS.max);
        continue;
      }
      if (attempt < ASYNC_RETRY_DELAYS_MS.length) {
        await new Promise((r) => setTimeout(r, ASYNC_RETRY_DELAYS_MS[attempt++]));
        continue;
      }
      const record: InvocationRecord = {
        version: '1.0',
        timestamp: new Date().toISOString(),
        requestContext: {
          requestId: randomUUID(),
          functionArn: `${fn.arn}:$LATEST`,
          condition: 'RetriesExhausted',
          approximateInvokeCount: attempt + 1,
        },
        requestPayload: event,
        responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
        responsePayload: { errorType: (error as Error).name, errorMessage: (error as Error).message },
      };
      const folder = join(stateDirectory, FAILED_EVENTS_FOLDER);
      mkdirSync(folder, { recursive: true });
      writeFileSync(
        join(folder, `${record.timestamp.replace(/[:.]/g, '-')}-${record.requestContext.requestId}.json`),
        JSON.stringify(record, null, 2),
      );
      throw error;
    }
  }
}

/** As `sam local invoke --env-vars` does: only variables the template declares take a value from the file. */
function declaredOnly(declared: Record<string, string>, given: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(Object.entries(given).filter(([name]) => name in declared));
}

export class LocalStack {
  s3!: LocalS3;
  dynamo!: LocalDynamo;
  sfn!: LocalStepFunctions;
  lambdaApi!: LocalLambdaApi;
  /** The account's concurrent executions, which every function draws from: as many as lambdaApi.concurrency reports. */
  account!: AccountConcurrency;
  functions!: { initializer: LocalFunction; inference: LocalFunction; summarizer: LocalFunction };
  artifacts!: Artifacts;
  env: Record<string, string> = {};
  runs!: RunStore;
  private readonly listeners: ((outcomes: InitializeOutcome[]) => void)[] = [];
  private readonly failureListeners: ((error: Error) => void)[] = [];
  private eventSourcesCache?: ReturnType<typeof eventSources>;
  /** Invocations in flight that no caller awaits: notifications and status-rule events. */
  private readonly pending = new Set<Promise<unknown>>();

  private background(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  constructor(readonly options: LocalStackOptions) {}

  /** Outcomes of each initializer invocation, as uploads of payload.json fire it. */
  onInitialized(listener: (outcomes: InitializeOutcome[]) => void, onFailure?: (error: Error) => void): void {
    this.listeners.push(listener);
    if (onFailure) this.failureListeners.push(onFailure);
  }

  /**
   * Starts the servers (or attaches to a served stack's), the functions' containers and the state
   * machine; whatever fails on the way (a build the model breaks, a port) stops what had started.
   */
  async start(): Promise<this> {
    // A reserved concurrency Lambda would refuse fails here, as the deploy would, before anything starts.
    checkReservedConcurrency(this.reservedConcurrency(), this.options.accountConcurrency ?? LOCAL_ACCOUNT_CONCURRENCY);
    try {
      return await this.startParts();
    } catch (error) {
      await this.close().catch(() => {});
      throw error;
    }
  }

  private async startParts(): Promise<this> {
    const { attach } = this.options;
    // The database first: it locks the folder, so a second process on it stops before it opens anything.
    if (!attach) this.dynamo = await startLocalDynamo(join(this.options.directory, 'dynamodb'));
    this.artifacts = await buildArtifacts({ model: this.options.modelPath });
    if (!attach) this.s3 = await startLocalS3(join(this.options.directory, 's3'));
    this.lambdaApi = await startLocalLambdaApi(this.options.accountConcurrency);
    this.account = new AccountConcurrency(() => this.lambdaApi.concurrency);
    await this.connect();
    // A run's own model is fetched into the stack's folder, Lambda's /tmp being each container's own.
    const inference = this.container('InferenceFunction', this.options.workers ?? cpus().length, {
      MODEL_DIRECTORY: join(this.options.directory, 'tmp', 'models'),
    });
    // The summarizer reads the ranks' child executions' histories (attempts that died).
    const summarizer = this.container('SummarizerFunction', 1, attach ? { CAI_SFN_ENDPOINT: attach.stepfunctions } : {});
    if (attach) {
      // The served stack runs the state machine and the notification; here, only containers.
      const initializer = this.container('InitializerFunction', 1, {
        CAI_SFN_ENDPOINT: attach.stepfunctions,
        CAI_LAMBDA_ENDPOINT: this.lambdaApi.endpoint,
      });
      this.functions = { initializer, inference, summarizer };
      return this;
    }
    await this.startStateMachine(inference, summarizer);
    const initializer = this.container('InitializerFunction', 1, {
      CAI_SFN_ENDPOINT: this.sfn.endpoint,
      CAI_LAMBDA_ENDPOINT: this.lambdaApi.endpoint,
    });
    this.functions = { initializer, inference, summarizer };
    this.notifyOnPayload(initializer);
    return this;
  }

  /** What the template (with this stack's parameters) reserves for the inference function, if anything. */
  private reservedConcurrency(): number | undefined {
    return localFunctionConfig('InferenceFunction', { overrides: this.options.parameterOverrides }).reservedConcurrency;
  }

  /** How the functions reach the local stack instead of AWS (their only settings not from template.yaml), and the runs table. */
  private async connect(): Promise<void> {
    const { attach } = this.options;
    const table = this.options.table ?? DEFAULT_TABLE;
    this.env = {
      CAI_S3_ENDPOINT: attach?.s3 ?? this.s3.endpoint,
      CAI_DYNAMODB_ENDPOINT: attach?.dynamodb ?? this.dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
      // The template names its control bucket cai-control-<stack UUID>; locally it is cai-control.
      CONTROL_BUCKET,
    };
    await ensureRunsTable(
      new DynamoDBClient({
        region: 'us-east-1',
        endpoint: this.env.CAI_DYNAMODB_ENDPOINT,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      }),
      table,
    );
    this.runs = new RunStore(createDynamoClient({ ...process.env, ...this.env }), table);
    mkdirSync(join(this.options.directory, 'logs'), { recursive: true });
  }

  /** One function's containers, configured as template.yaml (with the stack's parameters) configures it on AWS. */
  private container(id: FunctionId, concurrency: number, env: Record<string, string> = {}): LocalFunction {
    const workers = this.options.workers ?? cpus().length;
    const config = localFunctionConfig(id, {
      // No more ranks at once than there are containers, as a reserved concurrency would have it:
      // a rank queued for a container would spend its task timeout waiting.
      overrides: {
        ...this.options.parameterOverrides,
        MaxConcurrency: String(workers),
        ...(this.options.inferenceMemoryMb ? { InferenceMemorySize: String(this.options.inferenceMemoryMb) } : {}),
      },
      resources: {
        RunsTable: this.runs.table,
        CaiStateMachine: LOCAL_STATE_MACHINE_ARN,
        'InferenceFunction.Arn': functionArn('InferenceFunction'),
        'SummarizerFunction.Arn': functionArn('SummarizerFunction'),
      },
    });
    return new LocalFunction({
      name: `cai-${FUNCTIONS[id]}`,
      artifact: this.artifacts.path(id),
      handler: config.handler,
      memoryMb: config.memoryMb,
      timeoutS: config.timeoutS,
      architecture: config.architecture,
      env: { ...config.environment, ...declaredOnly(config.environment, this.options.environment?.[id]), ...this.env, ...env },
      concurrency,
      account: this.account,
      logFile: join(this.options.directory, 'logs', `${FUNCTIONS[id]}.log`),
      echoLog: this.options.echoLogs,
    });
  }

  /** statemachine/cai.asl.json with its DefinitionSubstitutions, run by the local Step Functions endpoint. */
  private async startStateMachine(inference: LocalFunction, summarizer: LocalFunction): Promise<void> {
    const byArn = new Map([inference, summarizer].map((f) => [f.arn, f]));
    const invoke = async ({ FunctionName, Payload }: { FunctionName: string; Payload: unknown }) => {
      const fn = byArn.get(FunctionName);
      if (!fn) throw Object.assign(new Error(`no local function ${FunctionName}`), { name: 'Lambda.ResourceNotFoundException' });
      try {
        // The shape of the lambda:invoke integration's result.
        return { StatusCode: 200, ExecutedVersion: '$LATEST', Payload: await fn.invoke(Payload) };
      } catch (error) {
        // A function's error reaches the state as Lambda's error payload, in JSON, for its Cause; Lambda's own (Lambda.*) as its message.
        const { name, message } = error as Error;
        if (!(error instanceof LambdaError) || name.startsWith('Lambda.')) throw error;
        throw new LambdaError(name, JSON.stringify({ errorType: name, errorMessage: message }));
      }
    };
    const definition = JSON.parse(
      deployedDefinition(
        ROOT,
        'CaiStateMachine',
        { defaults: LOCAL_PARAMETERS, overrides: this.options.parameterOverrides },
        { InferenceFunctionArn: inference.arn, SummarizerFunctionArn: summarizer.arn, ControlBucketName: CONTROL_BUCKET },
      ),
    );
    this.sfn = new LocalStepFunctions({
      definition,
      s3: createS3Client({ ...process.env, ...this.env }),
      tasks: { InferRank: invoke, Summarize: invoke, RecordFailure: invoke },
      retryIntervalOverrides: this.options.retryIntervalOverrides,
      executionTimeoutMs: this.options.executionTimeoutMs,
      // template.yaml's EventBridge rules, matched as EventBridge matches them: each end of an execution
      // goes to the functions whose rule's pattern it matches (asynchronous invocations, as on AWS).
      onExecutionEnded: (event) => {
        for (const rule of this.sources().rules) {
          if (!matchesEventPattern(rule.pattern, event)) continue;
          const target =
            rule.functionId === 'SummarizerFunction' ? summarizer : rule.functionId === 'InferenceFunction' ? inference : undefined;
          if (!target) throw new Error(`local stack: rule ${rule.event} targets ${rule.functionId}, which has no container yet`);
          this.background(
            invokeAsync(target, event, this.options.directory).catch((error: Error) =>
              process.stderr.write(`local stack: rule ${rule.event} failed: ${error.name}: ${error.message}\n`),
            ),
          );
        }
      },
    });
    await this.sfn.start();
    if (this.sfn.stateMachineArn !== LOCAL_STATE_MACHINE_ARN) throw new Error('the local state machine ARN changed');
    // Known once it listens; the summarizer's containers start on their first invocation, after this.
    summarizer.spec.env.CAI_SFN_ENDPOINT = this.sfn.endpoint;
  }

  /** What invokes the functions, as template.yaml (resolved with the local stack's names) declares it. */
  sources(): ReturnType<typeof eventSources> {
    this.eventSourcesCache ??= eventSources(ROOT, {
      defaults: LOCAL_PARAMETERS,
      overrides: this.options.parameterOverrides,
      resources: { ControlBucket: CONTROL_BUCKET, CaiStateMachine: LOCAL_STATE_MACHINE_ARN },
    });
    return this.eventSourcesCache;
  }

  /** template.yaml's bucket notification (ObjectCreated, runs/…payload.json) → the initializer, invoked asynchronously. */
  private notifyOnPayload(initializer: LocalFunction): void {
    const notifications = this.sources().notifications.filter((n) => n.functionId === 'InitializerFunction');
    if (notifications.length === 0) throw new Error('local stack: template.yaml sends no bucket event to the initializer');
    this.s3.server.on('event', (event: { Records: { eventName: string; s3: { bucket: { name: string }; object: { key: string } } }[] }) => {
      const record = event.Records[0];
      const fires = notifications.some(
        (n) => n.bucket === record.s3.bucket.name && notificationMatches(n, record.eventName, record.s3.object.key),
      );
      if (!fires) return;
      // s3rver puts the key in the event as written; S3 URL-encodes it (space as +), and the
      // initializer decodes it as it must on AWS.
      const delivered = structuredClone(event);
      for (const r of delivered.Records) r.s3.object.key = s3EventKey(r.s3.object.key);
      this.background(
        invokeAsync(initializer, delivered, this.options.directory).then(
          (outcomes) => {
            for (const listener of this.listeners) listener(outcomes as InitializeOutcome[]);
          },
          (error: Error) => {
            if (this.failureListeners.length === 0)
              process.stderr.write(`local stack: initializer failed: ${error.name}: ${error.message}\n`);
            for (const listener of this.failureListeners) listener(error);
          },
        ),
      );
    });
  }

  /** Resolves when no initializer or execution is running. */
  async idle(): Promise<void> {
    while (this.pending.size || this.sfn?.running().length) {
      await Promise.allSettled([...this.pending, ...(this.sfn?.running() ?? [])]);
    }
  }

  async close(): Promise<void> {
    await this.idle().catch(() => {});
    await Promise.all(Object.values(this.functions ?? {}).map((f) => f.close()));
    await this.sfn?.close();
    await this.lambdaApi?.close();
    await this.dynamo?.close();
    await this.s3?.close();
    await this.artifacts?.remove();
  }

  /** Every invocation's REPORT so far, by function. */
  billedInvocations(): Record<keyof LocalStack['functions'], BilledInvocation[]> {
    const { initializer, inference, summarizer } = this.functions;
    return { initializer: initializer.billed, inference: inference.billed, summarizer: summarizer.billed };
  }
}

/** A key as S3 writes it into an event notification: URL-encoded, a space as +, slashes kept. */
export const s3EventKey = (key: string) =>
  key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+'))
    .join('/');
