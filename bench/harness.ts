/** What the benchmarks share: long-lived JSON-line workers, child commands, medians. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../local/paths';

export const PYTHON = join(ROOT, '.venv', 'bin', 'python');

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The next line a child writes to stdout, each time it is called. */
export function lines(child: ChildProcessWithoutNullStreams): () => Promise<string> {
  const it = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return async () => {
    const { value, done } = await it.next();
    if (done) throw new Error(`${child.spawnfile} ended early`);
    return value as string;
  };
}

/** A long-lived process answering one JSON line per JSON request line. */
export class JsonWorker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly next: () => Promise<string>;
  private stderr = '';

  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { cwd: ROOT });
    this.child.stderr.on('data', (d) => (this.stderr += d));
    this.next = lines(this.child);
  }

  /** Its first line, once it is ready. */
  async ready(): Promise<unknown> {
    return this.read();
  }

  async request<T>(body: object): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(body)}\n`);
    return this.read() as Promise<T>;
  }

  private async read(): Promise<unknown> {
    try {
      return JSON.parse(await this.next());
    } catch (error) {
      throw new Error(`${this.child.spawnargs.join(' ')}: ${(error as Error).message}\n${this.stderr.slice(-2000)}`, { cause: error });
    }
  }

  close(): void {
    this.child.stdin.end();
  }
}

/** Runs a command to its end; its stdout, or an error with its stderr. */
export async function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; echo?: boolean } = {}) {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...options.env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    if (options.echo) process.stderr.write(d);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${code}):\n${stderr.slice(-3000)}`);
  return { stdout, stderr };
}

export const lastJsonLine = <T>(stdout: string): T => JSON.parse(stdout.trim().split('\n').pop()!) as T;

export const say = (text: string) => process.stderr.write(`bench: ${text}\n`);
