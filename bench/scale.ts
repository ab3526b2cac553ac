/**
 * `npm run bench:scale`: the local stack, limits on, at the seed's 1 TB rank count. Case 1: RANKS
 * (default 10,240) one-galaxy partitions, one rank each, must end SUCCEEDED with RANKS predictions.
 * Case 2: FAILING_RANKS (default 300) of FAILURE_RANKS (default 1,000) ranks fail with 2 KB error
 * messages, and the run must end PARTIAL with every failed partition listed in summary.json.
 * Prints wall time, ranks/s, the summarizer's time and peak memory, the largest state payloads
 * (Map item, each state's input and output, each task's input); last, one JSON line.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../functions/commons/aws/clients';
import { sinkFor } from '../toolkit/locations';
import { synthesizeDataset } from '../toolkit/datasets/synth';
import type { RankInvocation } from '../functions/commons/run/contracts';
import type { InitializeOutcome } from '../functions/commons/run/initialize';
import { LambdaError } from '../local/lambda-runtime';
import { CONTROL_BUCKET, LocalStack } from '../local/stack';
import { say } from './harness';
import { BYTES_PER_GALAXY } from '../functions/commons/partitions/galaxy';
import { ROOT } from '../local/paths';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const RANKS = Number(process.env.BENCH_RANKS ?? 10_240);
const FAILURE_RANKS = Number(process.env.BENCH_FAILURE_RANKS ?? 1_000);
const FAILING_RANKS = Number(process.env.BENCH_FAILING_RANKS ?? 300);

async function main(): Promise<void> {
  const stack = await new LocalStack({
    directory: join(mkdtempSync(join(tmpdir(), 'cai-bench-scale-')), 'stack'),
    modelPath: join(ROOT, 'model', 'default.onnx'),
  }).start();
  const s3 = createS3Client({ ...process.env, ...stack.env });
  for (const bucket of [CONTROL_BUCKET, 'survey']) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const outcomes: InitializeOutcome[] = [];
  stack.onInitialized((o) => outcomes.push(...o));

  async function run(prefix: string, partitions: number) {
    say(`${prefix}: writing ${partitions} one-galaxy partitions …`);
    await synthesizeDataset({
      samples: partitions,
      maxBytes: 4096 + BYTES_PER_GALAXY,
      seed: 3,
      sink: sinkFor({ kind: 's3', bucket: 'survey', key: prefix }, () => s3),
    });
    const payload = { bucket: CONTROL_BUCKET, data_bucket: 'survey', data_prefix: prefix, result_path: `results/${prefix}` };
    const before = outcomes.length;
    const started = Date.now();
    await s3.send(new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: `runs/${prefix}/payload.json`, Body: JSON.stringify(payload) }));
    while (outcomes.length === before) await new Promise((r) => setTimeout(r, 100));
    const { runId } = outcomes[outcomes.length - 1];
    let last = 0;
    for (;;) {
      const record = await stack.runs.get(runId);
      if (record && record.status !== 'RUNNING') {
        await stack.idle();
        const wall = (Date.now() - started) / 1000;
        const summarizer = stack.functions.summarizer.billed.at(-1)!;
        const summary = JSON.parse(
          await (
            await s3.send(new GetObjectCommand({ Bucket: CONTROL_BUCKET, Key: `results/${prefix}/${runId}/summary.json` }))
          ).Body!.transformToString(),
        );
        return { record: (await stack.runs.get(runId))!, summary, wall, summarizer };
      }
      if (Date.now() - last > 30_000) {
        last = Date.now();
        say(
          `${prefix}: ${stack.functions.inference.billed.length} rank invocations so far, ${((Date.now() - started) / 1000).toFixed(0)} s`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  const largest = () => {
    const sizes = { ...stack.sfn.largestPayloads };
    for (const kind of Object.keys(stack.sfn.largestPayloads)) delete stack.sfn.largestPayloads[kind];
    return sizes;
  };
  const big = await run('scale', RANKS);
  const bigSizes = largest();
  say(`${RANKS} ranks: largest payloads (bytes; the limit is 262,144): ${JSON.stringify(bigSizes)}`);
  say(
    `${RANKS} ranks: ${big.record.status}, ${big.record.predictions} predictions in ${big.wall.toFixed(0)} s (${(RANKS / big.wall).toFixed(1)} ranks/s); summarizer ${(big.summarizer.durationMs / 1000).toFixed(1)} s at ${Math.round(big.summarizer.maxMemoryUsedMb ?? 0)} MB peak`,
  );

  // Case 2: a few hundred ranks fail, each with a long error; all of them must be listed.
  const failing = new Set(Array.from({ length: FAILING_RANKS }, (_, i) => Math.floor((i * FAILURE_RANKS) / FAILING_RANKS)));
  stack.functions.inference.intercept = async (event) => {
    const { rank } = (event as RankInvocation).item;
    if (failing.has(rank)) throw new LambdaError('RankError', `rank ${rank} failed on purpose: ${'the detector is on fire; '.repeat(80)}`);
  };
  const failed = await run('failing', FAILURE_RANKS);
  stack.functions.inference.intercept = undefined;
  const failedSizes = largest();
  say(`${FAILURE_RANKS} ranks with ${FAILING_RANKS} failing: largest payloads (bytes): ${JSON.stringify(failedSizes)}`);
  const listed = new Set((failed.summary.failures as { partition: string }[]).map((f) => f.partition));
  say(
    `${FAILURE_RANKS} ranks with ${FAILING_RANKS} failing: ${failed.record.status}, ${failed.record.failedPartitions} failed partitions, ${listed.size} listed in summary.json, in ${failed.wall.toFixed(0)} s`,
  );
  const peakContainerMb = Math.max(...stack.functions.inference.billed.map((r) => r.maxMemoryUsedMb ?? 0));
  await stack.close();
  const ok =
    big.record.status === 'SUCCEEDED' &&
    big.record.predictions === RANKS &&
    failed.record.status === 'PARTIAL' &&
    failed.record.error === undefined && // recorded by Summarize, not by the failure path
    listed.size === FAILING_RANKS;
  process.stdout.write(
    `${JSON.stringify({
      ranks: RANKS,
      status: big.record.status,
      predictions: big.record.predictions,
      wall_s: Number(big.wall.toFixed(1)),
      ranks_per_s: Number((RANKS / big.wall).toFixed(2)),
      summarizer_s: Number((big.summarizer.durationMs / 1000).toFixed(2)),
      summarizer_peak_mb: Math.round(big.summarizer.maxMemoryUsedMb ?? 0),
      inference_peak_mb: Math.round(peakContainerMb),
      stack_process_peak_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      largest_payload_bytes: bigSizes,
      failure_case: {
        ranks: FAILURE_RANKS,
        failing: FAILING_RANKS,
        status: failed.record.status,
        failed_partitions: failed.record.failedPartitions,
        listed: listed.size,
        wall_s: Number(failed.wall.toFixed(1)),
        largest_payload_bytes: failedSizes,
      },
      ok,
    })}\n`,
  );
  process.exit(ok ? 0 : 1);
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(1);
});
