import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../../local/paths';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The last non-empty line of stdout, parsed as JSON. */
  json<T = unknown>(): T;
}

/**
 * Runs the built `cai` command as a user would (`npm test` builds dist/ first). Asynchronous, so
 * that servers running inside the test process (the embedded S3) keep answering meanwhile.
 */
export function cai(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) =>
      resolve({
        status,
        stdout,
        stderr,
        json<T>() {
          const lines = stdout.trim().split('\n');
          return JSON.parse(lines[lines.length - 1]) as T;
        },
      }),
    );
  });
}

/** `cai start --dir <dir> …args`, with its last line parsed (an empty object when it is not JSON: the callers assert it). */
export async function caiStart(dir: string, args: string[]): Promise<CliResult & { last: Record<string, unknown> }> {
  const result = await cai(['start', '--dir', dir, ...args]);
  let last: Record<string, unknown> = {};
  try {
    last = result.json<Record<string, unknown>>();
  } catch {
    // asserted by the callers
  }
  return { ...result, last };
}
