import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';

/**
 * A local stand-in for one Lambda function: up to `concurrency` containers (worker processes),
 * each started on demand (a cold start), each serving one invocation at a time; invocations wait
 * for a free container. Errors come back as Lambda reports them: the error's name and message.
 */
export interface FunctionSpec {
  name: string;
  /** The handler bundle (dist/functions/<name>/index.mjs). */
  bundle: string;
  memoryMb: number;
  concurrency: number;
  env: NodeJS.ProcessEnv;
}

export interface InvocationReport {
  durationMs: number;
  maxRssKb: number;
}

export class LambdaError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Container {
  process: ChildProcess;
  ready: Promise<void>;
  busy: boolean;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class LocalFunction {
  private readonly containers: Container[] = [];
  private readonly waiting: (() => void)[] = [];
  private readonly pending = new Map<string, Pending>();
  readonly reports: InvocationReport[] = [];
  /**
   * Fault injection for tests, consulted before each invocation: throw an error as Lambda would
   * report it (throttling, say), or ask for the container to die partway through the invocation.
   */
  intercept?: (event: unknown) => Promise<void | { crashAfterMs: number }>;

  constructor(
    readonly spec: FunctionSpec,
    private readonly workerScript: string,
  ) {}

  get arn(): string {
    return `arn:aws:lambda:us-east-1:000000000000:function:${this.spec.name}`;
  }

  private start(): Container {
    const child = fork(this.workerScript, [], {
      env: {
        ...this.spec.env,
        CAI_HANDLER_BUNDLE: this.spec.bundle,
        AWS_LAMBDA_FUNCTION_NAME: this.spec.name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.spec.memoryMb),
      },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    child.on('message', (message: { type: string; id?: string; result?: unknown; error?: { name: string; message: string }; durationMs?: number; maxRssKb?: number }) => {
      if (message.type === 'ready') readyResolve();
      else if (message.type === 'init-error') readyReject(new LambdaError('Lambda.InitError', message.error!.message));
      else {
        const pending = this.pending.get(message.id!);
        this.pending.delete(message.id!);
        this.reports.push({ durationMs: message.durationMs!, maxRssKb: message.maxRssKb! });
        if (message.type === 'result') pending?.resolve(message.result);
        else pending?.reject(new LambdaError(message.error!.name, message.error!.message));
      }
    });
    child.on('exit', (code, signal) => {
      const index = this.containers.findIndex((c) => c.process === child);
      if (index >= 0) this.containers.splice(index, 1);
      readyReject(new LambdaError('Lambda.InitError', `${this.spec.name} exited during INIT (code ${code})`));
      for (const [id, pending] of this.pending) {
        // What Lambda reports when the runtime dies mid-invocation.
        pending.reject(new LambdaError('Runtime.ExitError', `${this.spec.name}: runtime exited (${signal ?? `code ${code}`})`));
        this.pending.delete(id);
      }
    });
    const container = { process: child, ready, busy: false };
    this.containers.push(container);
    return container;
  }

  private async acquire(): Promise<Container> {
    for (;;) {
      const idle = this.containers.find((c) => !c.busy);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      if (this.containers.length < this.spec.concurrency) {
        const container = this.start();
        container.busy = true;
        return container;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private release(container: Container): void {
    container.busy = false;
    this.waiting.shift()?.();
  }

  async invoke(event: unknown): Promise<unknown> {
    const directive = await this.intercept?.(event);
    const container = await this.acquire();
    try {
      await container.ready;
      const id = randomUUID();
      if (directive) setTimeout(() => container.process.kill('SIGKILL'), directive.crashAfterMs);
      return await new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        container.process.send({ type: 'invoke', id, event });
      });
    } finally {
      this.release(container);
    }
  }

  async close(): Promise<void> {
    for (const c of this.containers.splice(0)) c.process.kill();
  }
}
