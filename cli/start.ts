/**
 * `npm start`: the whole CAI flow on this machine, started by a real payload.json upload.
 *
 *   npm start                                   synthesize ~2,000 galaxies and run them
 *   npm start -- --partitions <dir> --payload <payload.json> [--model <file.onnx>]
 *   npm start -- --serve                        keep the local stack running for the AWS CLI (cai stack up)
 *   options: --dir <state dir> (default .cai)  --workers <n> (default: cores)
 *
 * Prints progress, a readable summary, and as the very last line one JSON object:
 * {"runId", "status", "partitions", "samples", "predictions", "outputs", "report", "wall_s", "cost_usd"}.
 */
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { Command, CommanderError } from 'commander';
import { createS3Client } from '../functions/commons/aws/clients';
import { describeError, UsageError } from '../functions/commons/errors';
import type { InitializeOutcome } from '../functions/commons/run/initialize';
import type { Payload } from '../functions/commons/run/contracts';
import { checkPayloadSize, parsePayloadJson, PayloadError } from '../functions/commons/run/payload';
import { folderOf, listPartitions } from '../functions/commons/run/rank-plan';
import { sinkFor } from '../toolkit/locations';
import { synthesizeDataset } from '../toolkit/datasets/synth';
import type { RunRecord } from '../functions/commons/run/run-store';
import { commanderExitCode, usageErrorsAsOneLine, workersOption } from './arguments';
import { progressLine } from './progress';
import { runDetails } from './run-format';
import { writeReportFromFolder } from './report/html';
import { costBilledByLambda } from '../local/lambda-billing';
import { CONTROL_BUCKET, DATA_BUCKET, ensureBucket, LocalStack, ROOT } from '../local/stack';
import { parseParameterOverrides } from '../local/template';
import { refuseIfServed, serveStack } from './stack-commands';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const DEMO = { bucket: DATA_BUCKET, prefix: 'synthetic', samples: 2000, partitionBytes: 5 * 2 ** 20, seed: 2026 };

interface Options {
  serve?: boolean;
  partitions?: string;
  payload?: string;
  model: string;
  dir: string;
  workers?: string;
  parameterOverrides?: string;
}

/** What an option names exists and is the kind of thing it must be, or a usage error saying so. */
async function existing(path: string, option: string, kind: 'file' | 'folder') {
  const found = await stat(path).catch(() => undefined);
  if (!found) throw new UsageError(`${option} ${path}: no such ${kind}`);
  if (kind === 'file' ? !found.isFile() : !found.isDirectory()) throw new UsageError(`${option} ${path} is not a ${kind}`);
  return found;
}

/**
 * The user's payload, validated as the initializer will validate it, before anything is uploaded:
 * its data_prefix says where --partitions go, so a bad one must stop here.
 */
async function readPayload(file: string): Promise<{ text: string; payload: Payload }> {
  const { size } = await existing(file, '--payload', 'file');
  try {
    checkPayloadSize(size);
    const text = await readFile(file, 'utf8');
    return { text, payload: parsePayloadJson(text).payload };
  } catch (error) {
    if (!(error instanceof PayloadError)) throw error;
    throw new UsageError(`${file}: ${error.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, { cause: error });
  }
}

/** The files of --partitions that are uploaded: its .pt partitions and partitions.json. */
async function partitionFiles(dir: string): Promise<string[]> {
  await existing(dir, '--partitions', 'folder');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.pt') || f === 'partitions.json');
  if (!files.some((f) => f.endsWith('.pt'))) throw new UsageError(`no .pt partitions in ${dir}`);
  return files;
}

/** The user's partitions, uploaded where their payload says the data is. */
async function uploadPartitions(s3: S3Client, dir: string, files: string[], payload: Payload): Promise<number> {
  const { data_bucket: bucket, data_prefix: prefix } = payload;
  await ensureBucket(s3, bucket);
  // The run takes every partition under the prefix: ones an earlier upload left there, that the
  // folder does not have, would be run too. Refused, never deleted (they may be someone's data).
  const mine = new Set(files.map((f) => `${folderOf(prefix)}${f}`));
  const others = (await listPartitions(s3, bucket, prefix)).filter((p) => !mine.has(p.key));
  if (others.length) {
    const named = others.slice(0, 3).map((p) => basename(p.key));
    throw new UsageError(
      `s3://${bucket}/${folderOf(prefix)} already holds ${others.length} partition${others.length === 1 ? '' : 's'} that ${dir} does not ` +
        `(${named.join(', ')}${others.length > 3 ? ', …' : ''}), which the run would take too: give the payload another data_prefix`,
    );
  }
  const progress = progressLine('upload');
  let done = 0;
  for (const file of files) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${folderOf(prefix)}${file}`, Body: await readFile(join(dir, file)) }));
    progress.update(`${++done}/${files.length} files to s3://${bucket}/${folderOf(prefix)}`, done === files.length);
  }
  return files.length;
}

async function synthesizeDemo(s3: S3Client): Promise<void> {
  await ensureBucket(s3, DEMO.bucket);
  await synthesizeDataset({
    samples: DEMO.samples,
    maxBytes: DEMO.partitionBytes,
    seed: DEMO.seed,
    sink: sinkFor({ kind: 's3', bucket: DEMO.bucket, key: DEMO.prefix }, () => s3),
  });
}

/** Copies the run's S3 objects into a local folder. */
async function downloadOutputs(s3: S3Client, prefixUri: string, into: string): Promise<void> {
  const [, , bucket, ...rest] = prefixUri.split('/');
  const prefix = rest.join('/');
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
    for (const object of page.Contents ?? []) {
      const target = join(into, object.Key!.slice(prefix.length));
      await mkdir(dirname(target), { recursive: true });
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: object.Key! }));
      await writeFile(target, await body.Body!.transformToByteArray());
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const options = usageErrorsAsOneLine(new Command('npm start'), 'start')
    .option('--partitions <dir>', 'a folder of .pt partitions to run (with --payload)')
    .option('--payload <payload.json>', 'the payload to run (with --partitions)')
    .option('--model <file.onnx>', 'the model the inference Lambdas load', join(ROOT, 'model', 'default.onnx'))
    .option('--dir <dir>', 'where the local stack keeps its state', '.cai')
    .option('--workers <n>', 'inference containers at once (default: one per core)')
    .option(
      '--parameter-overrides <overrides>',
      "template parameters over samconfig.toml's, as sam deploy takes them (ResultBucketNames=my-bucket)",
    )
    .option('--serve', 'keep the local stack running for the AWS CLI and SDKs, as cai stack up does')
    .parse(argv, { from: 'user' })
    .opts<Options>();
  if (options.serve) {
    await serveStack(options);
    return 0;
  }
  if (Boolean(options.partitions) !== Boolean(options.payload)) throw new UsageError('--partitions and --payload go together');
  refuseIfServed(resolve(options.dir));
  // Everything the user gave is checked before the stack starts: a typo costs no upload.
  const user = options.payload ? await readPayload(options.payload) : undefined;
  const files = options.partitions ? await partitionFiles(options.partitions) : [];
  await existing(options.model, '--model', 'file');
  const started = Date.now();
  const stack = await new LocalStack({
    directory: resolve(options.dir),
    modelPath: resolve(options.model),
    workers: options.workers ? workersOption(options.workers) : undefined,
    parameterOverrides: parseParameterOverrides(options.parameterOverrides ?? ''),
  }).start();
  try {
    const s3 = createS3Client({ ...process.env, ...stack.env });
    await ensureBucket(s3, CONTROL_BUCKET);
    const name = `${options.payload ? basename(options.payload, '.json').replace(/[^A-Za-z0-9_-]/g, '-') : 'demo'}-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
    let payloadText: string;
    if (user) {
      payloadText = user.text;
      await ensureBucket(s3, user.payload.bucket);
      await uploadPartitions(s3, options.partitions!, files, user.payload);
    } else {
      process.stderr.write(`start: synthesizing ${DEMO.samples} galaxies into s3://${DEMO.bucket}/${DEMO.prefix}/ …\n`);
      await synthesizeDemo(s3);
      payloadText = JSON.stringify(
        { bucket: CONTROL_BUCKET, data_bucket: DEMO.bucket, data_prefix: DEMO.prefix, result_path: `results/${name}` },
        null,
        2,
      );
    }

    // An initializer that fails (S3 would retry it) must end npm start with its reason, not leave it waiting.
    const initialized = new Promise<InitializeOutcome>((resolveOutcome, rejectOutcome) =>
      stack.onInitialized(
        (o) => o[0] && resolveOutcome(o[0]),
        (error) => rejectOutcome(new Error(`the initializer failed: ${error.name}: ${error.message}`, { cause: error })),
      ),
    );
    initialized.catch(() => {}); // awaited after the upload; never an unhandled rejection meanwhile
    const payloadKey = `runs/${name}/payload.json`;
    await s3.send(new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: payloadKey, Body: payloadText, ContentType: 'application/json' }));
    process.stderr.write(`start: uploaded s3://${CONTROL_BUCKET}/${payloadKey}\n`);
    const outcome = await initialized;
    const progress = progressLine(`run ${outcome.runId}`);
    let run: RunRecord | undefined;
    for (;;) {
      run = await stack.runs.get(outcome.runId);
      if (run && run.status !== 'RUNNING') break;
      if (run?.outputs) {
        const [, , bucket, ...rest] = run.outputs.rankResults.split('/');
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: rest.join('/') }));
        progress.update(`${listed.KeyCount ?? 0}/${run.ranks} ranks done`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await stack.idle();
    run = (await stack.runs.get(outcome.runId))!;
    progress.update(run.status, true);
    const outputs = join(resolve(options.dir), 'outputs', run.runId);
    if (run.outputs) await downloadOutputs(s3, run.outputs.prefix, outputs);
    if (run.outputs?.mapResults) await downloadOutputs(s3, run.outputs.mapResults, join(outputs, 'map-results'));
    const report = await writeReportFromFolder(run, outputs);
    const wall = (Date.now() - started) / 1000;
    // What Lambda bills is the REPORT line; the run record holds what the functions measured of themselves.
    const reports = Object.values(stack.billedInvocations()).flat();
    const billed = costBilledByLambda(reports, run);
    const inits = Object.entries(stack.billedInvocations())
      .map(
        ([name, list]) =>
          `${name} ${
            list
              .filter((r) => r.initMs > 0)
              .map((r) => `${Math.round(r.initMs)}`)
              .join('/') || '-'
          }`,
      )
      .join(', ');
    process.stdout.write(`${runDetails(run)}\n  local copy  ${outputs}\n  report      ${report}\n`);
    process.stdout.write(`  Lambda      ${reports.length} invocations on the Runtime Interface Emulator; INIT ms: ${inits}\n`);
    if (billed)
      process.stdout.write(
        `  billed      $${billed.totalUsd.toExponential(3)} with Lambda from the REPORT lines (the run record's self-measured $${run.cost!.totalUsd.toExponential(3)})\n`,
      );
    process.stdout.write(
      `${JSON.stringify({
        runId: run.runId,
        status: run.status,
        partitions: run.partitions ?? 0,
        samples: run.samples ?? 0,
        predictions: run.predictions ?? 0,
        outputs,
        report,
        wall_s: Number(wall.toFixed(3)),
        cost_usd: billed?.totalUsd ?? 0,
      })}\n`,
    );
    return run.status === 'SUCCEEDED' ? 0 : 1;
  } finally {
    await stack.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof CommanderError) process.exit(commanderExitCode(error));
      process.stderr.write(`start: ${describeError(error)}\n`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
