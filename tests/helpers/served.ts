import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../../local/paths';
import { cai } from './cli';

/** What `cai stack env` exports for the stack serving `dir`, as a user would `eval` it. */
export async function stackEnv(dir: string): Promise<{ status: number | null; stdout: string; env: Record<string, string> }> {
  const printed = await cai(['stack', 'env', '--dir', dir]);
  const env = Object.fromEntries([...printed.stdout.matchAll(/^export (\w+)='([^']*)'$/gm)].map(([, k, v]) => [k, v]));
  return { status: printed.status, stdout: printed.stdout, env };
}

/**
 * The AWS CLI against the stack serving `dir`, with its exports and nothing else of AWS's (the suite's
 * own settings, tests/setup-env.ts, under them). A failure is returned, not thrown: its code and stderr
 * are what some tests test.
 */
export async function awsCli(dir: string, cwd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { env } = await stackEnv(dir);
  return promisify(execFile)(join(ROOT, '.venv-awscli', 'bin', 'aws'), args, {
    cwd,
    env: { ...process.env, ...env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

/** The processes of a process group still alive (a zombie has exited), from /proc/<pid>/stat: state is field 3, the group field 5. */
export function groupMembers(group: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const [state, , pgrp] = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()!.split(' ');
        return Number(pgrp) === group && state !== 'Z';
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/**
 * `cai stack up --dir <dir> …args`, waited for until it prints its exports: in a process group of its
 * own (led by the server), so that everything it starts can be found (groupMembers) and stopped.
 * `log()` is what it has written to stderr so far.
 */
export async function serveStack(dir: string, args: string[]): Promise<{ server: ChildProcess; log: () => string }> {
  const server = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'stack', 'up', '--dir', dir, ...args], {
    cwd: ROOT,
    detached: true,
  });
  let log = '';
  let printed = '';
  server.stderr!.on('data', (d) => (log += d));
  server.stdout!.on('data', (d) => (printed += d));
  const deadline = Date.now() + 60_000;
  while (!printed.includes('export CAI_RUNS_TABLE=')) {
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`cai stack up did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { server, log: () => log };
}
