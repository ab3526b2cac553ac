import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { createS3Client, createSfnClient } from '../../functions/commons/aws/clients';
import type { ExecutionInput, RankItem } from '../../functions/commons/run/contracts';
import type { InitializeOutcome } from '../../functions/commons/run/initialize';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { CONTROL_BUCKET, ensureBucket, LocalStack, type LocalStackOptions } from '../../local/stack';
import { ROOT } from '../../local/paths';
import { join } from 'node:path';

/** A local stack for a test file, with short retry pauses (20 ms unless `options` says), and helpers to drive runs. */
export async function testStack(
  directory: string,
  parameterOverrides: Record<string, string> = {},
  options: Partial<LocalStackOptions> = {},
) {
  const stack = await new LocalStack({
    ...options,
    directory,
    parameterOverrides,
    modelPath: join(ROOT, 'model', 'default.onnx'),
    workers: 2,
    retryIntervalOverrides: { InferRank: 20, Summarize: 20, RecordFailure: 20, ...options.retryIntervalOverrides },
  }).start();
  const s3: S3Client = createS3Client({ ...process.env, ...stack.env });
  const outcomes: InitializeOutcome[] = [];
  stack.onInitialized((o) => outcomes.push(...o));

  /** Creates a bucket; one there already passes, any other refusal fails the test. */
  const bucket = (name: string) => ensureBucket(s3, name);
  await bucket(CONTROL_BUCKET);

  /** Uploads a payload.json and waits for its run to leave RUNNING; returns the record. */
  async function run(name: string, payload: unknown, timeoutMs = 60_000): Promise<{ outcome: InitializeOutcome; record: RunRecord }> {
    const key = `runs/${name}/payload.json`;
    const before = outcomes.length;
    await s3.send(
      new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: key, Body: typeof payload === 'string' ? payload : JSON.stringify(payload) }),
    );
    const deadline = Date.now() + timeoutMs;
    while (outcomes.length === before) {
      if (Date.now() > deadline) throw new Error(`no initializer outcome for ${key}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const outcome = outcomes[outcomes.length - 1];
    for (;;) {
      const record = await stack.runs.get(outcome.runId);
      if (record && record.status !== 'RUNNING') {
        await stack.idle();
        return { outcome, record: (await stack.runs.get(outcome.runId))! };
      }
      if (Date.now() > deadline) throw new Error(`run ${outcome.runId} still RUNNING after ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function readText(bucketName: string, key: string): Promise<string> {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucketName, Key: key }));
    return object.Body!.transformToString();
  }

  /** A run's record as the initializer leaves it before starting the execution: RUNNING. */
  async function recordRunning(runId: string, dataset: string, fields: Partial<RunRecord> = {}): Promise<void> {
    await stack.runs.create({
      runId,
      recordType: 'run',
      status: 'RUNNING',
      startedAt: new Date().toISOString(),
      payloadUri: '-',
      payload: {},
      dataset,
      warnings: [],
      ...fields,
    });
  }

  /**
   * What the initializer does for a run, done by hand: the manifest written (unless `items` is
   * undefined), the run recorded RUNNING and its execution started. Does not wait for it.
   */
  async function startByHand(runId: string, resultPath: string, items: RankItem[] | unknown[] | undefined, dataset: string): Promise<void> {
    const manifest = { Bucket: CONTROL_BUCKET, Key: `${resultPath}/${runId}/manifest.json` };
    if (items) await s3.send(new PutObjectCommand({ ...manifest, Body: JSON.stringify(items) }));
    await recordRunning(runId, dataset);
    const input: ExecutionInput = { runId, manifest, resultBucket: CONTROL_BUCKET, resultPath, maxConcurrency: 2 };
    const sfn = createSfnClient({ ...process.env, ...stack.env, CAI_SFN_ENDPOINT: stack.sfn.endpoint });
    await sfn.send(new StartExecutionCommand({ stateMachineArn: stack.sfn.stateMachineArn, name: runId, input: JSON.stringify(input) }));
  }

  return { stack, s3, run, bucket, readText, outcomes, recordRunning, startByHand };
}
