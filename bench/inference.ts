/**
 * `npm run bench`: CAI's inference worker against PyTorch eager, side by side on this machine, and
 * what the measured rates mean on AWS Lambda.
 *
 * One set of weights (model/bench-full.safetensors: the full-size AstroMAE, trained on `cai synth`
 * data by `npm run model:train -- --full`) is exported to ONNX (fp32, and int8 by CAI's recipe) and
 * loaded by PyTorch. On one ≈100 MB synthetic partition, in alternating rounds, with the same batch
 * size and one thread each: PyTorch (torch.load + eager, inference mode) and CAI's worker path
 * (partition decode + onnxruntime-node), fp32 and int8. Then: a threads × batch sweep, cold start
 * in fresh processes, the local pipeline (`npm start`) with 2 workers over ≥ 50,000 galaxies, the
 * fp32 matmul peak of one core, and a cost model of the prototype's 12.6 GB workload.
 *
 * Environment: BENCH_ROUNDS (default 3), BENCH_E2E_PARTITIONS (100 MB each, default 10),
 * BENCH_RESULTS (default bench/results/inference.json). Prints tables, then one JSON object as the
 * last line; writes that object to BENCH_RESULTS and its sweeps as SVG plots beside it (bench/plots.ts).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { redshiftAccuracy } from '../functions/commons/model/accuracy';
import { fileSource } from '../functions/commons/tensors/byte-source';
import { billLambda, pricesFor, prototypeCost, type Architecture } from '../functions/commons/billing/cost';
import { estimateWorkload } from '../toolkit/forecast/workload';
import { sinkFor } from '../toolkit/locations';
import { openTorchPartition, partitionChunks } from '../toolkit/datasets/galaxy-partition';
import { rowsPerPartition } from '../toolkit/datasets/partition-writer';
import { synthesizeDataset } from '../toolkit/datasets/synth';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { cardKeyFor } from '../functions/commons/model/card';
import { outputKeys } from '../functions/commons/run/output-keys';
import { createS3Client } from '../functions/commons/aws/clients';
import { lambdaRate, lambdaVcpus, MB_PER_VCPU, type Throughput, workersFor } from '../functions/commons/model/lambda-sizing';
import type { RankInvocation, RankItem, RankResult } from '../functions/commons/run/contracts';
import { CONTROL_BUCKET, DATA_BUCKET, ensureBucket, LocalStack } from '../local/stack';
import { JsonWorker, PYTHON, lastJsonLine, median, run, say } from './harness';
import { ROOT } from '../local/paths';
import { writeBenchPlots } from './plots';

const MiB = 2 ** 20;
const PARTITION_BYTES = 100 * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RESULTS = resolve(process.env.BENCH_RESULTS ?? join(ROOT, 'bench', 'results', 'inference.json'));
const E2E_PARTITIONS = Number(process.env.BENCH_E2E_PARTITIONS ?? 10);
const WEIGHTS = join(ROOT, 'model', 'bench-full.safetensors');
const SWEEP_BATCHES = [16, 32, 64, 128, 256];
const SWEEP_SAMPLES = 512;
/** Where the rates the plans use are written: functions/commons/model/throughput.json, unless BENCH_THROUGHPUT says elsewhere. */
const THROUGHPUT_FILE = resolve(process.env.BENCH_THROUGHPUT ?? join(ROOT, 'functions', 'commons', 'model', 'throughput.json'));
/** Worker counts the inference artifact is measured at under the emulator (BENCH_ARTIFACT_WORKERS, comma-separated; empty skips). */
const ARTIFACT_WORKERS = (process.env.BENCH_ARTIFACT_WORKERS ?? '1,2,6').split(',').filter(Boolean).map(Number);
const MEMORY_SIZES = [1024, 1769, 3538, 5307, 7076, 8845, 10240];
/** The prototype's 12.6 GB workload (seeds/001): its partitions, requests, mean duration and memory used. */
const PROTOTYPE = [
  { partitionMb: 25, requests: 517, durationS: 6.55, memoryUsedGb: 2.8 },
  { partitionMb: 50, requests: 259, durationS: 11.8, memoryUsedGb: 4.0 },
  { partitionMb: 75, requests: 173, durationS: 17.6, memoryUsedGb: 5.9 },
  { partitionMb: 100, requests: 130, durationS: 25, memoryUsedGb: 7.0 },
];
const PROTOTYPE_MEMORY_MB = 10240;
const WORKLOAD_BYTES = 12.6 * 2 ** 30;
/** Not measured here: one container's S3 read rate (a single stream's; CAI's parallel ranged GETs do better). */
const ASSUMED_S3_MIBPS = 90;
const FIRST_CHUNK_BYTES = 16 * MiB;

interface Timing {
  seconds: number;
  samples: number;
}
type Variant = 'torch' | 'fp32' | 'int8';

const rate = (t: Timing) => t.samples / t.seconds;
const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const pad = (x: unknown, width: number) => String(x).padStart(width);

async function readLabels(path: string): Promise<Float32Array> {
  const reader = await openTorchPartition(await fileSource(path));
  const labels = new Float32Array(reader.samples);
  for await (const rows of partitionChunks(reader)) if (rows.redshift) labels.set(rows.redshift, rows.start);
  await reader.close();
  return labels;
}

const floats = async (path: string) => {
  const bytes = await readFile(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
};

interface PipelineRun {
  samples: number;
  /** The run's own wall time (payload upload seen → summary written), from its summary. */
  wallS: number;
  peakRssMb: number;
}

/** `npm start` over synthetic 100 MiB partitions, 2 inference workers of one thread each. */
async function runPipeline(work: string, partitions: number, perPartition: number, batch: number, model: string): Promise<PipelineRun> {
  const samples = partitions * perPartition;
  say(`npm start: ${samples} galaxies in ${partitions} partitions of 100 MiB, 2 workers …`);
  const data = join(work, 'e2e', 'data');
  await synthesizeDataset({ samples, maxBytes: 100 * MiB, seed: 13, sink: sinkFor({ kind: 'file', path: data }) });
  const payload = join(work, 'e2e', 'payload.json');
  writeFileSync(
    payload,
    JSON.stringify({
      bucket: 'cai-control',
      data_bucket: DATA_BUCKET,
      data_prefix: 'e2e',
      batch_size: batch,
      result_path: 'results/bench',
    }),
  );
  const { stdout } = await run(
    process.execPath,
    [
      join(ROOT, 'dist', 'cli', 'cai.js'),
      'start',
      '--partitions',
      data,
      '--payload',
      payload,
      '--model',
      model,
      '--workers',
      '2',
      '--dir',
      join(work, 'e2e', 'stack'),
    ],
    { echo: true },
  ).catch((error: Error) => {
    throw new Error(
      `npm start: ${
        error.message
          .split('\n')
          .filter((l) => /FAILED|PARTIAL|Error|error/.test(l))
          .slice(-3)
          .join(' | ') || 'failed'
      }`,
    );
  });
  const result = lastJsonLine<{ status: string; samples: number; outputs: string }>(stdout);
  if (result.status !== 'SUCCEEDED' || result.samples !== samples)
    throw new Error(`npm start: ${result.status}, ${result.samples} of ${samples} galaxies`);
  const summary = JSON.parse(await readFile(join(result.outputs, 'summary.json'), 'utf8')) as {
    timings: { wall_s: number; peak_rss_mb_max: number };
  };
  return { samples, wallS: summary.timings.wall_s, peakRssMb: summary.timings.peak_rss_mb_max };
}

type Sweep = { variant: Variant; threads: number; batch: number; perSecond: number }[];
type Infer = (variant: Variant, file: string, batch: number, threads: number, out?: string, workers?: number) => Promise<Timing>;
interface BenchModels {
  fp32: string;
  int8: string;
  parameters: number;
  gflop_per_sample: number;
  export_max_abs_diff: number;
}

/** The full-size model exported to ONNX, fp32 and int8, from the committed weights. */
async function exportModels(work: string): Promise<BenchModels> {
  say('exporting the full-size model (fp32 and int8) from model/bench-full.safetensors …');
  const { stdout } = await run(PYTHON, [join(ROOT, 'bench', 'prepare.py'), '--weights', WEIGHTS, '--out', join(work, 'models')]);
  return lastJsonLine<BenchModels>(stdout);
}

/** A 100 MiB partition for the headline and the pipeline, and a small one for the sweep. */
async function writeBenchPartitions(work: string): Promise<{ partition: string; sweepPartition: string; samples: number }> {
  const samples = rowsPerPartition(PARTITION_BYTES, true);
  say(`writing a ${samples}-galaxy partition (100 MiB) and a ${SWEEP_SAMPLES}-galaxy one for the sweep …`);
  await synthesizeDataset({ samples, maxBytes: PARTITION_BYTES, seed: 11, sink: sinkFor({ kind: 'file', path: join(work, 'one') }) });
  await synthesizeDataset({
    samples: SWEEP_SAMPLES,
    maxBytes: PARTITION_BYTES,
    seed: 12,
    sink: sinkFor({ kind: 'file', path: join(work, 'sweep') }),
  });
  return { partition: join(work, 'one', '1.pt'), sweepPartition: join(work, 'sweep', '1.pt'), samples };
}

/**
 * Threads × batch: CAI fp32 and int8 on every pair, PyTorch on a few, same small partition. Two
 * passes in opposite orders, best of the two: the machine is shared, and a neighbour's burst would
 * otherwise decide the defaults.
 */
async function sweepThreadsAndBatches(infer: Infer, threadCounts: number[], partition: string): Promise<Sweep> {
  const sweep: Sweep = [];
  const cells = threadCounts.flatMap((threads) =>
    SWEEP_BATCHES.flatMap((batch) =>
      (['fp32', 'int8', 'torch'] as Variant[])
        .filter((v) => v !== 'torch' || [16, 32, 64, 256].includes(batch))
        .map((variant) => ({ variant, threads, batch })),
    ),
  );
  let done = 0;
  for (const pass of [cells, [...cells].reverse()]) {
    for (const cell of pass) {
      if (done++ % 10 === 0) say(`sweep: ${done}/${cells.length * 2} …`);
      const perSecond = rate(await infer(cell.variant, partition, cell.batch, cell.threads));
      const seen = sweep.find((s) => s.variant === cell.variant && s.threads === cell.threads && s.batch === cell.batch);
      if (seen) seen.perSecond = Math.max(seen.perSecond, perSecond);
      else sweep.push({ ...cell, perSecond });
    }
  }
  return sweep;
}

const bestCell = (sweep: Sweep, variant: Variant, threads: number) =>
  sweep.filter((s) => s.variant === variant && s.threads === threads).reduce((a, b) => (b.perSecond > a.perSecond ? b : a));

/** The headline: the whole partition, one thread, the same batch, alternating order each round; round 1's predictions kept. */
async function timeHeadline(infer: Infer, partition: string, samples: number, batch: number, out: (v: Variant) => string) {
  const times: Record<Variant, number[]> = { torch: [], fp32: [], int8: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order: Variant[] = r % 2 === 0 ? ['torch', 'fp32', 'int8'] : ['int8', 'fp32', 'torch'];
    for (const variant of order) {
      const timing = await infer(variant, partition, batch, 1, r === 0 ? out(variant) : undefined);
      if (timing.samples !== samples) throw new Error(`${variant} predicted ${timing.samples} of ${samples} galaxies`);
      times[variant].push(timing.seconds);
    }
    say(
      `round ${r + 1}/${ROUNDS}: ${(['torch', 'fp32', 'int8'] as Variant[]).map((v) => `${v} ${(samples / times[v][r]).toFixed(1)}/s`).join(', ')}`,
    );
  }
  return times;
}

/** The three paths' predictions against the labels and each other. */
async function comparePredictions(partition: string, out: (v: Variant) => string) {
  const labels = await readLabels(partition);
  const [torchZ, fp32Z, int8Z] = await Promise.all([out('torch'), out('fp32'), out('int8')].map(floats));
  const dz = Float64Array.from(int8Z, (z, i) => Math.abs(z - fp32Z[i])).sort();
  return {
    accuracy: { torch: redshiftAccuracy(torchZ, labels)!, fp32: redshiftAccuracy(fp32Z, labels)!, int8: redshiftAccuracy(int8Z, labels)! },
    int8Dz: dz,
    torchVsCai: fp32Z.reduce((m, z, i) => Math.max(m, Math.abs(z - torchZ[i])), 0),
  };
}

/** Module load and session in fresh processes, three times. */
async function measureColdStarts(model: string): Promise<number[]> {
  say('cold start: module load and session in fresh processes …');
  const coldStarts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const { stdout } = await run(process.execPath, [join(ROOT, 'dist', 'bench', 'cai-worker.js'), '--cold-start', model, '--threads', '1']);
    coldStarts.push(lastJsonLine<{ cold_start_s: number }>(stdout).cold_start_s);
  }
  return coldStarts;
}

/**
 * One session of k intra-op threads against k workers of one thread each (the inference Lambda's
 * pool), k = 1 … this machine's cores, fp32 and int8, on the 100 MiB partition: each session at
 * the batch the sweep found best for its threads, the workers at the best one-thread batch. Two
 * passes in opposite orders, best of the two.
 */
async function measureScaling(infer: Infer, sweep: Sweep, threadCounts: number[], partition: string): Promise<ScalingRow[]> {
  const cells = (['fp32', 'int8'] as const).flatMap((precision) =>
    threadCounts.flatMap((k) => (['threads', 'workers'] as const).map((mode) => ({ precision, k, mode }))),
  );
  const best = new Map<string, number>();
  let done = 0;
  for (const pass of [cells, [...cells].reverse()]) {
    for (const { precision, k, mode } of pass) {
      say(`scaling ${++done}/${cells.length * 2}: ${precision}, ${k} ${mode} …`);
      const batch = bestCell(sweep, precision, mode === 'threads' ? k : 1).batch;
      const timing = await infer(precision, partition, batch, mode === 'threads' ? k : 1, undefined, mode === 'workers' ? k : undefined);
      const key = `${precision}|${k}|${mode}`;
      best.set(key, Math.max(best.get(key) ?? 0, rate(timing)));
    }
  }
  return (['fp32', 'int8'] as const).flatMap((precision) =>
    threadCounts.map((k) => {
      const at = (mode: string, kk = k) => best.get(`${precision}|${kk}|${mode}`)!;
      return {
        precision,
        k,
        threads_per_s: round(at('threads'), 1),
        workers_per_s: round(at('workers'), 1),
        threads_speedup: round(at('threads') / at('threads', 1), 2),
        workers_speedup: round(at('workers') / at('workers', 1), 2),
        workers_efficiency: round(at('workers') / at('workers', 1) / k, 2),
      };
    }),
  );
}

interface ScalingRow {
  precision: 'fp32' | 'int8';
  k: number;
  threads_per_s: number;
  workers_per_s: number;
  threads_speedup: number;
  workers_speedup: number;
  workers_efficiency: number;
}

/** What the plans read (functions/commons/model/throughput.json): the workers' rates, with when and where they were measured. */
function throughputFrom(scaling: ScalingRow[], batchSize: number): Throughput {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown CPU';
  const vnni = /\b(avx512_vnni|avx_vnni)\b/.test(cpuinfo);
  const rates = (precision: 'fp32' | 'int8') =>
    Object.fromEntries(scaling.filter((r) => r.precision === precision).map((r) => [String(r.k), r.workers_per_s]));
  return {
    measured: `npm run bench, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores of ${cpu}${vnni ? ' (VNNI)' : ''}, onnxruntime-node ${JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version}`,
    vnni,
    batchSize,
    workers: { fp32: rates('fp32'), int8: rates('int8') },
  };
}

/** A local stack's S3 with its buckets and the bench's partition at s3://<data bucket>/bench/1.pt, and a rank item of that partition. */
async function stackWithPartition(stack: LocalStack, partition: string) {
  const s3 = createS3Client({ ...process.env, ...stack.env });
  await ensureBucket(s3, DATA_BUCKET);
  await ensureBucket(s3, CONTROL_BUCKET);
  await s3.send(new PutObjectCommand({ Bucket: DATA_BUCKET, Key: 'bench/1.pt', Body: readFileSync(partition) }));
  const item = (runId: string, rank = 0, worldSize = 1): RankItem => ({
    runId,
    rank,
    worldSize,
    dataBucket: DATA_BUCKET,
    partitions: [{ key: 'bench/1.pt', bytes: statSync(partition).size }],
    resultBucket: CONTROL_BUCKET,
    resultPath: 'bench',
  });
  return { s3, item };
}

/**
 * The inference artifact with the full-size model under the Runtime Interface Emulator, at N
 * workers: INIT (all sessions loaded in parallel), and the runtime's peak RSS over one rank of the
 * 100 MiB partition; the local runtime bills and measures it as Lambda would.
 */
async function artifactAtWorkers(work: string, model: string, partition: string, workerCounts: number[]) {
  const rows: { workers: number; init_ms: number; peak_rss_mb: number; rank_s: number; samples_per_s: number }[] = [];
  for (const workers of workerCounts) {
    say(`inference artifact under the emulator, ${workers} worker(s) …`);
    const stack = await new LocalStack({
      directory: join(work, `artifact-${workers}`),
      modelPath: model,
      workers: 1,
      inferenceMemoryMb: 10240,
      parameterOverrides: { InferenceWorkers: String(workers) },
    }).start();
    try {
      const { item } = await stackWithPartition(stack, partition);
      const started = performance.now();
      await stack.functions.inference.invoke({ item: item(`bench-${workers}`), attempt: 0 } satisfies RankInvocation);
      const seconds = (performance.now() - started) / 1000;
      const billed = stack.functions.inference.billed[0];
      const samples = rowsPerPartition(PARTITION_BYTES, true);
      rows.push({
        workers,
        init_ms: Math.round(billed.initMs),
        peak_rss_mb: Math.round(billed.maxMemoryUsedMb ?? 0),
        rank_s: round(seconds, 1),
        samples_per_s: round(samples / (seconds - billed.initMs / 1000), 1),
      });
    } finally {
      await stack.close();
    }
  }
  return rows;
}

/**
 * A run's own model, the full-size fp32 one (≈63 MB), fetched by the inference artifact from the
 * local S3: the first rank of a container downloads and loads it (cold), the next reuses it (warm).
 */
async function runModelFetch(work: string, model: string, partition: string) {
  say('a run model (full-size fp32) fetched by the inference artifact, cold then warm …');
  const stack = await new LocalStack({
    directory: join(work, 'run-model'),
    modelPath: join(ROOT, 'model', 'default.onnx'),
    workers: 1,
  }).start();
  try {
    const { s3, item: rankItem } = await stackWithPartition(stack, partition);
    const key = 'models/bench-full.onnx';
    await s3.send(new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: key, Body: readFileSync(model) }));
    const card = await s3.send(
      new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: cardKeyFor(key), Body: readFileSync(join(ROOT, 'model', 'default.card.json')) }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: CONTROL_BUCKET, Key: key }));
    const rank = async (n: number) => {
      const item: RankItem = {
        ...rankItem('bench-run-model', n, 2),
        model: {
          bucket: CONTROL_BUCKET,
          key,
          etag: head.ETag!,
          bytes: head.ContentLength!,
          card: { bucket: CONTROL_BUCKET, key: cardKeyFor(key), etag: card.ETag! },
        },
      };
      await stack.functions.inference.invoke({ item, attempt: 0 } satisfies RankInvocation);
      const result = JSON.parse(
        await (
          await s3.send(new GetObjectCommand({ Bucket: CONTROL_BUCKET, Key: outputKeys('bench', item.runId).rank(n) }))
        ).Body!.transformToString(),
      ) as RankResult;
      const billed = stack.functions.inference.billed[n];
      return {
        model_load_s: round(result.wall_s.model_load ?? 0, 3),
        model_fetch_s: round(result.wall_s.model_fetch ?? 0, 3),
        init_ms: Math.round(billed.initMs),
        billed_ms: Math.round(billed.durationMs),
        rank_s: round(result.wall_s.total, 2),
      };
    };
    return { model_bytes: head.ContentLength!, cold: await rank(0), warm: await rank(1) };
  } finally {
    await stack.close();
  }
}

/** Per Lambda memory size: vCPUs, workers, the planned rates (and their sources), and what a galaxy costs. */
function memorySizes(throughput: Throughput) {
  const { prices } = pricesFor('us-east-1');
  return MEMORY_SIZES.map((memoryMb) => {
    const rates = {
      fp32: lambdaRate(memoryMb, 'fp32', { throughput }),
      int8: lambdaRate(memoryMb, 'int8', { throughput }),
      int8_vnni: lambdaRate(memoryMb, 'int8', { throughput, vnni: true }),
    };
    // One second of this memory size, billed, over the galaxies it runs in that second.
    const second = billLambda({ memoryMb, durationMs: 1000, initMs: 0 }, 'x86_64', prices).computeUsd;
    return {
      memory_mb: memoryMb,
      vcpus: round(lambdaVcpus(memoryMb), 2),
      workers: workersFor(memoryMb),
      fp32_samples_per_s: round(rates.fp32.galaxiesPerSecond, 1),
      int8_samples_per_s: round(rates.int8.galaxiesPerSecond, 1),
      int8_vnni_samples_per_s: round(rates.int8_vnni.galaxiesPerSecond, 1),
      fp32_usd_per_million: round((second / rates.fp32.galaxiesPerSecond) * 1e6, 3),
      int8_usd_per_million: round((second / rates.int8.galaxiesPerSecond) * 1e6, 3),
      sources: [...new Set([...rates.fp32.sources, ...rates.int8.sources])],
    };
  });
}

/**
 * The prototype's workload on Lambda, per partition size: the cheapest memory size that holds the
 * worker's peak memory with a quarter to spare, for each model and architecture. Whole vCPUs only:
 * below 1,769 MB a function gets a time-sliced share of one vCPU, which the proportional model would flatter.
 */
function prototypeWorkloadCosts(
  bytesPerSample: number,
  peakRssMb: number,
  initS: number,
  rateAt: (variant: 'fp32' | 'int8', memoryMb: number) => number,
) {
  return PROTOTYPE.map((p) => {
    const row: Record<string, unknown> = { partition_mb: p.partitionMb };
    for (const variant of ['fp32', 'int8'] as const) {
      for (const architecture of ['x86_64', 'arm64'] as Architecture[]) {
        const options = MEMORY_SIZES.filter((m) => m >= MB_PER_VCPU && m >= peakRssMb * 1.25).map((memoryMb) =>
          Object.assign(
            estimateWorkload({
              totalBytes: WORKLOAD_BYTES,
              partitionBytes: p.partitionMb * MiB,
              bytesPerSample,
              memoryMb,
              architecture,
              region: 'us-east-1',
              secondsPerSample: 1 / rateAt(variant, memoryMb),
              initSeconds: initS,
              s3MiBps: ASSUMED_S3_MIBPS,
              firstChunkBytes: FIRST_CHUNK_BYTES,
              concurrency: 1000,
            }),
            { memoryMb },
          ),
        );
        const cheapest = options.reduce((a, b) => (b.cost.totalUsd < a.cost.totalUsd ? b : a));
        row[`${variant}_${architecture}`] = {
          memory_mb: cheapest.memoryMb,
          ranks: cheapest.partitions,
          duration_s: round(cheapest.durationS, 1),
          wall_s: round(cheapest.wallS, 1),
          usd: round(cheapest.cost.totalUsd, 4),
        };
      }
    }
    const { prices } = pricesFor('us-east-1');
    const configured = billLambda({ memoryMb: PROTOTYPE_MEMORY_MB, durationMs: p.durationS * 1000, initMs: 0 }, 'x86_64', prices);
    row.prototype = {
      ranks: p.requests,
      duration_s: p.durationS,
      seed_formula_usd: round(prototypeCost(p.requests, p.durationS, p.memoryUsedGb), 2),
      billed_at_10gb_usd: round(p.requests * (configured.computeUsd + configured.requestUsd), 2),
    };
    return row;
  });
}

/** The local pipeline over E2E_PARTITIONS partitions; its failure is reported, the rest still counts. */
async function endToEnd(
  work: string,
  samples: number,
  batch: number,
  model: string,
): Promise<{ e2e: PipelineRun | null; error: string | null }> {
  if (E2E_PARTITIONS <= 0) return { e2e: null, error: null };
  try {
    return { e2e: await runPipeline(work, E2E_PARTITIONS, samples, batch, model), error: null };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    say(`npm start failed: ${message}`);
    return { e2e: null, error: message };
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  if (!existsSync(WEIGHTS))
    throw new Error(`${WEIGHTS} is missing: it is part of the repository (npm run model:train -- --full rebuilds it)`);
  const work = mkdtempSync(join(tmpdir(), 'cai-bench-'));
  const threadCounts = cpus().length >= 2 ? [1, 2] : [1];
  const models = await exportModels(work);
  const { partition, sweepPartition, samples: partitionSamples } = await writeBenchPartitions(work);

  const torch = new JsonWorker(PYTHON, [join(ROOT, 'bench', 'torch_worker.py'), '--weights', WEIGHTS]);
  const cai = new JsonWorker(process.execPath, [join(ROOT, 'dist', 'bench', 'cai-worker.js')]);
  await torch.ready();
  const infer: Infer = (variant, file, batch, threads, out, workers) =>
    variant === 'torch'
      ? torch.request({ op: 'infer', partition: file, batch, threads, out })
      : cai.request({ model: models[variant], partition: file, batch, threads, out, workers });
  say('fp32 matmul peak of one core (torch and onnxruntime) …');
  const peak = await torch.request<{ peak_gflops: number; peak_from: string }>({ op: 'peak' });
  const sweep = await sweepThreadsAndBatches(infer, threadCounts, sweepPartition);
  const batch = bestCell(sweep, 'fp32', 1).batch;
  const out = (variant: Variant) => join(work, `${variant}.f32`);
  const times = await timeHeadline(infer, partition, partitionSamples, batch, out);
  torch.close();
  const scaling = await measureScaling(infer, sweep, threadCounts, partition);
  cai.close();
  const throughput = throughputFrom(scaling, batch);
  mkdirSync(dirname(THROUGHPUT_FILE), { recursive: true });
  writeFileSync(THROUGHPUT_FILE, `${JSON.stringify(throughput, null, 2)}\n`);
  say(`wrote ${THROUGHPUT_FILE}: the rates plans use (commit it)`);
  const perSecond = (variant: Variant) => partitionSamples / median(times[variant]);
  const compared = await comparePredictions(partition, out);
  const coldStarts = await measureColdStarts(models.fp32);
  const artifact = ARTIFACT_WORKERS.length ? await artifactAtWorkers(work, models.fp32, partition, ARTIFACT_WORKERS) : [];
  const runModel = await runModelFetch(work, models.fp32, sweepPartition);
  const { e2e, error: e2eError } = await endToEnd(work, partitionSamples, batch, models.fp32);
  rmSync(work, { recursive: true, force: true });

  // What plans and costs use: the workers' rates measured here, the reference scaling beyond (int8 without VNNI).
  const rateAt = (precision: 'fp32' | 'int8', memoryMb: number) => lambdaRate(memoryMb, precision, { throughput }).galaxiesPerSecond;
  const initS = median(coldStarts);
  const torchRate = perSecond('torch');
  const dz = compared.int8Dz;
  const result = {
    threads: 1,
    batch_size: batch,
    rounds: ROUNDS,
    partition_samples: partitionSamples,
    torch_fp32_samples_per_s: round(torchRate, 1),
    cai_fp32_samples_per_s: round(perSecond('fp32'), 1),
    ratio_fp32: round(perSecond('fp32') / torchRate),
    cai_int8_samples_per_s: round(perSecond('int8'), 1),
    ratio_int8: round(perSecond('int8') / torchRate),
    int8_median_abs_dz: round(median(Array.from(dz)), 5),
    int8_max_abs_dz: round(dz[dz.length - 1], 4),
    fp32_max_abs_diff_vs_torch: compared.torchVsCai,
    mae: {
      torch: round(compared.accuracy.torch.mae, 4),
      cai_fp32: round(compared.accuracy.fp32.mae, 4),
      cai_int8: round(compared.accuracy.int8.mae, 4),
    },
    peak_rss_mb_100mb_partition: e2e ? Math.round(e2e.peakRssMb) : null,
    cold_start_s: round(initS, 3),
    e2e_samples: e2e?.samples ?? null,
    e2e_wall_s: e2e ? round(e2e.wallS, 1) : null,
    e2e_efficiency: e2e ? round(e2e.samples / e2e.wallS / (2 * perSecond('fp32')), 3) : null,
    e2e_error: e2eError,
    gflop_per_sample: round(models.gflop_per_sample, 3),
    matmul_peak_gflops_per_core: round(peak.peak_gflops, 1),
    achieved_gflops_fp32: round(perSecond('fp32') * models.gflop_per_sample, 1),
    gflops_fraction_of_peak: round((perSecond('fp32') * models.gflop_per_sample) / peak.peak_gflops, 3),
    scaling,
    throughput,
    artifact,
    run_model: runModel,
    memory_sizes: memorySizes(throughput),
    cost_12_6gb: prototypeWorkloadCosts(PARTITION_BYTES / partitionSamples, e2e?.peakRssMb ?? 0, initS, rateAt),
    sweep: sweep.map((s) => ({ ...s, perSecond: round(s.perSecond, 1) })),
    bench_seconds: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
  const plots = await writeBenchPlots(result, RESULTS);
  say(`wrote ${RESULTS} and ${plots.join(', ')}`);
  printResults(result, sweep, times, peak.peak_from);
}

function printResults(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the bench's printed result is one ad-hoc JSON object.
  result: Record<string, any>,
  sweep: Sweep,
  times: Record<Variant, number[]>,
  peakFrom: string,
) {
  const lines: string[] = [];
  const r = result;
  lines.push(
    '',
    `AstroMAE full size (${r.gflop_per_sample} GFLOP/galaxy), one ${r.partition_samples}-galaxy 100 MiB partition, 1 thread, batch ${r.batch_size}, median of ${r.rounds} alternating rounds`,
  );
  lines.push(`  ${'path'.padEnd(40)} ${'galaxies/s'.padStart(10)} ${'vs PyTorch'.padStart(10)} ${'MAE'.padStart(8)}`);
  const row = (name: string, rate: number, ratio: number | string, mae: number) =>
    lines.push(`  ${name.padEnd(40)} ${pad(rate, 10)} ${pad(ratio, 10)} ${pad(mae, 8)}`);
  row('PyTorch 2.13 eager (torch.load + model)', r.torch_fp32_samples_per_s, '1.00', r.mae.torch);
  row('CAI fp32 (decode + onnxruntime-node)', r.cai_fp32_samples_per_s, r.ratio_fp32, r.mae.cai_fp32);
  row('CAI int8', r.cai_int8_samples_per_s, r.ratio_int8, r.mae.cai_int8);
  lines.push(
    `  rounds (s): ${(['torch', 'fp32', 'int8'] as Variant[]).map((v) => `${v} ${times[v].map((t) => t.toFixed(1)).join('/')}`).join('; ')}`,
  );
  lines.push(
    `  int8 vs fp32 |Δz|: median ${r.int8_median_abs_dz}, max ${r.int8_max_abs_dz};  CAI fp32 vs PyTorch: max |Δz| ${r.fp32_max_abs_diff_vs_torch.toExponential(1)}`,
  );
  lines.push(
    `  compute: ${r.achieved_gflops_fp32} GFLOP/s fp32 on one core = ${r.gflops_fraction_of_peak} of the ${r.matmul_peak_gflops_per_core} GFLOP/s matmul peak (${peakFrom})`,
  );
  lines.push(`  cold start (fresh process to session ready): ${r.cold_start_s} s`);
  if (r.e2e_error) lines.push(`  npm start FAILED: ${r.e2e_error}`);
  if (r.e2e_samples) {
    lines.push(
      `  npm start, 2 workers: ${r.e2e_samples} galaxies in ${r.e2e_wall_s} s = ${r.e2e_efficiency} of 2 × one worker; worker peak RSS ${r.peak_rss_mb_100mb_partition} MB`,
    );
  }
  lines.push('', 'threads × batch sweep (galaxies/s, ' + `${SWEEP_SAMPLES}-galaxy partition)`);
  for (const variant of ['fp32', 'int8', 'torch'] as Variant[]) {
    for (const threads of [...new Set(sweep.map((s) => s.threads))]) {
      const cells = sweep.filter((s) => s.variant === variant && s.threads === threads);
      lines.push(`  ${variant.padEnd(6)} ${threads} thread(s): ${cells.map((c) => `b${c.batch} ${c.perSecond.toFixed(1)}`).join('  ')}`);
    }
  }
  lines.push('', "scaling: one session of k threads against k workers of one thread (the inference Lambda's pool), 100 MiB partition");
  lines.push(
    `  ${'model'.padEnd(6)} ${'k'.padStart(2)} ${'threads/s'.padStart(10)} ${'speedup'.padStart(8)} ${'workers/s'.padStart(10)} ${'speedup'.padStart(8)} ${'efficiency'.padStart(10)}`,
  );
  for (const row of r.scaling) {
    lines.push(
      `  ${row.precision.padEnd(6)} ${pad(row.k, 2)} ${pad(row.threads_per_s, 10)} ${pad(row.threads_speedup, 8)} ${pad(row.workers_per_s, 10)} ${pad(row.workers_speedup, 8)} ${pad(row.workers_efficiency, 10)}`,
    );
  }
  if (r.artifact.length) {
    lines.push('', 'inference artifact under the emulator, full-size fp32 model, one rank of the 100 MiB partition');
    for (const a of r.artifact)
      lines.push(
        `  ${pad(a.workers, 2)} worker(s): INIT ${a.init_ms} ms, peak RSS ${a.peak_rss_mb} MB, rank ${a.rank_s} s (${a.samples_per_s} galaxies/s after INIT)`,
      );
  }
  const rm = r.run_model;
  lines.push(
    '',
    `a run's own model (${(rm.model_bytes / 1e6).toFixed(1)} MB fp32) in the inference artifact, one worker, ${SWEEP_SAMPLES} galaxies per rank:`,
    `  cold (first rank of a container): fetch ${rm.cold.model_fetch_s} s + load = ${rm.cold.model_load_s} s of a ${rm.cold.rank_s} s rank (container INIT ${rm.cold.init_ms} ms, the deployed model)`,
    `  warm (the next rank):             ${rm.warm.model_load_s} s of a ${rm.warm.rank_s} s rank`,
  );
  lines.push('', 'per Lambda memory size: the rates plans use (int8 without VNNI unless noted) and the cost of a million galaxies, x86_64');
  lines.push(
    `  ${'memory MB'.padStart(9)} ${'vCPU'.padStart(5)} ${'workers'.padStart(7)} ${'fp32/s'.padStart(8)} ${'int8/s'.padStart(8)} ${'int8 VNNI/s'.padStart(11)} ${'fp32 $/M'.padStart(9)} ${'int8 $/M'.padStart(9)}`,
  );
  for (const m of r.memory_sizes) {
    lines.push(
      `  ${pad(m.memory_mb, 9)} ${pad(m.vcpus, 5)} ${pad(m.workers, 7)} ${pad(m.fp32_samples_per_s, 8)} ${pad(m.int8_samples_per_s, 8)} ${pad(m.int8_vnni_samples_per_s, 11)} ${pad(m.fp32_usd_per_million, 9)} ${pad(m.int8_usd_per_million, 9)}`,
    );
  }
  lines.push(`  rates from: ${[...new Set(r.memory_sizes.flatMap((m: { sources: string[] }) => m.sources))].join('; ')}`);
  lines.push(
    '',
    `12.6 GB on Lambda (us-east-1), modelled from the rates above: cheapest memory per partition size; S3 at ${ASSUMED_S3_MIBPS} MiB/s assumed`,
  );
  lines.push(
    `  ${'partition'.padEnd(10)} ${'ranks'.padStart(5)} │ ${'prototype (s, seed $, billed at 10 GB $)'.padEnd(40)} │ ${'CAI fp32 x86 / arm64'.padEnd(34)} │ CAI int8 x86 / arm64`,
  );
  for (const c of r.cost_12_6gb) {
    const p = c.prototype;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- cells of that same ad-hoc object.
    const cell = (a: any, b: any) => `${a.memory_mb} MB ${a.duration_s} s $${a.usd} / $${b.usd}`;
    lines.push(
      `  ${`${c.partition_mb} MB`.padEnd(10)} ${pad(p.ranks, 5)} │ ${`${p.duration_s} s  $${p.seed_formula_usd}  $${p.billed_at_10gb_usd}`.padEnd(40)} │ ${cell(c.fp32_x86_64, c.fp32_arm64).padEnd(34)} │ ${cell(c.int8_x86_64, c.int8_arm64)}`,
    );
  }
  lines.push('  (arm64 uses the x86_64 rates measured here: not measured on Graviton)');
  lines.push(JSON.stringify(result));
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(1);
});
