import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildSync } from 'esbuild';
import { ROOT } from '../../local/paths';
import { FUNCTIONS } from '../../local/template';
import { tempFolder } from '../helpers/temp';

/**
 * Tests leave nothing in the system's temp folder: every test file makes its folders with
 * tempFolder (tests/helpers/temp.ts), removed once the file is done, after its stacks and servers
 * have closed; the build removes its scratch folders even when it fails. (The local stack's cache of
 * built artifacts, cai-artifacts-<digest>, is kept on purpose: docs/local-stack.md.)
 */
function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(folder, entry.name)) : entry.name.endsWith('.ts') ? [join(folder, entry.name)] : [],
  );
}

test('no test file makes a folder under the temp folder but through tempFolder', () => {
  const helper = join(ROOT, 'tests', 'helpers', 'temp.ts');
  const direct = sources(join(ROOT, 'tests'))
    .filter((file) => file !== helper && /\btmpdir\(\)/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(ROOT, file));
  expect(direct).toEqual([]);
});

test("a test file's temp folders are removed after its last afterAll hook, and not before", () => {
  const work = tempFolder('cai-temp-check-');
  const made = join(work, 'made.txt');
  // A test file that makes a folder, and writes into it from an afterAll hook declared after the
  // call, as a file that closes its stack there would still be using it.
  writeFileSync(
    join(work, 'fixture.test.ts'),
    `import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempFolder } from ${JSON.stringify(join(ROOT, 'tests', 'helpers', 'temp'))};
const folder = tempFolder('cai-temp-fixture-');
writeFileSync(${JSON.stringify(made)}, folder);
test('uses it', () => writeFileSync(join(folder, 'during'), ''));
afterAll(() => writeFileSync(join(folder, 'after-all'), ''));
`,
  );
  const config = {
    rootDir: ROOT,
    roots: [work],
    testEnvironment: '<rootDir>/tests/environment.cjs',
    transform: { '\\.[cm]?[jt]s$': '<rootDir>/scripts/jest-esbuild.cjs' },
    testMatch: ['**/fixture.test.ts'],
  };
  const run = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'), '--config', JSON.stringify(config), '--no-watchman', '--ci'],
    { cwd: ROOT, encoding: 'utf8' },
  );
  expect(run.stderr).toMatch(/Tests:\s+1 passed, 1 total/);
  expect(run.status).toBe(0); // the afterAll hook could write into the folder: it was still there
  const folder = readFileSync(made, 'utf8');
  expect(folder).toMatch(/cai-temp-fixture-/);
  expect(existsSync(folder)).toBe(false);
});

test("the build's scratch folder (cai-build-*) is removed when what it bundles fails to build", () => {
  const work = tempFolder('cai-build-check-');
  const scratch = join(work, 'tmp');
  mkdirSync(scratch);
  // An inference build in a tree of its own: trivial handlers, the real packages, and the model-file
  // reader the build bundles to check the model's card, broken.
  mkdirSync(join(work, 'functions', 'inference'), { recursive: true });
  mkdirSync(join(work, 'functions', 'commons', 'model'), { recursive: true });
  for (const entry of ['handler.ts', 'worker.ts']) writeFileSync(join(work, 'functions', 'inference', entry), 'export {};\n');
  writeFileSync(join(work, 'functions', 'commons', 'model', 'model-file.ts'), 'export const broken = ;\n');
  symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
  const run = spawnSync(
    process.execPath,
    [
      join(ROOT, 'scripts', 'build.mjs'),
      '--lambda',
      'inference',
      '--out',
      join(work, 'out'),
      '--model',
      join(ROOT, 'model', 'default.onnx'),
    ],
    { cwd: work, encoding: 'utf8', env: { ...process.env, TMPDIR: scratch } },
  );
  expect(run.status).not.toBe(0);
  expect(run.stderr).toMatch(/model-file\.ts.*Unexpected ";"/s);
  expect(readdirSync(scratch)).toEqual([]);
});

test("the local stack's artifact folders (cai-lambda-<pid>-*) are named by their process; a gone process's are removed, a running one's kept", () => {
  const scratch = tempFolder('cai-lambda-check-');
  const built = join(scratch, 'sam-build');
  for (const id of Object.keys(FUNCTIONS)) mkdirSync(join(built, id), { recursive: true });
  const gone = spawnSync('true').pid; // a process that has exited
  for (const pid of [gone, process.pid]) mkdirSync(join(scratch, `cai-lambda-${pid}-left`));
  // Its temp directory is TMPDIR's, which a test cannot change for itself: copyArtifacts runs in a process of its own.
  const bundle = join(scratch, 'artifacts.cjs');
  buildSync({
    entryPoints: [join(ROOT, 'local', 'artifacts.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: bundle,
    // Where the repository is, as the sources find it (local/paths.ts), though the bundle sits elsewhere.
    define: { __dirname: JSON.stringify(join(ROOT, 'local')) },
  });
  const script = `require(${JSON.stringify(bundle)}).copyArtifacts(${JSON.stringify(built)}).then(async (a) => {
    console.log(JSON.stringify({ pid: process.pid, folder: a.folder, listed: require('node:fs').readdirSync(${JSON.stringify(scratch)}) }));
    await a.remove();
    console.log(JSON.stringify({ removed: !require('node:fs').existsSync(a.folder) }));
  });`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, TMPDIR: scratch } });
  expect(run.stderr).toBe('');
  const [copied, removed] = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  const name = relative(scratch, copied.folder);
  expect(name).toMatch(new RegExp(`^cai-lambda-${copied.pid}-\\w+$`));
  expect(copied.listed.filter((n: string) => n.startsWith('cai-lambda-')).sort()).toEqual([`cai-lambda-${process.pid}-left`, name].sort());
  expect(removed).toEqual({ removed: true });
});
