import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { vmHwmMb } from '../functions/commons/model/peak-rss';
import { INVOKE_REQUEST_LIMIT_BYTES, INVOKE_RESPONSE_LIMIT_BYTES } from '../functions/commons/aws/limits';
import { descendantsOf, memoryWatch, memoryWatchPreference, type MemoryWatch, type MemoryWatchKind } from './memory-limit';
import { ROOT } from './paths';

/**
 * Lambda containers, run by AWS's own pieces: the Runtime Interface Emulator (from the aws-sam-cli
 * wheel) starts AWS's Node.js Runtime Interface Client (aws-lambda-ric) on Node 22 in a folder
 * holding one deployment artifact, as /var/task holds it on Lambda. Each container has its own
 * ports, INITs once (on its first invocation, as a cold start does), serves one invocation at a
 * time through the emulator's invoke API, and prints Lambda's START/END/REPORT lines, which are
 * read for what Lambda would bill. Each is held to its memory size (local/memory-limit.ts).
 * `scripts/sam-env.sh` installs the three pieces.
 */
export interface LambdaRuntimePaths {
  node: string;
  ric: string;
  rie: Record<'x86_64' | 'arm64', string>;
}

/** This machine's CPU by Lambda's name: the emulator and Node 22 the containers run are built for it. */
const HOST_ARCHITECTURE = process.arch === 'arm64' ? 'arm64' : 'x86_64';

export function lambdaRuntimePaths(): LambdaRuntimePaths {
  const file = join(ROOT, '.venv-sam', 'lambda-runtime.json');
  if (!existsSync(file)) throw new Error(`the local Lambda runtime is not installed: run bash scripts/sam-env.sh (${file} is missing)`);
  return JSON.parse(readFileSync(file, 'utf8')) as LambdaRuntimePaths;
}

export interface FunctionSpec {
  /** The function's name (AWS_LAMBDA_FUNCTION_NAME). */
  name: string;
  /** The deployment artifact's folder: what Lambda unpacks into /var/task. */
  artifact: string;
  handler: string;
  memoryMb: number;
  timeoutS: number;
  /**
   * The function's architecture on Lambda. Its containers run on this machine's CPU whatever it
   * says (the emulator and Node 22 are this machine's; the inference artifact carries ONNX Runtime
   * for both CPUs); a function configured for the other is said so once in its log.
   */
  architecture: 'x86_64' | 'arm64';
  /** The function's environment variables (template.yaml's, plus the local stack's endpoints). */
  env: Record<string, string>;
  /** Containers at once. */
  concurrency: number;
  /** Where the containers' output (the function's log, as CloudWatch would hold it) is appended. */
  logFile?: string;
  /** Also copy the containers' output to this process's stderr. */
  echoLog?: boolean;
  /** How memory is held to memoryMb: a cgroup where one can be made, else polling; this (or CAI_MEMORY_WATCH) forces one. */
  memoryWatch?: MemoryWatchKind;
  /** The account's concurrent executions it draws from, with the account's other functions (none: unlimited). */
  account?: AccountConcurrency;
}

/** One invocation as the emulator's REPORT line gives it, with INIT separated out. */
export interface BilledInvocation {
  requestId: string;
  /** The invocation alone (the emulator counts a cold start's INIT inside Duration; it is taken out). */
  durationMs: number;
  /** INIT of a cold start, from the emulator's INIT REPORT; 0 when warm. */
  initMs: number;
  /** What Lambda bills on demand: duration plus INIT, rounded up to the millisecond. */
  billedMs: number;
  memoryMb: number;
  /** Peak RSS of the runtime process (the emulator prints the memory size here, so it is measured). */
  maxMemoryUsedMb?: number;
  error?: string;
  /** 'error' when the runtime died mid-invocation (killed, out of memory): Lambda's REPORT line says so, with the error type. */
  status?: 'error';
}

/** A REPORT line as Lambda prints it, from an invocation's report. */
export function lambdaReportLine(r: BilledInvocation): string {
  const init = r.initMs > 0 ? `\tInit Duration: ${r.initMs.toFixed(2)} ms` : '';
  const used = r.maxMemoryUsedMb === undefined ? '' : `\tMax Memory Used: ${Math.ceil(r.maxMemoryUsedMb)} MB`;
  const status = r.status ? `\tStatus: ${r.status}\tError Type: ${r.error}` : '';
  return `REPORT RequestId: ${r.requestId}\tDuration: ${r.durationMs.toFixed(2)} ms\tBilled Duration: ${r.billedMs} ms\tMemory Size: ${r.memoryMb} MB${used}${init}${status}`;
}

const RESPONSE_TOO_LARGE = `Response payload size exceeded maximum allowed payload size (${INVOKE_RESPONSE_LIMIT_BYTES} bytes).`;

export class LambdaError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Lambda's refusal of an invocation the account has no concurrent execution for: Invoke's 429, which runs nothing. */
export class TooManyRequestsError extends LambdaError {
  readonly statusCode = 429;
  readonly reason = 'ConcurrentInvocationLimitExceeded';
  constructor() {
    super('Lambda.TooManyRequestsException', 'Rate Exceeded.');
  }
}

/**
 * An account's concurrent executions, shared by all its functions as Lambda's unreserved pool is
 * (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html). An invocation holds one
 * from when Lambda takes it until its reply; one that finds them all in use is refused at once with
 * TooManyRequestsException (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html), never
 * queued. The size is read on each invocation, so a test may change it as the account's quota.
 */
export class AccountConcurrency {
  private held = 0;
  /** Invocations refused so far, by function name. */
  readonly throttled: Record<string, number> = {};

  constructor(private readonly size: () => number) {}

  /** Executions running now. */
  get inUse(): number {
    return this.held;
  }

  /** Executions free now. */
  get free(): number {
    return Math.max(0, this.size() - this.held);
  }

  /** One execution for an invocation of `functionName`, or TooManyRequestsError; call what it returns to give it back. */
  take(functionName: string): () => void {
    if (this.held >= this.size()) {
      this.throttled[functionName] = (this.throttled[functionName] ?? 0) + 1;
      throw new TooManyRequestsError();
    }
    this.held++;
    let returned = false;
    return () => {
      if (returned) return;
      returned = true;
      this.held--;
    };
  }
}

/**
 * What a test may ask of an invocation before it runs: throw as Lambda would, kill the runtime, or
 * kill one of its inference worker threads (local/worker-fault.ts), some milliseconds into the handler.
 */
// Most intercepts return nothing; some ask for a crash.
export type Intercept = (event: unknown) => Promise<{ crashAfterMs: number } | { killWorkerAfterMs: number } | void>;

/** The preload that lets the local stack kill a worker thread (built by scripts/build.mjs). */
function workerFaultPreload(): string {
  const file = join(ROOT, 'dist', 'local', 'worker-fault.js');
  if (!existsSync(file)) throw new Error(`the local stack's worker fault preload is not built: run npm run build (${file} is missing)`);
  return file;
}

const INIT_REPORT = /INIT REPORT\(durationMs: ([\d.]+)\)/;
const REPORT =
  /^REPORT RequestId: (\S+)\s+(?:Init Duration: [\d.]+ ms\s+)?Duration: ([\d.]+) ms\s+Billed Duration: \d+ ms\s+Memory Size: (\d+) MB/;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForPort(port: number, process: ChildProcess): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    if (process.exitCode !== null) throw new Error(`the Runtime Interface Emulator exited (${process.exitCode})`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.connect(port, '127.0.0.1');
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the Runtime Interface Emulator did not listen on ${port}`);
}

/** The processes the emulator started (the runtime), from every thread's children list. */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return []; // not Linux, or the emulator has exited
  }
}

function peakRssOfChildren(pid: number): number | undefined {
  const peaks = childrenOf(pid).map((child) => vmHwmMb(child) ?? 0);
  return peaks.length ? peaks.reduce((a, b) => Math.max(a, b)) : undefined;
}

/**
 * The flags Lambda's Node.js bootstrap (/var/runtime/bootstrap) starts node with: V8's heaps sized
 * from the memory size (old space 90 % of it, semi-space 5 %), so a JavaScript heap that outgrows
 * them aborts (SIGABRT, Runtime.ExitError "signal: aborted") as on Lambda, before the memory limit.
 */
export function nodeArgs(memoryMb: number): string[] {
  const newSpace = Math.floor(memoryMb / 10);
  return [
    '--expose-gc',
    '--max-http-header-size',
    '81920',
    `--max-semi-space-size=${Math.floor(newSpace / 2)}`,
    `--max-old-space-size=${memoryMb - newSpace}`,
  ];
}

/**
 * Where an AWS client in a container goes when nothing points it at the local stack: a loopback
 * port nothing listens on, so it fails here instead of reaching AWS. The SDK takes AWS_ENDPOINT_URL
 * for every service without an endpoint of its own in code (CAI_*_ENDPOINT sets one).
 */
export const NO_AWS_ENDPOINT = 'http://127.0.0.1:9';

/** The SDK's other endpoint settings, which would win over AWS_ENDPOINT_URL (per service) or void it. */
const ENDPOINT_SETTING = /^AWS_ENDPOINT_URL_|^AWS_IGNORE_CONFIGURED_ENDPOINT_URLS$/;
const withoutEndpointSettings = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).filter(([name]) => !ENDPOINT_SETTING.test(name)));

/** What the emulator replies when the runtime process died mid-invocation (killed, crashed). */
const RUNTIME_EXITED = /^RequestId: (\S+) Error: Runtime exited with error: /;

class Container {
  busy = false;
  /** Invocations started, to tell one from the next. */
  invocations = 0;
  private pendingInitMs = 0;
  /** The request id of the invocation running (its START line). */
  private startedRequest?: string;
  /** Resolves once the runtime has finished INIT (again, after a reset). */
  private initialized!: Promise<void>;
  private markInitialized!: () => void;
  private initPending = false;
  /** Resolves once every line of the emulator's output has been read (its streams closed). */
  outputDone: Promise<void> = Promise.resolve();
  private reportWaiter?: (line: { requestId: string; durationMs: number; memoryMb: number }) => void;
  private constructor(
    readonly process: ChildProcess,
    readonly port: number,
    readonly memoryMb: number,
    private readonly memory: MemoryWatch,
    /** Where a `kill-worker` file asks the runtime's worker threads for a death (local/worker-fault.ts). */
    readonly faultDir: string,
    private readonly log?: WriteStream,
  ) {}

  static async start(spec: FunctionSpec, paths: LambdaRuntimePaths, log?: WriteStream): Promise<Container> {
    const echo = spec.echoLog ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
    const [apiPort, port] = [await freePort(), await freePort()];
    const faultDir = mkdtempSync(join(tmpdir(), 'cai-fault-'));
    const env = {
      // What Lambda's own environment holds; nothing of this machine's leaks in.
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      LAMBDA_TASK_ROOT: spec.artifact,
      _HANDLER: spec.handler,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      AWS_LAMBDA_FUNCTION_NAME: spec.name,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memoryMb),
      AWS_LAMBDA_FUNCTION_TIMEOUT: String(spec.timeoutS),
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      CAI_LOCAL_FAULT_DIR: faultDir,
      ...withoutEndpointSettings(spec.env),
      AWS_ENDPOINT_URL: NO_AWS_ENDPOINT,
    };
    const memory = memoryWatch(spec.memoryMb, { prefer: spec.memoryWatch });
    const emulator = memory.spawnArgs(paths.rie[HOST_ARCHITECTURE], [
      '--log-level',
      'info',
      '--runtime-api-address',
      `127.0.0.1:${apiPort}`,
      '--runtime-interface-emulator-address',
      `127.0.0.1:${port}`,
      paths.node,
      ...nodeArgs(spec.memoryMb),
      '--require',
      workerFaultPreload(),
      paths.ric,
      spec.handler,
    ]);
    const child = spawn(emulator.command, emulator.args, { cwd: spec.artifact, env, stdio: ['ignore', 'pipe', 'pipe'] });
    memory.attach(child.pid!);
    child.once('exit', () => {
      memory.close();
      rmSync(faultDir, { recursive: true, force: true });
    });
    const container = new Container(child, port, spec.memoryMb, memory, faultDir, log);
    container.expectInit();
    const readers = [child.stdout!, child.stderr!].map((input) => createInterface({ input }));
    container.outputDone = Promise.all(readers.map((reader) => once(reader, 'close'))).then(() => {});
    for (const reader of readers) {
      reader.on('line', (line) => {
        log?.write(`${line}\n`);
        // The emulator's own REPORT line misstates INIT and memory; `lambdaReportLine` prints Lambda's.
        if (!line.includes('(rapid)') && !line.startsWith('REPORT ')) echo?.(line);
        if (line.includes('INIT START(')) container.expectInit();
        if (line.includes('INIT RTDONE(status: success)')) container.markInitialized();
        const init = INIT_REPORT.exec(line);
        if (init) container.pendingInitMs += Number(init[1]);
        const started = /^START RequestId: (\S+)/.exec(line);
        if (started) container.startedRequest = started[1];
        const report = REPORT.exec(line);
        if (report) container.reportWaiter?.({ requestId: report[1], durationMs: Number(report[2]), memoryMb: Number(report[3]) });
      });
    }
    await waitForPort(port, child);
    return container;
  }

  /** How this container's memory is held to its memory size. */
  get memoryWatch(): MemoryWatchKind {
    return this.memory.kind;
  }

  /** An INIT is coming (the container's first, or after a reset); one still awaited is the same INIT, whose waiters keep waiting for it. */
  private expectInit(): void {
    if (this.initPending) return;
    this.initPending = true;
    this.initialized = new Promise((resolve) => {
      this.markInitialized = () => {
        this.initPending = false;
        resolve();
      };
    });
  }

  /** Kills the runtime `afterMs` into its handler (after INIT), as a crash mid-invocation would. */
  async crashDuringHandler(afterMs: number): Promise<void> {
    const invocation = this.invocations;
    await this.initialized;
    await new Promise((r) => setTimeout(r, afterMs));
    if (this.invocations === invocation && this.busy) this.killRuntime();
  }

  /** Kills one of the runtime's worker threads `afterMs` into its handler; the runtime process lives on. */
  async killWorkerDuringHandler(afterMs: number): Promise<void> {
    const invocation = this.invocations;
    await this.initialized;
    await new Promise((r) => setTimeout(r, afterMs));
    if (this.invocations === invocation && this.busy) writeFileSync(join(this.faultDir, 'kill-worker'), '');
  }

  /** The runtime process under the emulator (the Node.js process running the handler), and anything it started. */
  killRuntime(): void {
    for (const pid of descendantsOf(this.process.pid as number)) process.kill(pid, 'SIGKILL');
  }

  async invoke(event: unknown, timeoutS: number): Promise<{ status: number; body: string; report?: BilledInvocation }> {
    this.invocations++;
    this.startedRequest = undefined;
    const reported = new Promise<{ requestId: string; durationMs: number; memoryMb: number } | undefined>((resolve) => {
      this.reportWaiter = resolve;
    });
    const started = performance.now();
    this.memory.begin();
    let reply: { status: number; body: string };
    try {
      const response = await fetch(`http://127.0.0.1:${this.port}/2015-03-31/functions/function/invocations`, {
        method: 'POST',
        body: JSON.stringify(event ?? null),
        // The emulator enforces the function's timeout itself; this only guards against a hung emulator.
        signal: AbortSignal.timeout((timeoutS + 30) * 1000),
      });
      reply = { status: response.status, body: await response.text() };
    } catch (error) {
      this.memory.end();
      throw error;
    }
    const memory = this.memory.end();
    const elapsedMs = performance.now() - started;
    // The REPORT line follows the reply on the log; a runtime that died prints none.
    let timer: NodeJS.Timeout | undefined;
    const line = await Promise.race([
      reported,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), reply.status === 200 ? 2000 : 200))),
    ]);
    clearTimeout(timer);
    this.reportWaiter = undefined;
    const initMs = this.pendingInitMs;
    this.pendingInitMs = 0;
    if (!line) {
      const died = this.runtimeDied(reply.status, reply.body, elapsedMs, initMs, memory);
      await this.runtimeGone();
      // The emulator starts a new runtime, which INITs, for the next invocation: a fault timed "after
      // INIT" for that invocation waits for the new INIT, not the dead runtime's.
      this.expectInit();
      return died;
    }
    const durationMs = Math.max(0, line.durationMs - initMs);
    return {
      ...reply,
      report: {
        requestId: line.requestId,
        durationMs,
        initMs,
        billedMs: Math.ceil(durationMs + initMs),
        memoryMb: line.memoryMb,
        maxMemoryUsedMb: peakRssOfChildren(this.process.pid!),
      },
    };
  }

  /**
   * Waits (up to 5 s) until the dead runtime's processes are gone, so the next invocation's new runtime
   * does not start beside the old one's memory still charged to the container (on a loaded machine the
   * kernel frees a killed process's pages a little after the kill).
   */
  private async runtimeGone(): Promise<void> {
    const deadline = Date.now() + 5000;
    while (descendantsOf(this.process.pid!).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /**
   * The emulator's reply when the runtime died mid-invocation, made into Lambda's: a runtime killed
   * for its memory is Runtime.OutOfMemory, and Lambda prints a REPORT line for the dead invocation
   * (Status: error, billed up to the death), where the emulator prints none.
   */
  private runtimeDied(
    status: number,
    body: string,
    elapsedMs: number,
    initMs: number,
    memory: { killedForMemory: boolean; peakMb?: number },
  ): { status: number; body: string; report?: BilledInvocation } {
    let reply: { errorType?: string; errorMessage?: string };
    try {
      reply = JSON.parse(body);
    } catch {
      return { status, body };
    }
    const exited = RUNTIME_EXITED.exec(reply?.errorMessage ?? '');
    if (!exited || reply.errorType !== 'Runtime.ExitError') return { status, body };
    const errorType = memory.killedForMemory ? 'Runtime.OutOfMemory' : reply.errorType;
    const durationMs = Math.max(0, elapsedMs - initMs);
    const report: BilledInvocation = {
      requestId: this.startedRequest ?? exited[1],
      durationMs,
      initMs,
      billedMs: Math.ceil(durationMs + initMs),
      memoryMb: this.memoryMb,
      // Lambda shows the memory size for a memory kill; otherwise what the watch saw.
      maxMemoryUsedMb: memory.killedForMemory ? this.memoryMb : memory.peakMb,
      error: errorType,
      status: 'error',
    };
    this.log?.write(`${lambdaReportLine(report)}\n`);
    return { status, body: JSON.stringify({ errorType, errorMessage: reply.errorMessage }), report };
  }
}

/** What the invoke API's reply means: the handler's result, or the error Lambda would report. */
function replyOf(status: number, body: string): { result?: unknown; error?: LambdaError } {
  const timedOut = /^Task timed out after [\d.]+ seconds$/.exec(body.trim());
  if (timedOut) return { error: new LambdaError('Sandbox.Timedout', timedOut[0]) };
  let parsed: unknown;
  try {
    parsed = body === '' ? undefined : JSON.parse(body);
  } catch {
    return status === 200 ? { result: body } : { error: new LambdaError('Runtime.Unknown', body) };
  }
  const error = parsed as { errorType?: string; errorMessage?: string } | undefined;
  if (status !== 200 || (error && typeof error === 'object' && 'errorType' in error && 'errorMessage' in error)) {
    return {
      error: new LambdaError(error?.errorType ?? 'Runtime.ExitError', error?.errorMessage ?? `the runtime failed (HTTP ${status})`),
    };
  }
  return { result: parsed };
}

/**
 * One Lambda function: up to `concurrency` containers, each started on demand (a cold start), each
 * serving one invocation at a time; invocations wait for a free container. An invocation the
 * account has no concurrent execution for is refused (`spec.account`). Errors come back as
 * Lambda reports them (errorType as the name, errorMessage as the message).
 */
export class LocalFunction {
  private readonly containers: Container[] = [];
  private starting = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly paths = lambdaRuntimePaths();
  private readonly log?: WriteStream;
  /** Every invocation's REPORT, in order. */
  readonly billed: BilledInvocation[] = [];
  /** Fault injection for tests, consulted before each invocation. */
  intercept?: Intercept;

  constructor(readonly spec: FunctionSpec) {
    // A bad CAI_MEMORY_WATCH fails the stack's start, not its first invocation.
    memoryWatchPreference();
    if (spec.logFile) this.log = createWriteStream(spec.logFile, { flags: 'a' });
    if (spec.architecture !== HOST_ARCHITECTURE) {
      this.log?.write(
        `(local) ${spec.name} is configured ${spec.architecture}; its containers run on this machine's ${HOST_ARCHITECTURE}\n`,
      );
    }
  }

  get arn(): string {
    return `arn:aws:lambda:us-east-1:000000000000:function:${this.spec.name}`;
  }

  private async acquire(): Promise<Container> {
    for (;;) {
      const idle = this.containers.find((c) => !c.busy && c.process.exitCode === null);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      if (this.containers.length + this.starting < this.spec.concurrency) {
        this.starting++;
        try {
          const container = await Container.start(this.spec, this.paths, this.log);
          container.busy = true;
          this.containers.push(container);
          return container;
        } finally {
          this.starting--;
        }
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private release(container: Container): void {
    container.busy = false;
    this.waiting.shift()?.();
  }

  async invoke(event: unknown): Promise<unknown> {
    // Lambda refuses a synchronous request over 6 MB before any container runs it.
    const requestBytes = Buffer.byteLength(JSON.stringify(event ?? null));
    if (requestBytes > INVOKE_REQUEST_LIMIT_BYTES) {
      throw new LambdaError(
        'Lambda.RequestEntityTooLargeException',
        `Request must be smaller than ${INVOKE_REQUEST_LIMIT_BYTES} bytes for the InvokeFunction operation (this one: ${requestBytes})`,
      );
    }
    // Taken before anything is awaited: the account's executions go to invocations in the order they come.
    const execution = this.spec.account?.take(this.spec.name);
    try {
      const directive = await this.intercept?.(event);
      // Waiting for a container models this machine's cores, not Lambda, which would start another.
      const container = await this.acquire();
      try {
        const reply = container.invoke(event, this.spec.timeoutS);
        if (directive && 'crashAfterMs' in directive) void container.crashDuringHandler(directive.crashAfterMs);
        if (directive && 'killWorkerAfterMs' in directive) void container.killWorkerDuringHandler(directive.killWorkerAfterMs);
        const { status, body, report } = await reply;
        // A reply over the limit is a function error, after the invocation ran (and was billed).
        const { result, error } =
          status === 200 && Buffer.byteLength(body) > INVOKE_RESPONSE_LIMIT_BYTES
            ? { result: undefined, error: new LambdaError('Function.ResponseSizeTooLarge', RESPONSE_TOO_LARGE) }
            : replyOf(status, body);
        if (report) this.billed.push({ ...report, error: error?.name });
        if (error) throw error;
        return result;
      } finally {
        this.release(container);
      }
    } finally {
      execution?.();
    }
  }

  /** CPU seconds (user and system) the runtimes of its containers have used so far, from /proc (USER_HZ: 100 ticks a second). */
  cpuSeconds(): number {
    return this.containers
      .flatMap((c) => descendantsOf(c.process.pid as number))
      .reduce((sum, pid) => {
        try {
          const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
          return sum + (Number(fields[11]) + Number(fields[12])) / 100;
        } catch {
          return sum; // exited meanwhile
        }
      }, 0);
  }

  /** INIT durations of this function's cold starts so far, ms. */
  initDurations(): number[] {
    return this.billed.filter((r) => r.initMs > 0).map((r) => r.initMs);
  }

  /**
   * As Lambda's UpdateFunctionConfiguration: invocations from now on run with these settings, in new
   * containers (the idle ones are stopped; none may be running an invocation).
   */
  async updateConfiguration(changes: Partial<Pick<FunctionSpec, 'timeoutS'>>): Promise<void> {
    if (this.starting > 0 || this.containers.some((c) => c.busy)) {
      throw new Error(`${this.spec.name} is running an invocation: the local stack reconfigures a function at rest`);
    }
    Object.assign(this.spec, changes);
    await this.stopContainers();
  }

  async close(): Promise<void> {
    await this.stopContainers();
    await new Promise((resolve) => (this.log ? this.log.end(resolve) : resolve(undefined)));
  }

  private async stopContainers(): Promise<void> {
    for (const container of this.containers.splice(0)) {
      if (container.process.exitCode === null) {
        container.process.kill('SIGTERM');
        // The emulator stops its runtime and exits; one that hangs is killed after 2 s.
        const kill = setTimeout(() => container.process.kill('SIGKILL'), 2000);
        await once(container.process, 'exit').catch(() => {});
        clearTimeout(kill);
      }
      // Its last lines may still be on their way after it exited: the log ends once they are written.
      await container.outputDone;
    }
  }
}
