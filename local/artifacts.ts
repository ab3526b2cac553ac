import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './paths';
import { FUNCTIONS, type FunctionId } from './template';

/**
 * The deployment artifacts, built by the same command SAM's makefile builder runs
 * (scripts/build.mjs --lambda), into a folder outside the repository: nothing resolves from the
 * repository's node_modules, so a package an artifact does not carry fails there as on Lambda.
 */
export interface Artifacts {
  folder: string;
  path(id: FunctionId): string;
  remove(): Promise<void>;
}

export async function buildArtifacts(options: { model: string; architecture?: 'x86_64' | 'arm64' }): Promise<Artifacts> {
  const folder = await mkdtemp(join(tmpdir(), 'cai-lambda-'));
  if (!relative(ROOT, folder).startsWith('..')) {
    throw new Error(`artifacts would be built inside the repository (${folder}): point TMPDIR elsewhere`);
  }
  const path = (id: FunctionId) => join(folder, FUNCTIONS[id]);
  await Promise.all(
    (Object.keys(FUNCTIONS) as FunctionId[]).map((id) => {
      const args = [join(ROOT, 'scripts', 'build.mjs'), '--lambda', FUNCTIONS[id], '--out', path(id), '--model', options.model];
      if (options.architecture) args.push('--arch', options.architecture);
      return promisify(execFile)(process.execPath, args, { cwd: ROOT });
    }),
  );
  return { folder, path, remove: () => rm(folder, { recursive: true, force: true }) };
}
