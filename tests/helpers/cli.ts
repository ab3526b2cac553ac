import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './python';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The last non-empty line of stdout, parsed as JSON. */
  json<T = unknown>(): T;
}

/** Runs the built `cai` command as a user would (`npm test` builds dist/ first). */
export function cai(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const run = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  return {
    status: run.status,
    stdout: run.stdout,
    stderr: run.stderr,
    json<T>() {
      const lines = run.stdout.trim().split('\n');
      return JSON.parse(lines[lines.length - 1]) as T;
    },
  };
}
