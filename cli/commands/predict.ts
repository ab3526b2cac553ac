import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { PartitionLayoutError, UsageError } from '../../functions/commons/errors';
import { cardFeeds, cardKeyFor, partitionMisfit } from '../../functions/commons/model/card';
import { WORKER_BATCH_SIZE } from '../../functions/commons/model/lambda-sizing';
import { readModelFile } from '../../functions/commons/model/model-file';
import { predictionsCsv } from '../../functions/commons/model/predictions';
import { loadModel, runPartition, type OnnxModel } from '../../functions/commons/model/session';
import { outputMetrics, outputStatistics } from '../../functions/commons/model/task-statistics';
import { startInferencePool } from '../../functions/commons/model/worker-pool';
import { openPartition, type RowRange, type TensorPartition } from '../../functions/commons/partitions/partition';
import { describeLocation, openLocation, parseLocation } from '../../toolkit/locations';
import { poolWorkersOption, positiveInteger, threadsOption, withOptions } from '../options';
import { checkOutputFile } from '../output-checks';
import { progressLine } from '../progress';
import { formatOutputMetrics } from '../run-format';

/** --rows start:end, whole numbers with start < end (the file's row count is checked when it opens). */
function rowsOption(text: string): RowRange {
  const match = /^(\d+):(\d+)$/.exec(text.trim());
  if (!match || Number(match[1]) >= Number(match[2]))
    throw new UsageError(`--rows "${text}" is not start:end with start < end (e.g. 1000:2000)`);
  return { start: Number(match[1]), end: Number(match[2]) };
}

/** The model's card: --card, else beside the model (<model>.card.json), else in its metadata. */
async function modelAndCard(model: string, cardFile?: string) {
  const beside = cardKeyFor(model);
  const cardPath = cardFile ?? (existsSync(beside) ? beside : undefined);
  return readModelFile(model, cardPath ? await readFile(cardPath, 'utf8') : undefined);
}

async function predict(
  partition: string,
  options: {
    model: string;
    card?: string;
    out: string;
    rows?: string;
    batchSize?: string;
    workers?: string;
    threads?: string;
    json?: boolean;
  },
): Promise<void> {
  if (options.workers && options.threads) throw new UsageError('--workers and --threads are two ways to run: give one');
  const threads = options.threads ? threadsOption(options.threads) : undefined;
  const workers = threads ? undefined : poolWorkersOption(options.workers ?? '1');
  const location = parseLocation(partition);
  checkOutputFile(options.out, '--out', [location, { kind: 'file', path: options.model }]);
  const { card, signature } = await modelAndCard(options.model, options.card);
  const batchSize = options.batchSize ? positiveInteger(options.batchSize, '--batch-size') : (card.batchSize ?? WORKER_BATCH_SIZE);
  const how = workers ? `${workers} worker${workers > 1 ? 's' : ''}` : `1 session of ${threads} thread${threads! > 1 ? 's' : ''}`;
  const key = location.kind === 'file' ? basename(location.path) : location.key;
  // The partition first: a missing or misfitting one is named before any worker starts.
  const reader: TensorPartition = await openPartition(
    await openLocation(location),
    cardFeeds(card),
    options.rows ? rowsOption(options.rows) : undefined,
  );
  let model: OnnxModel | undefined;
  try {
    const misfit = partitionMisfit(card, signature, reader.feeds);
    if (misfit) throw new PartitionLayoutError(`${reader.name}: ${misfit}`);
    // The inference Lambda's path (a pool of workers of one thread each), or one session of --threads.
    model = workers
      ? await startInferencePool({ modelPath: options.model, workers, workerScript: join(__dirname, 'inference-worker.js') })
      : await loadModel(options.model, { intraOpThreads: threads });
    const progress = progressLine(`predict ${describeLocation(location)}`);
    const start = process.hrtime.bigint();
    const result = await runPartition(model, card, reader, batchSize, (done, total) =>
      progress.update(`${done}/${total} objects`, done === total),
    );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const columns = Object.entries(card.outputs).map(([name, output]) => ({
      name,
      output,
      ...result.outputs[name],
      labels: result.labels[name],
    }));
    await writeFile(options.out, predictionsCsv(key, columns, reader.samples, reader.firstRow));
    const metrics = Object.fromEntries(
      columns.map((c) => [c.name, outputMetrics(outputStatistics(c.output, c.values ?? new Float32Array(0), key, c.labels))]),
    );
    const lines = [
      `${reader.samples} predictions from ${options.model} written to ${options.out} ` +
        `(${seconds.toFixed(2)} s, ${(reader.samples / seconds).toFixed(0)} objects/s, ${how})`,
      ...columns.flatMap((c) => formatOutputMetrics(c.name, metrics[c.name], { samples: reader!.samples, labelled: Boolean(c.labels) })),
    ];
    if (result.nonFinite) {
      lines.push(
        `${result.nonFinite} object${result.nonFinite === 1 ? '' : 's'} with a non-finite input value (NaN or infinity): predicted NaN`,
      );
    }
    // `accuracy`: the first regression output's, as CAI's redshift model has one.
    const accuracy = Object.values(metrics).find((m) => m.task === 'regression')?.accuracy ?? null;
    if (options.json)
      lines.push(JSON.stringify({ samples: reader.samples, seconds, out: options.out, nonFinite: result.nonFinite, accuracy, metrics }));
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await reader.close();
    await model?.release();
  }
}

/** `cai predict <partition>`: the model over one partition, by the inference Lambda's own path. */
export function addPredictCommand(program: Command): void {
  withOptions(
    program
      .command('predict')
      .description("run the model over one partition with CAI's inference path; write one CSV row per object")
      .argument('<file>', 'a data file: .pt, HDF5, FITS, Parquet, .npy or .npz (local or s3://bucket/key)')
      .requiredOption(
        '--out <file.csv>',
        "where to write partition,row and each output's columns (redshift_pred[,redshift_true] for the default model)",
      )
      .option('--rows <start:end>', 'only rows start … end-1 of the file, as a run plans a range of a large file')
      .option('--card <card.json>', "the model's card (default: <model>.card.json beside it, else the model's cai.card metadata)")
      .option('--batch-size <n>', `objects per inference call (default: the card's batchSize, else ${WORKER_BATCH_SIZE})`)
      .option('--workers <n>', 'inference workers of one thread each, as the inference Lambda runs them (default 1)')
      .option('--threads <n>', 'instead of workers: one session of this many intra-op threads'),
    'model',
    'json',
  ).action(predict);
}
