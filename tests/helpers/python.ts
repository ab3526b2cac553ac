import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT } from '../../local/paths';
const PYTHON = join(ROOT, '.venv', 'bin', 'python');

/** Runs a script with the project's Python (PyTorch inside); `npm test` creates it first. */
export function runPython(script: string, args: string[] = [], input?: string): string {
  if (!existsSync(PYTHON)) throw new Error('no .venv: run `npm test`, whose pretest step creates it');
  try {
    return execFileSync(PYTHON, [script, ...args], { cwd: ROOT, encoding: 'utf8', input, maxBuffer: 256 << 20 });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`python ${script} failed: ${e.stderr || e.message}`, { cause: error });
  }
}

export const pythonScript = (name: string) => join(ROOT, 'tests', 'python', name);

/** Like runPython, but returns the exit status and both streams instead of throwing. */
export function runPythonStatus(script: string, args: string[] = []): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(PYTHON)) throw new Error('no .venv: run `npm test`, whose pretest step creates it');
  const run = spawnSync(PYTHON, [script, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 << 20 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

export const exporter = join(ROOT, 'model', 'export.py');
