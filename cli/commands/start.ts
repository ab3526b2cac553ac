import { isTensorFileName, TENSOR_FILE_KINDS } from '../../functions/commons/partitions/file-names';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { GetObjectCommand, PutObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { createS3Client, createSfnClient } from '../../functions/commons/aws/clients';
import type { Architecture } from '../../functions/commons/billing/cost';
import { UsageError } from '../../functions/commons/errors';
import { cardKeyFor } from '../../functions/commons/model/card';
import type { Payload } from '../../functions/commons/run/contracts';
import type { InitializeOutcome } from '../../functions/commons/run/initialize';
import { checkDataBucket, checkPayloadSize, checkResultBucket, parsePayloadJson, PayloadError } from '../../functions/commons/run/payload';
import { folderOf, listPartitions } from '../../functions/commons/run/rank-plan';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { costBilledByLambda } from '../../local/lambda-billing';
import {
  CONTROL_BUCKET,
  DATA_BUCKET,
  ensureBucket,
  LocalStack,
  localFunctionConfig,
  readableDataBuckets,
  writableBuckets,
} from '../../local/stack';
import { parseParameterOverrides } from '../../local/template';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { parseS3Uri } from '../../functions/commons/aws/s3-uri';
import { sinkFor } from '../../toolkit/locations';
import { type StackOptions, withOptions, workersOption } from '../options';
import { progressLine } from '../progress';
import { RunReader, watchRun, type WatchSources } from '../run-watch';
import { failureLines, progressBar, progressText } from '../../toolkit/run-progress';
import { writeReportFromFolder } from '../report/html';
import { runDetails } from '../run-format';
import { refuseIfServed, serveStack } from './stack';

/**
 * `cai start` (`npm start`): the whole CAI flow on this machine, started by a real payload.json
 * upload to the local stack. Prints progress, a readable summary, and as the very last line one
 * JSON object: {"runId", "status", "partitions", "samples", "predictions", "outputs", "report", "wall_s", "cost_usd"}.
 */
const DEMO = { bucket: DATA_BUCKET, prefix: 'synthetic', samples: 2000, partitionBytes: 5 * 2 ** 20, seed: 2026 };

interface StartOptions extends StackOptions {
  serve?: boolean;
  partitions?: string;
  payload?: string;
  runModel?: string;
}

/** A model for this run only (--run-model), and where it goes: the payload's `model`. */
interface RunModelUpload {
  file: string;
  /** Its card beside it (<model>.card.json), uploaded beside it; absent: its metadata has it. */
  cardFile?: string;
  uri: string;
}

/** The user's data, read and checked: the payload as uploaded and the partition files of --partitions. */
interface UserRun {
  text: string;
  payload: Payload;
  folder: string;
  files: string[];
}

/** What an option names exists and is the kind of thing it must be, or a usage error saying so. */
async function existing(path: string, option: string, kind: 'file' | 'folder') {
  const found = await stat(path).catch(() => undefined);
  if (!found) throw new UsageError(`${option} ${path}: no such ${kind}`);
  if (kind === 'file' ? !found.isFile() : !found.isDirectory()) throw new UsageError(`${option} ${path} is not a ${kind}`);
  return found;
}

/**
 * The user's payload, validated as the initializer will validate it (its bucket included), before
 * anything is uploaded: its data_prefix says where --partitions go, so a bad one must stop here.
 */
async function readPayload(file: string, parameterOverrides: Record<string, string>): Promise<{ text: string; payload: Payload }> {
  const { size } = await existing(file, '--payload', 'file');
  try {
    checkPayloadSize(size);
    const text = await readFile(file, 'utf8');
    const { payload } = parsePayloadJson(text);
    checkResultBucket(payload, writableBuckets(parameterOverrides));
    checkDataBucket(payload, readableDataBuckets(parameterOverrides), CONTROL_BUCKET);
    return { text, payload };
  } catch (error) {
    if (!(error instanceof PayloadError)) throw error;
    throw new UsageError(`${file}: ${error.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, { cause: error });
  }
}

/** The files of --partitions that are uploaded, sub-folders included: its data files and partitions.json. */
async function partitionFiles(dir: string): Promise<string[]> {
  await existing(dir, '--partitions', 'folder');
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && (isTensorFileName(e.name) || e.name === 'partitions.json'))
    .map((e) => relative(dir, join(e.parentPath, e.name)));
  if (!files.some(isTensorFileName)) throw new UsageError(`no data files (${TENSOR_FILE_KINDS}) in ${dir}`);
  return files;
}

/** --run-model, checked: an .onnx file, and the URI the payload names for it (the demo's: the control bucket's models/). */
async function checkRunModel(file: string, payload?: Payload): Promise<RunModelUpload> {
  await existing(file, '--run-model', 'file');
  if (!file.toLowerCase().endsWith('.onnx')) throw new UsageError(`--run-model ${file} is not an .onnx file`);
  if (payload && !payload.model) {
    throw new UsageError(`--run-model: the payload names no model: add "model": "s3://${CONTROL_BUCKET}/models/${basename(file)}" to it`);
  }
  const cardFile = cardKeyFor(file);
  return {
    file,
    cardFile: existsSync(cardFile) ? cardFile : undefined,
    uri: payload?.model ?? `s3://${CONTROL_BUCKET}/models/${basename(file)}`,
  };
}

/** Everything the user gave, checked before the stack starts: a typo costs no upload. */
async function checkInput(options: StartOptions): Promise<{ user?: UserRun; runModel?: RunModelUpload }> {
  if (Boolean(options.partitions) !== Boolean(options.payload)) throw new UsageError('--partitions and --payload go together');
  if (options.workers) workersOption(options.workers);
  refuseIfServed(resolve(options.dir));
  const payload = options.payload
    ? await readPayload(options.payload, parseParameterOverrides(options.parameterOverrides ?? ''))
    : undefined;
  const files = options.partitions ? await partitionFiles(options.partitions) : [];
  await existing(options.model, '--model', 'file');
  const runModel = options.runModel ? await checkRunModel(options.runModel, payload?.payload) : undefined;
  return { user: payload && { ...payload, folder: options.partitions!, files }, runModel };
}

/** The run's own model (and its card) uploaded where the payload names it, as a user would with aws s3 cp. */
async function uploadRunModel(s3: S3Client, model: RunModelUpload): Promise<void> {
  const { bucket, key } = parseS3Uri(model.uri, 'model');
  await ensureBucket(s3, bucket);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(model.file) }));
  if (model.cardFile) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: cardKeyFor(key), Body: await readFile(model.cardFile) }));
  process.stderr.write(`start: uploaded ${model.uri}${model.cardFile ? ' and its card' : ''}\n`);
}

/** The user's partitions, uploaded where their payload says the data is. */
async function uploadPartitions(s3: S3Client, user: UserRun): Promise<void> {
  const { data_bucket: bucket, data_prefix: prefix } = user.payload;
  await ensureBucket(s3, bucket);
  // The run takes every partition under the prefix: ones an earlier upload left there, that the
  // folder does not have, would be run too. Refused, never deleted (they may be someone's data).
  const mine = new Set(user.files.map((f) => `${folderOf(prefix)}${f}`));
  const others = (await listPartitions(s3, bucket, prefix)).filter((p) => !mine.has(p.key));
  if (others.length) {
    const named = others.slice(0, 3).map((p) => basename(p.key));
    throw new UsageError(
      `s3://${bucket}/${folderOf(prefix)} already holds ${others.length} partition${others.length === 1 ? '' : 's'} that ${user.folder} does not ` +
        `(${named.join(', ')}${others.length > 3 ? ', …' : ''}), which the run would take too: give the payload another data_prefix`,
    );
  }
  const progress = progressLine('upload');
  let done = 0;
  for (const file of user.files) {
    // Streamed: a survey file may be larger than a Node.js buffer can hold (2 GiB).
    const path = join(user.folder, file);
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${folderOf(prefix)}${file}`,
        Body: createReadStream(path),
        ContentLength: (await stat(path)).size,
      }),
    );
    progress.update(`${++done}/${user.files.length} files to s3://${bucket}/${folderOf(prefix)}`, done === user.files.length);
  }
}

/** The demo's data: synthetic galaxies in the data bucket, and a payload that runs them (with the run's own model, if any). */
async function synthesizeDemo(s3: S3Client, name: string, model?: string): Promise<string> {
  process.stderr.write(`start: synthesizing ${DEMO.samples} galaxies into s3://${DEMO.bucket}/${DEMO.prefix}/ …\n`);
  await ensureBucket(s3, DEMO.bucket);
  await synthesizeDataset({
    samples: DEMO.samples,
    maxBytes: DEMO.partitionBytes,
    seed: DEMO.seed,
    sink: sinkFor({ kind: 's3', bucket: DEMO.bucket, key: DEMO.prefix }, () => s3),
  });
  return JSON.stringify(
    {
      bucket: CONTROL_BUCKET,
      data_bucket: DEMO.bucket,
      data_prefix: DEMO.prefix,
      result_path: `results/${name}`,
      ...(model ? { model } : {}),
    },
    null,
    2,
  );
}

/** Uploads payload.json as a user would, and waits for the initializer the upload fires. */
async function uploadPayload(stack: LocalStack, s3: S3Client, name: string, text: string): Promise<InitializeOutcome> {
  // An initializer that fails (S3 would retry it) must end the command with its reason, not leave it waiting.
  const initialized = new Promise<InitializeOutcome>((resolveOutcome, rejectOutcome) =>
    stack.onInitialized(
      (o) => o[0] && resolveOutcome(o[0]),
      (error) => rejectOutcome(new Error(`the initializer failed: ${error.name}: ${error.message}`, { cause: error })),
    ),
  );
  initialized.catch(() => {}); // awaited after the upload; never an unhandled rejection meanwhile
  const key = `runs/${name}/payload.json`;
  await s3.send(new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: key, Body: text, ContentType: 'application/json' }));
  process.stderr.write(`start: uploaded s3://${CONTROL_BUCKET}/${key}\n`);
  return initialized;
}

/** Follows the run to its end with `cai runs watch`'s view, on one line of stderr. */
async function followRun(stack: LocalStack, s3: S3Client, runId: string, parameterOverrides: Record<string, string>): Promise<RunRecord> {
  const progress = progressLine(`run ${runId}`);
  const sources: WatchSources = {
    runs: stack.runs,
    s3,
    sfn: createSfnClient({ ...process.env, ...stack.env, CAI_SFN_ENDPOINT: stack.sfn.endpoint }),
    region: 'us-east-1',
    architecture: localFunctionConfig('InferenceFunction', { overrides: parameterOverrides }).environment.ARCHITECTURE as Architecture,
  };
  return watchRun(new RunReader(sources, runId), {
    intervalMs: 250,
    settled: () => stack.idle(),
    show: (p, last) => {
      progress.update(`${progressBar(p)} ${progressText(p)}`, last);
      if (last) for (const line of failureLines(p)) process.stderr.write(`${line}\n`);
    },
  });
}

/** Copies the objects under an s3:// prefix into a local folder. */
async function download(s3: S3Client, prefixUri: string, into: string): Promise<void> {
  const { bucket, key: prefix } = parseS3Uri(prefixUri);
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
    for (const object of page.Contents ?? []) {
      const target = join(into, object.Key!.slice(prefix.length));
      await mkdir(dirname(target), { recursive: true });
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: object.Key! }));
      await writeFile(target, await body.Body!.transformToByteArray());
    }
  }
}

/** The run's outputs and the Map's results, copied under <dir>/outputs/<runId>/. */
async function copyOutputs(s3: S3Client, run: RunRecord, dir: string): Promise<string> {
  const outputs = join(resolve(dir), 'outputs', run.runId);
  if (run.outputs) await download(s3, run.outputs.prefix, outputs);
  if (run.outputs?.mapResults) await download(s3, run.outputs.mapResults, join(outputs, 'map-results'));
  return outputs;
}

/** The run as a person reads it, what Lambda billed, and the one JSON line. */
function printRun(stack: LocalStack, run: RunRecord, outputs: string, report: string, wallS: number): void {
  // What Lambda bills is the REPORT line; the run record holds what the functions measured of themselves.
  const billedByFunction = stack.billedInvocations();
  const invocations = Object.values(billedByFunction).flat();
  const billed = costBilledByLambda(invocations, run);
  const inits = Object.entries(billedByFunction)
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
  process.stdout.write(`  Lambda      ${invocations.length} invocations on the Runtime Interface Emulator; INIT ms: ${inits}\n`);
  if (billed)
    process.stdout.write(
      `  billed      $${billed.totalUsd.toExponential(3)} with Lambda from the REPORT lines (the run record's self-measured $${run.cost!.totalUsd.toExponential(3)})\n`,
    );
  const last = {
    runId: run.runId,
    status: run.status,
    partitions: run.partitions ?? 0,
    samples: run.samples ?? 0,
    predictions: run.predictions ?? 0,
    outputs,
    report,
    wall_s: Number(wallS.toFixed(3)),
    cost_usd: billed?.totalUsd ?? 0,
  };
  process.stdout.write(`${JSON.stringify(last)}\n`);
}

/** One run on the local stack, from the user's data or the demo's; 0 when it succeeded. */
export async function startRun(options: StartOptions): Promise<number> {
  if (options.serve) {
    await serveStack(options);
    return 0;
  }
  const { user, runModel } = await checkInput(options);
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
    const label = options.payload ? basename(options.payload, '.json').replace(/[^A-Za-z0-9_-]/g, '-') : 'demo';
    const name = `${label}-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
    if (user) {
      await ensureBucket(s3, user.payload.bucket);
      await uploadPartitions(s3, user);
    }
    if (runModel) await uploadRunModel(s3, runModel);
    const payloadText = user ? user.text : await synthesizeDemo(s3, name, runModel?.uri);
    const outcome = await uploadPayload(stack, s3, name, payloadText);
    const run = await followRun(stack, s3, outcome.runId, parseParameterOverrides(options.parameterOverrides ?? ''));
    const outputs = await copyOutputs(s3, run, options.dir);
    const report = await writeReportFromFolder(run, outputs, { s3 });
    printRun(stack, run, outputs, report, (Date.now() - started) / 1000);
    return run.status === 'SUCCEEDED' ? 0 : 1;
  } finally {
    await stack.close();
  }
}

export function addStartCommand(program: Command): void {
  withOptions(
    program
      .command('start')
      .description('run the whole flow on the local stack (npm start): the demo data, or --partitions with --payload')
      .option('--partitions <dir>', 'a folder of .pt partitions to run (with --payload)')
      .option('--payload <payload.json>', 'the payload to run (with --partitions)')
      .option(
        '--run-model <file.onnx>',
        "a model for this run only, uploaded (with <file>.card.json beside it, if there) to the payload's `model` (the demo's: s3://cai-control/models/)",
      )
      .option('--serve', 'keep the local stack running for the AWS CLI and SDKs: cai stack up'),
    'dir',
    'model',
    'workers',
    'parameterOverrides',
  ).action(async (options: StartOptions) => {
    process.exitCode = await startRun(options);
  });
}
