import type { Command } from 'commander';
import { UsageError } from '../functions/commons/errors';
import { describeLocation, openLocation, parseLocation, sinkFor } from '../functions/commons/partitions/locations';
import type { PartitionLayout, PartitionManifest, WriteProgress } from '../functions/commons/partitions/writer';
import { formatBytes, parseByteSize } from '../functions/commons/partitions/sizes';
import { splitDataset } from '../functions/commons/partitions/split';
import { synthesizeDataset } from '../functions/commons/partitions/synth';
import { openTorchArchive, sharedSamples, summarizeTensor, type TensorSummary } from '../functions/commons/torch/archive';
import { positiveInteger } from './arguments';
import { progressLine } from './progress';
import { checkFreeSpace, checkNotOverwritingInput } from './output-checks';
import { IMAGE_ELEMENTS, BANDS } from '../functions/commons/partitions/reader';

/** Bytes one labelled object takes in a partition: its image, magnitudes and label, in float32. */
const OBJECT_BYTES = (IMAGE_ELEMENTS + BANDS + 1) * 4;
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

const LAYOUTS: PartitionLayout[] = ['dataset', 'dict'];

async function synth(options: {
  samples: string;
  size: string;
  out: string;
  seed: string;
  oddities: string;
  layout: string;
}): Promise<void> {
  const samples = positiveInteger(options.samples, '--samples');
  const seed = Number(options.seed);
  if (!/^\d+$/.test(options.seed) || seed > 0xffffffff) throw new UsageError(`--seed "${options.seed}" is not an integer in 0..4294967295`);
  const oddities = Number(options.oddities);
  if (options.oddities.trim() === '' || !(oddities >= 0 && oddities <= 1)) {
    throw new UsageError(`--oddities "${options.oddities}" is not a fraction in 0..1`);
  }
  const layout = options.layout as PartitionLayout;
  if (!LAYOUTS.includes(layout)) throw new UsageError(`--layout "${options.layout}" is not one of ${LAYOUTS.join(', ')}`);
  if (oddities > 0 && layout !== 'dict') {
    throw new UsageError('--oddities needs --layout dict: a TensorDataset has no place for the anomaly label');
  }
  const location = parseLocation(options.out);
  const maxBytes = parseByteSize(options.size, '--size');
  if (samples > MAX_SYNTH_SAMPLES) {
    throw new UsageError(
      `--samples ${samples} is more than the ${MAX_SYNTH_SAMPLES} galaxies synth writes (${formatBytes(MAX_SYNTH_SAMPLES * OBJECT_BYTES)})`,
    );
  }
  checkFreeSpace(location, samples * OBJECT_BYTES, `--samples ${samples}`);
  const manifest = await synthesizeDataset({
    samples,
    maxBytes,
    seed,
    oddities,
    layout,
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
    .description('write a deterministic synthetic SDSS-like dataset, in the prototype format unless --layout dict')
    .requiredOption('--samples <n>', 'number of galaxies')
    .option('--size <size>', 'largest partition file (binary units)', '25MB')
    .requiredOption('--out <location>', 'a folder or s3://bucket/prefix')
    .option('--seed <n>', 'dataset seed', '1')
    .option('--layout <layout>', 'dataset: TensorDataset (images, magnitudes, redshift); dict: named tensors, with morphology', 'dataset')
    .option('--oddities <fraction>', 'fraction of objects made anomalous, labelled in an anomaly tensor (needs --layout dict)', '0')
    .action(synth);
}
