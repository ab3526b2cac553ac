import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { CaiError } from '../functions/commons/errors';
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

/** scripts/build.mjs refused or failed to build an artifact: its own reason, in one line. */
export class ArtifactBuildError extends CaiError {}

/** Artifacts built already (`sam build`'s .aws-sam/build/<LogicalId>), copied out of the repository first. */
export async function copyArtifacts(from: string): Promise<Artifacts> {
  const folder = await outsideRepository();
  const path = (id: FunctionId) => join(folder, FUNCTIONS[id]);
  for (const id of Object.keys(FUNCTIONS) as FunctionId[]) {
    if (!existsSync(join(from, id))) throw new Error(`${join(from, id)} is missing: run sam build first`);
    await cp(join(from, id), path(id), { recursive: true });
  }
  return { folder, path, remove: () => rm(folder, { recursive: true, force: true }) };
}

/** Whether a process runs (signal 0 tests without sending; EPERM: it runs, as another user). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A folder for artifacts under the temp directory, named by this process (cai-lambda-<pid>-…), so
 * that the folders of a process that is gone (killed mid-build, or before it closed its stack) are
 * told apart and removed here.
 */
async function outsideRepository(): Promise<string> {
  for (const name of await readdir(tmpdir())) {
    const owner = /^cai-lambda-(\d+)-/.exec(name);
    // Another user's is left alone, as rm cannot remove it.
    if (owner && !running(Number(owner[1]))) await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => {});
  }
  const folder = await mkdtemp(join(tmpdir(), `cai-lambda-${process.pid}-`));
  if (!relative(ROOT, folder).startsWith('..')) {
    await rm(folder, { recursive: true, force: true });
    throw new Error(`artifacts would sit inside the repository (${folder}): point TMPDIR elsewhere`);
  }
  return folder;
}

/** Everything a build reads: sources, the build script, locked dependencies, the model (not the template: no parameter changes an artifact). */
function buildInputsDigest(model: string): string {
  const hash = createHash('sha256');
  const files = (folder: string): string[] =>
    readdirSync(folder, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(folder, e.name)) : [join(folder, e.name)]));
  const inputs = [
    ...files(join(ROOT, 'functions')).sort(),
    ...['scripts/build.mjs', 'package-lock.json'].map((f) => join(ROOT, f)),
    model,
    ...[model.replace(/\.onnx$/i, '.card.json')].filter(existsSync),
  ];
  for (const file of inputs) hash.update(`${relative(ROOT, file)}\0`).update(readFileSync(file));
  return hash.digest('hex').slice(0, 20);
}

/**
 * The three artifacts for these sources and this model, built once and kept under the temp
 * directory by a digest of every input (a change to any source, the lockfile or the model builds
 * anew). Shared read-only by every local stack on this machine.
 */
export async function buildArtifacts(options: { model: string }): Promise<Artifacts> {
  const folder = join(tmpdir(), `cai-artifacts-${buildInputsDigest(options.model)}`);
  const path = (id: FunctionId) => join(folder, FUNCTIONS[id]);
  const artifacts = { folder, path, remove: async () => {} };
  if (existsSync(join(folder, '.complete'))) return artifacts;
  const building = await outsideRepository();
  const builds = await Promise.allSettled(
    (Object.keys(FUNCTIONS) as FunctionId[]).map(async (id) => {
      const args = [
        join(ROOT, 'scripts', 'build.mjs'),
        '--lambda',
        FUNCTIONS[id],
        '--out',
        join(building, FUNCTIONS[id]),
        '--model',
        options.model,
      ];
      try {
        await promisify(execFile)(process.execPath, args, { cwd: ROOT });
      } catch (error) {
        // The build says why on stderr, as `build: <reason>`; the command line around it says nothing a user needs.
        const said = String((error as { stderr?: string }).stderr ?? '')
          .split('\n')
          .map((line) => line.replace(/^build: /, '').trim())
          .filter(Boolean);
        throw new ArtifactBuildError(`cannot build the ${FUNCTIONS[id]} function: ${said.join('; ') || (error as Error).message}`, {
          cause: error,
        });
      }
    }),
  );
  const failed = builds.find((b): b is PromiseRejectedResult => b.status === 'rejected');
  if (failed) {
    await rm(building, { recursive: true, force: true });
    throw failed.reason;
  }
  await writeFile(join(building, '.complete'), '');
  // Another stack may have finished the same build meanwhile: either copy is whole.
  await rename(building, folder).catch(() => rm(building, { recursive: true, force: true }));
  return artifacts;
}
