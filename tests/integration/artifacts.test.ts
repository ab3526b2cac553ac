import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type Artifacts, copyArtifacts } from '../../local/artifacts';
import { INVOKE_REQUEST_LIMIT_BYTES } from '../../functions/commons/aws/limits';
import type { RankInvocation } from '../../functions/commons/run/contracts';
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

/** One function's artifact alone, configured from template.yaml (with `overrides` over its parameters); AWS endpoints point nowhere. */
function alone(
  id: FunctionId,
  artifact = artifacts.path(id),
  timeoutS = 20,
  unset: string[] = [],
  env: Record<string, string> = {},
  memoryMb?: number,
  overrides: Record<string, string> = {},
): LocalFunction {
  const config = functionConfig(ROOT, id, { overrides });
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

const rank: RankInvocation = {
  attempt: 0,
  item: {
    runId: 'r',
    rank: 0,
    worldSize: 1,
    batchSize: 16,
    dataBucket: 'data',
    partitions: [{ key: 'survey/1.pt', bytes: 1000 }],
    resultBucket: 'results',
    resultPath: 'p',
  },
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

/** Where the inference artifact carries ONNX Runtime's Linux binaries, one folder per CPU (Node's names). */
const BINARIES = join('node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux');

test("an inference artifact without ONNX Runtime's binary for its CPU fails INIT in one line saying what to do", async () => {
  const running = process.arch; // the CPU the emulator's containers run on
  const other = running === 'arm64' ? 'x64' : 'arm64';
  const without = (arch: string) => {
    const pruned = join(work, `without-${arch}`);
    cpSync(artifacts.path('InferenceFunction'), pruned, { recursive: true });
    rmSync(join(pruned, BINARIES, arch), { recursive: true });
    return pruned;
  };
  const { error } = await initOnce(alone('InferenceFunction', without(running)), {});
  expect(error).toBeInstanceOf(LambdaError);
  expect([error!.name, error!.message]).toEqual([
    'OnnxRuntimeBinaryError',
    `this artifact has no ONNX Runtime binary for linux ${running === 'x64' ? 'x86_64' : running} ` +
      `(${BINARIES}/${running}/onnxruntime_binding.node is missing): build it again with sam build, which packs both x86_64 and arm64, then sam deploy`,
  ]);
  // The control: without the other CPU's binary it initialises (onnxruntime-node loads this CPU's only).
  const control = await initOnce(alone('InferenceFunction', without(other)), {});
  expect(control.error?.name).toBe('TypeError'); // the handler ran, and failed on the empty event
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

/** ELF's e_machine (bytes 18–19, little-endian) for the two CPUs Lambda offers. */
const ELF_MACHINE: Record<string, number> = { x64: 0x3e, arm64: 0xb7 };

/** A shared object's e_machine, from its ELF header. */
function elfMachine(file: string): number {
  const header = readFileSync(file).subarray(0, 20);
  expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return header.readUInt16LE(18);
}

/** `sam build` with these template parameters, into a folder of its own; its inference artifact's folder. */
function samBuild(overrides: string): string {
  const out = join(work, `sam-build-${overrides.replace(/\W+/g, '-')}`);
  const { sam } = JSON.parse(readFileSync(join(ROOT, '.venv-sam', 'lambda-runtime.json'), 'utf8')) as { sam: string };
  execFileSync(sam, ['build', '--build-dir', out, '--parameter-overrides', overrides], {
    cwd: ROOT,
    env: { ...process.env, SAM_CLI_TELEMETRY: '0' },
    stdio: 'pipe',
  });
  return join(out, 'InferenceFunction');
}

/** Every file under a folder, relative to it, with its bytes' digest. */
function contents(folder: string): Record<string, string> {
  const entries = readdirSync(folder, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  return Object.fromEntries(
    entries
      .map((e) => join(e.parentPath, e.name))
      .sort()
      .map((file) => [file.slice(folder.length + 1), createHash('sha256').update(readFileSync(file)).digest('hex')]),
  );
}

test("sam build packs ONNX Runtime for both CPUs whatever Architecture says: the same artifact, each binary the right ELF machine and GLIBC ≤ Amazon Linux 2023's 2.34, INIT under either", async () => {
  const built = { x86_64: samBuild('Architecture=x86_64'), arm64: samBuild('Architecture=arm64') };
  // One artifact for both: an Architecture chosen after sam build (sam deploy --guided) cannot mismatch it.
  expect(contents(built.arm64)).toEqual(contents(built.x86_64));
  for (const arch of ['x64', 'arm64']) {
    for (const file of ['libonnxruntime.so.1', 'onnxruntime_binding.node']) {
      const path = join(built.arm64, BINARIES, arch, file);
      expect([arch, file, elfMachine(path)]).toEqual([arch, file, ELF_MACHINE[arch]]);
      const [major, minor] = maxGlibc(path);
      expect(major * 1000 + minor).toBeLessThanOrEqual(2 * 1000 + 34);
    }
  }
  expect(readdirSync(join(built.arm64, BINARIES)).sort()).toEqual(['arm64', 'x64']);
  // Each INITs under the local stack configured with that Architecture (on this machine's CPU: local-stack.md).
  for (const [architecture, artifact] of Object.entries(built)) {
    const fn = alone('InferenceFunction', artifact, 20, [], {}, undefined, { Architecture: architecture });
    const { error } = await initOnce(fn, {});
    // INIT succeeded: the handler ran, and failed on the empty event.
    expect([architecture, error?.name, (fn.billed.at(0)?.initMs ?? 0) > 0]).toEqual([architecture, 'TypeError', true]);
  }
});

/**
 * What `scripts/arm64-env.sh` installed to run AArch64 code here: qemu-user, a sysroot, Node 22 for
 * AArch64 (qemu and sysroot are null on an arm64 machine, which runs it natively).
 */
interface Arm64Env {
  qemu: string | null;
  sysroot: string | null;
  node: string;
}

test('the inference artifact initialises on arm64 (Node 22 for AArch64 under qemu-user): its AArch64 ONNX Runtime loads, the pool starts, and the model predicts what x86_64 predicts', () => {
  const stamp = join(ROOT, '.venv-arm64', 'arm64.json');
  expect([stamp, existsSync(stamp)]).toEqual([stamp, true]); // made by npm test's set-up (scripts/arm64-env.sh)
  const arm64 = JSON.parse(readFileSync(stamp, 'utf8')) as Arm64Env;
  const artifact = artifacts.path('InferenceFunction');
  // INIT as the handler runs it (the pool's workers each load ONNX Runtime), then one batch through
  // the artifact's own onnxruntime-node; prints the CPU it ran on and the model's outputs.
  const script = join(work, 'init-and-predict.mjs');
  writeFileSync(
    script,
    `import { createRequire } from 'node:module';
const artifact = process.argv[2];
process.env.MODEL_PATH = artifact + '/model.onnx';
await import(artifact + '/index.mjs');
const ort = createRequire(artifact + '/index.mjs')('onnxruntime-node');
const session = await ort.InferenceSession.create(artifact + '/model.onnx');
const n = 4;
const feed = (dims) => new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b) }, (_, i) => Math.sin(i) / 2), dims);
const out = await session.run({ image: feed([n, 5, 32, 32]), magnitude: feed([n, 5]) });
console.log(JSON.stringify({ arch: process.arch, outputs: Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Array.from(t.data)])) }));
process.exit(0);
`,
  );
  const run = (command: string, args: string[]) => {
    const stdout = execFileSync(command, [...args, script, artifact], {
      env: { PATH: '/usr/bin:/bin', AWS_REGION: 'us-east-1' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 180_000,
    });
    const lines = stdout.trim().split('\n');
    // The handler's INIT logged its pool, then the script its predictions.
    expect(lines.some((line) => line.includes('"inference workers ready"'))).toBe(true);
    return JSON.parse(lines.at(-1)!) as { arch: string; outputs: Record<string, number[]> };
  };
  const onArm64 = arm64.qemu ? run(arm64.qemu, ['-L', arm64.sysroot!, arm64.node]) : run(arm64.node, []);
  const { node } = JSON.parse(readFileSync(join(ROOT, '.venv-sam', 'lambda-runtime.json'), 'utf8')) as { node: string };
  const onX64 = process.arch === 'x64' ? run(node, []) : undefined;
  expect(onArm64.arch).toBe('arm64');
  if (!onX64) return; // an arm64 machine has no x86_64 to compare with
  expect(onX64.arch).toBe('x64');
  expect(Object.keys(onArm64.outputs)).toEqual(Object.keys(onX64.outputs));
  for (const [name, values] of Object.entries(onX64.outputs)) {
    expect(onArm64.outputs[name]).toHaveLength(values.length);
    // Different kernels (NEON against AVX) round differently: equal to float32 precision, not bit for bit.
    values.forEach((v, i) => expect(Math.abs(onArm64.outputs[name][i] - v)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(v))));
  }
}, 240_000);
