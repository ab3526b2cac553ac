import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type Artifacts, copyArtifacts } from '../../local/artifacts';
import { INVOKE_REQUEST_LIMIT_BYTES } from '../../functions/commons/aws/limits';
import type { RankItem } from '../../functions/commons/run/contracts';
import { LambdaError, LocalFunction } from '../../local/lambda-runtime';
import { FUNCTIONS, type FunctionId, functionConfig } from '../../local/template';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

/**
 * What `sam build` ships (npm test runs `sam build` before jest): each artifact starts alone under AWS's Runtime Interface Emulator (INIT
 * must succeed with nothing but the artifact), imports only what it carries, and its native code
 * runs on Amazon Linux 2023.
 */
// Not cai-artifacts-…: that prefix is the local stack's cache of built artifacts (local/artifacts.ts).
const work = tempFolder('cai-sam-artifacts-');
let artifacts: Artifacts;
beforeAll(async () => {
  // sam build's output, copied out of the repository so nothing resolves from its node_modules.
  artifacts = await copyArtifacts(join(ROOT, '.aws-sam', 'build'));
});
afterAll(() => artifacts?.remove());

/** One function's artifact alone, configured from template.yaml; AWS endpoints point nowhere. */
function alone(
  id: FunctionId,
  artifact = artifacts.path(id),
  timeoutS = 20,
  unset: string[] = [],
  env: Record<string, string> = {},
  memoryMb?: number,
): LocalFunction {
  const config = functionConfig(ROOT, id);
  for (const name of unset) delete config.environment[name];
  Object.assign(config.environment, env);
  if (memoryMb) config.memoryMb = memoryMb;
  return new LocalFunction({
    name: `alone-${FUNCTIONS[id]}`,
    artifact,
    handler: config.handler,
    memoryMb: config.memoryMb,
    timeoutS,
    architecture: config.architecture,
    // A refused port unless `env` names another: a request fails here instead of reaching for AWS.
    env: {
      AWS_REGION: 'us-east-1',
      CAI_S3_ENDPOINT: 'http://127.0.0.1:9',
      CAI_DYNAMODB_ENDPOINT: 'http://127.0.0.1:9',
      AWS_MAX_ATTEMPTS: '1',
      ...config.environment,
    },
    concurrency: 1,
    logFile: join(work, `${FUNCTIONS[id]}.log`),
  });
}

/** Invokes once; INIT must have run and succeeded, whatever the handler then made of the event. */
async function initOnce(fn: LocalFunction, event: unknown): Promise<{ result?: unknown; error?: LambdaError }> {
  try {
    return { result: await fn.invoke(event) };
  } catch (error) {
    return { error: error as LambdaError };
  } finally {
    await fn.close();
  }
}

/** An S3 endpoint that denies every request (403 AccessDenied, which no SDK retries): a handler's first request fails at once. */
let denying: Server;
let denyingEndpoint: string;
beforeAll(async () => {
  denying = createServer((request, response) => {
    request.resume();
    response.writeHead(403, { 'content-type': 'application/xml' });
    response.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
  });
  await new Promise<void>((resolve) => denying.listen(0, '127.0.0.1', resolve));
  denyingEndpoint = `http://127.0.0.1:${(denying.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => denying?.close(resolve)));

const rank: RankItem = {
  runId: 'r',
  rank: 0,
  worldSize: 1,
  batchSize: 16,
  dataBucket: 'data',
  partitions: [{ key: 'survey/1.pt', bytes: 1000 }],
  resultBucket: 'results',
  resultPath: 'p',
};

test.each([
  ['InitializerFunction', { Records: [] }, { result: [] }], // no records, no runs
  // The handlers ran, and failed at their first request: the rank's attempt record, refused by the
  // denying S3; the summary's read of the run record, at DynamoDB's refused port.
  ['InferenceFunction', rank, { error: ['AccessDenied', 'Access Denied'] }],
  ['SummarizerFunction', { runId: 'r', resultBucket: 'b', resultPath: 'p' }, { error: ['Error', 'connect ECONNREFUSED 127.0.0.1:9'] }],
] as [FunctionId, unknown, { result?: unknown; error?: [string, string] }][])(
  '%s, as sam build made it, starts alone under the emulator: INIT succeeds',
  async (id, event, expected) => {
    const fn = alone(id, artifacts.path(id), 20, [], { CAI_S3_ENDPOINT: denyingEndpoint });
    const { result, error } = await initOnce(fn, event);
    expect(fn.billed).toHaveLength(1);
    expect(fn.billed[0].initMs).toBeGreaterThan(0);
    expect({ result, error: error && [error.name, error.message] }).toEqual(expected);
    expect(readFileSync(join(work, `${FUNCTIONS[id]}.log`), 'utf8')).toMatch(/INIT RTDONE\(status: success\)/);
  },
);

test('the inference artifact starts its pool at INIT: INFERENCE_WORKERS workers, or one per vCPU share of its memory', async () => {
  const log = (name: string) => readFileSync(join(work, `${name}.log`), 'utf8');
  for (const [workers, memoryMb, expected] of [
    ['2', undefined, 2],
    ['0', 10240, 6],
    ['0', 1769, 1],
  ] as const) {
    const fn = alone('InferenceFunction', artifacts.path('InferenceFunction'), 20, [], { INFERENCE_WORKERS: workers }, memoryMb);
    await initOnce(fn, {});
    const ready = log('inference')
      .split('\n')
      .filter((line) => line.includes('inference workers ready'))
      .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as { workers: number; initMs: number })
      .at(-1)!;
    expect(ready.workers).toBe(expected);
    expect(ready.initMs).toBeGreaterThan(0);
  }
});

test('a required setting missing from the environment fails INIT with one line naming it, not a check silently skipped', async () => {
  const config = functionConfig(ROOT, 'InitializerFunction');
  const fn = alone('InitializerFunction', artifacts.path('InitializerFunction'), 20, ['CONTROL_BUCKET', 'INFERENCE_TIMEOUT_S']);
  const { error } = await initOnce(fn, { Records: [] });
  expect(error).toBeInstanceOf(LambdaError);
  expect([error!.name, error!.message]).toEqual([
    'ConfigError',
    'CONTROL_BUCKET, INFERENCE_TIMEOUT_S are not set (template.yaml sets them on AWS)',
  ]);
  // The control: with the template's environment whole, the same artifact initialises.
  expect(config.environment).toMatchObject({ CONTROL_BUCKET: expect.any(String), INFERENCE_TIMEOUT_S: '900' });
  expect((await initOnce(alone('InitializerFunction'), { Records: [] })).result).toEqual([]);
});

test('an inference artifact built for another architecture fails INIT in one line saying what to set', async () => {
  const other = process.arch === 'arm64' ? 'x86_64' : 'arm64';
  const running = process.arch === 'arm64' ? 'arm64' : 'x86_64';
  // The control: the artifact as built records this machine's architecture (and initialises: the test above).
  expect(JSON.parse(readFileSync(join(artifacts.path('InferenceFunction'), 'architecture.json'), 'utf8'))).toEqual({
    architecture: running,
  });
  const mislabelled = join(work, 'mislabelled');
  cpSync(artifacts.path('InferenceFunction'), mislabelled, { recursive: true });
  writeFileSync(join(mislabelled, 'architecture.json'), JSON.stringify({ architecture: other }));
  const { error } = await initOnce(alone('InferenceFunction', mislabelled), {});
  expect(error).toBeInstanceOf(LambdaError);
  expect([error!.name, error!.message]).toEqual([
    'ConfigError',
    `this artifact was built for ${other} but the function runs on ${running}: set Architecture=${running} in samconfig.toml's parameter_overrides, then sam build and sam deploy again`,
  ]);
});

test('an artifact that imports a package it does not carry fails INIT, as it would on Lambda', async () => {
  const broken = join(work, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'index.mjs'), "import 'onnxruntime-node';\nexport const handler = async () => 'never';\n");
  const { error } = await initOnce(alone('InitializerFunction', broken), { Records: [] });
  expect(error).toBeInstanceOf(LambdaError);
  expect(error!.message).toMatch(/Cannot find package 'onnxruntime-node'/);
});

test("Lambda's 6 MB limits on a synchronous invocation: a larger request is refused unrun, a larger reply is a function error", async () => {
  const echo = join(work, 'echo');
  mkdirSync(echo);
  // Replies with a string of the asked length.
  writeFileSync(join(echo, 'index.mjs'), "export const handler = async (event) => 'x'.repeat(event.replyChars);\n");
  const fn = alone('InitializerFunction', echo);
  try {
    const big = { replyChars: 1, padding: 'y'.repeat(INVOKE_REQUEST_LIMIT_BYTES) };
    await expect(fn.invoke(big)).rejects.toMatchObject({
      name: 'Lambda.RequestEntityTooLargeException',
      message: expect.stringMatching(/^Request must be smaller than 6291456 bytes for the InvokeFunction operation/),
    });
    expect(fn.billed).toHaveLength(0); // never ran
    // Just under the limit, the request runs; a reply of 6 MB plus its JSON quotes is over.
    const under = { replyChars: 10, padding: 'y'.repeat(INVOKE_REQUEST_LIMIT_BYTES - 100) };
    await expect(fn.invoke(under)).resolves.toBe('x'.repeat(10));
    await expect(fn.invoke({ replyChars: INVOKE_REQUEST_LIMIT_BYTES + 99 })).rejects.toMatchObject({
      name: 'Function.ResponseSizeTooLarge',
      message: 'Response payload size exceeded maximum allowed payload size (6291556 bytes).',
    });
    await expect(fn.invoke({ replyChars: INVOKE_REQUEST_LIMIT_BYTES })).resolves.toHaveLength(INVOKE_REQUEST_LIMIT_BYTES);
    expect(fn.billed.map((r) => r.error)).toEqual([undefined, 'Function.ResponseSizeTooLarge', undefined]); // billed
  } finally {
    await fn.close();
  }
});

test('a function past its timeout is stopped by the emulator and reported as Lambda does (Sandbox.Timedout), and billed', async () => {
  const slow = join(work, 'slow');
  mkdirSync(slow);
  writeFileSync(
    join(slow, 'index.mjs'),
    'export const handler = async (event) => new Promise((r) => setTimeout(() => r("done"), event.ms));\n',
  );
  const fn = alone('InitializerFunction', slow, 1);
  try {
    await expect(fn.invoke({ ms: 10 })).resolves.toBe('done');
    await expect(fn.invoke({ ms: 5000 })).rejects.toMatchObject({
      name: 'Sandbox.Timedout',
      message: expect.stringMatching(/^Task timed out after 1\.\d+ seconds$/),
    });
    expect(fn.billed.map((r) => r.error)).toEqual([undefined, 'Sandbox.Timedout']);
    expect(fn.billed[1].durationMs).toBeGreaterThanOrEqual(990);
  } finally {
    await fn.close();
  }
});

test('each bundle imports only packages its artifact carries (only inference carries onnxruntime-node)', () => {
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
  const carried: Record<string, string[]> = {};
  for (const [id, name] of Object.entries(FUNCTIONS)) {
    const out = join(work, `meta-${name}`);
    const metafile = `${out}.json`;
    execFileSync(process.execPath, ['scripts/build.mjs', '--lambda', name, '--out', out, '--metafile', metafile], { cwd: ROOT });
    const meta = JSON.parse(readFileSync(metafile, 'utf8')) as {
      outputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
    };
    const external = Object.values(meta.outputs).flatMap((o) =>
      o.imports.filter((i) => i.external && !builtins.has(i.path)).map((i) => i.path),
    );
    const packageOf = (path: string) =>
      path
        .split('/')
        .slice(0, path.startsWith('@') ? 2 : 1)
        .join('/');
    for (const pkg of new Set(external.map(packageOf))) {
      expect([id, pkg, existsSync(join(out, 'node_modules', pkg, 'package.json'))]).toEqual([id, pkg, true]);
    }
    carried[id] = [...new Set(external.map(packageOf))];
  }
  expect(carried).toEqual({ InitializerFunction: [], InferenceFunction: ['onnxruntime-node'], SummarizerFunction: [] });
});

/** The highest GLIBC_x.y a shared object requires (readelf's version-needs section). */
function maxGlibc(file: string): number[] {
  const versions = [...execFileSync('readelf', ['-V', '--wide', file], { encoding: 'utf8' }).matchAll(/Name: GLIBC_(\d+)\.(\d+)/g)];
  expect(versions.length).toBeGreaterThan(0);
  return versions.map(([, major, minor]) => [Number(major), Number(minor)]).sort((a, b) => b[0] - a[0] || b[1] - a[1])[0];
}

test("the inference artifact's ONNX Runtime needs no GLIBC above Amazon Linux 2023's 2.34, for the template's architecture only", () => {
  const binaries = join(artifacts.path('InferenceFunction'), 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux');
  expect(readdirSync(binaries)).toEqual([functionConfig(ROOT, 'InferenceFunction').architecture === 'arm64' ? 'arm64' : 'x64']);
  for (const file of ['libonnxruntime.so.1', 'onnxruntime_binding.node']) {
    const [major, minor] = maxGlibc(join(binaries, readdirSync(binaries)[0], file));
    expect(major * 1000 + minor).toBeLessThanOrEqual(2 * 1000 + 34);
  }
});

test('the architecture follows the template parameter: Architecture=arm64 ships only the aarch64 binaries', () => {
  const out = join(work, 'arm64');
  execFileSync(
    process.execPath,
    ['scripts/build.mjs', '--lambda', 'inference', '--out', out, '--parameter-overrides', 'Architecture=arm64'],
    { cwd: ROOT },
  );
  const binaries = join(out, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux');
  expect(readdirSync(binaries)).toEqual(['arm64']);
  expect(execFileSync('readelf', ['-h', join(binaries, 'arm64', 'libonnxruntime.so.1')], { encoding: 'utf8' })).toMatch(
    /Machine:\s+AArch64/,
  );
  const [major, minor] = maxGlibc(join(binaries, 'arm64', 'libonnxruntime.so.1'));
  expect(major * 1000 + minor).toBeLessThanOrEqual(2 * 1000 + 34);
});
