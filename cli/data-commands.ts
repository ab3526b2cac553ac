import type { Command } from 'commander';
import { UsageError } from '../functions/commons/errors';
import { describeLocation, openLocation, parseLocation, sinkFor } from '../toolkit/locations';
import type { PartitionManifest, WriteProgress } from '../toolkit/datasets/partition-writer';
import { formatBytes, parseByteSize } from '../toolkit/sizes';
import { splitDataset } from '../toolkit/datasets/split';
import { synthesizeDataset } from '../toolkit/datasets/synth';
import { openTorchArchive, sharedSamples, summarizeTensor, type TensorSummary } from '../functions/commons/torch/archive';
import { positiveInteger } from './arguments';
import { progressLine } from './progress';
import { checkFreeSpace, checkNotOverwritingInput } from './output-checks';
import { BYTES_PER_GALAXY } from '../functions/commons/partitions/reader';

/** Bytes one labelled object takes in a partition: its image, magnitudes and label, in float32. */
/** ~1 TiB of galaxies: more is a typo, not a dataset. */
export const MAX_SYNTH_SAMPLES = 50_000_000;

const fmt = (v: number | null) => (v === null ? '-' : Number(v.toPrecision(6)).toString());

async function inspect(file: string, options: { json?: boolean }): Promise<void> {
  const source = await openLocation(parseLocation(file));
  try {
    const archive = await openTorchArchive(source);
    const progress = progressLine(`inspect ${source.name}`);
    const total = archive.tensors.reduce((n, t) => n + t.storage.entry.size, 0);
    let read = 0;
    const tensors: TensorSummary[] = [];
    for (const ref of archive.tensors) {
      tensors.push(
        await summarizeTensor(archive, ref, (bytes) => {
          read += bytes;
          if (total > 64 * 1024 * 1024) progress.update(`${formatBytes(read)} of ${formatBytes(total)}`);
        }),
      );
    }
    const report = { samples: sharedSamples(archive.tensors), tensors };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return;
    }
    const lines = [
      `${source.name}: ${formatBytes(source.size)}, ${report.samples ?? 'no shared'} samples, ${tensors.length} tensors`,
      ...tensors.map(
        (t, i) =>
          `  [${i}] ${t.dtype}[${t.shape.join(', ')}]  min ${fmt(t.min)}  max ${fmt(t.max)}  mean ${fmt(t.mean)}` +
          (t.nan ? `  nan ${t.nan}` : ''),
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await source.close();
  }
}

function reportWrite(label: string): (p: WriteProgress) => void {
  const progress = progressLine(label);
  return (p) =>
    progress.update(
      `${p.partitions}/${p.totalPartitions} partitions, ${p.samples} objects, ${formatBytes(p.bytes)}`,
      p.partitions === p.totalPartitions,
    );
}

function printManifest(manifest: PartitionManifest, where: string): void {
  const bytes = manifest.partitions.reduce((n, p) => n + p.bytes, 0);
  process.stdout.write(
    `wrote ${manifest.partitions.length} partitions (${manifest.samples} objects, ${formatBytes(bytes)}) ` +
      `and partitions.json to ${where}\n`,
  );
}

async function split(input: string, options: { size: string; out: string }): Promise<void> {
  const maxBytes = parseByteSize(options.size, '--size');
  const location = parseLocation(options.out);
  const inputLocation = parseLocation(input);
  checkNotOverwritingInput(location, inputLocation);
  const source = await openLocation(inputLocation);
  try {
    // The partitions hold what the input holds, with a little more framing.
    checkFreeSpace(location, source.size, 'split');
    const manifest = await splitDataset(source, sinkFor(location), maxBytes, reportWrite('split'));
    printManifest(manifest, describeLocation(location));
  } finally {
    await source.close();
  }
}

async function synth(options: { samples: string; size: string; out: string; seed: string }): Promise<void> {
  const samples = positiveInteger(options.samples, '--samples');
  const seed = Number(options.seed);
  if (!/^\d+$/.test(options.seed) || seed > 0xffffffff) throw new UsageError(`--seed "${options.seed}" is not an integer in 0..4294967295`);
  const location = parseLocation(options.out);
  const maxBytes = parseByteSize(options.size, '--size');
  if (samples > MAX_SYNTH_SAMPLES) {
    throw new UsageError(
      `--samples ${samples} is more than the ${MAX_SYNTH_SAMPLES} galaxies synth writes (${formatBytes(MAX_SYNTH_SAMPLES * BYTES_PER_GALAXY)})`,
    );
  }
  checkFreeSpace(location, samples * BYTES_PER_GALAXY, `--samples ${samples}`);
  const manifest = await synthesizeDataset({
    samples,
    maxBytes,
    seed,
    sink: sinkFor(location),
    onProgress: reportWrite('synth'),
  });
  printManifest(manifest, describeLocation(location));
}

export function addDataCommands(program: Command): void {
  program
    .command('inspect')
    .description('decode a tensor archive (.pt) and summarise its tensors')
    .argument('<file>', 'a local file or s3://bucket/key')
    .option('--json', 'print one JSON object as the last line')
    .action(inspect);
  program
    .command('split')
    .description('split a dataset file into size-bounded partitions 1.pt … N.pt plus partitions.json')
    .argument('<input>', 'a TensorDataset .pt file (local or s3://)')
    .requiredOption('--size <size>', 'largest partition file, e.g. 100MB (binary units)')
    .requiredOption('--out <location>', 'a folder or s3://bucket/prefix')
    .action(split);
  program
    .command('synth')
    .description('write a deterministic synthetic SDSS-like dataset in the prototype format')
    .requiredOption('--samples <n>', 'number of galaxies')
    .option('--size <size>', 'largest partition file (binary units)', '25MB')
    .requiredOption('--out <location>', 'a folder or s3://bucket/prefix')
    .option('--seed <n>', 'dataset seed', '1')
    .action(synth);
}
