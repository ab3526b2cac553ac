import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../functions/commons/errors';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import type { PartitionLayout } from '../../toolkit/datasets/partition-writer';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { SURVEY_EXTENSION, SURVEY_FORMATS, writeSurveyFile, type SurveyFormat } from '../../toolkit/datasets/survey-file';
import { describeLocation, parseLocation, sinkFor } from '../../toolkit/locations';
import { formatBytes, parseByteSize } from '../../toolkit/sizes';
import { printManifest, writeProgress } from '../dataset-output';
import { positiveInteger } from '../options';
import { checkFreeSpace } from '../output-checks';

/** ~1 TiB of galaxies: more is a typo, not a dataset. */
export const MAX_SYNTH_SAMPLES = 50_000_000;

const LAYOUTS: PartitionLayout[] = ['dataset', 'dict'];

async function synth(options: {
  samples: string;
  size: string;
  out: string;
  seed: string;
  oddities: string;
  layout: string;
  format: string;
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
  if (options.format !== 'pt') {
    const format = options.format as SurveyFormat;
    if (!SURVEY_FORMATS.includes(format))
      throw new UsageError(`--format "${options.format}" is not one of pt, ${SURVEY_FORMATS.join(', ')}`);
    if (location.kind !== 'file') throw new UsageError('--format writes one local file: give --out a folder, then upload it');
    await mkdir(location.path, { recursive: true });
    const path = join(location.path, `survey${SURVEY_EXTENSION[format]}`);
    await writeSurveyFile(format, path, samples, seed);
    process.stdout.write(`${path}: ${samples} galaxies (images, magnitudes, redshift), ${formatBytes((await stat(path)).size)}\n`);
    return;
  }
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
    oddities,
    layout,
    sink: sinkFor(location),
    onProgress: writeProgress('synth'),
  });
  printManifest(manifest, describeLocation(location));
}

/** `cai synth`: a deterministic synthetic SDSS-like dataset. */
export function addSynthCommand(program: Command): void {
  program
    .command('synth')
    .description('write a deterministic synthetic SDSS-like dataset, in the prototype format unless --layout dict')
    .requiredOption('--samples <n>', 'number of galaxies')
    .option('--size <size>', 'largest partition file (binary units)', '25MB')
    .requiredOption('--out <location>', 'a folder or s3://bucket/prefix')
    .option('--seed <n>', 'dataset seed', '1')
    .option('--layout <layout>', 'dataset: TensorDataset (images, magnitudes, redshift); dict: named tensors, with morphology', 'dataset')
    .option('--oddities <fraction>', 'fraction of objects made anomalous, labelled in an anomaly tensor (needs --layout dict)', '0')
    .option(
      '--format <format>',
      `pt: partitions as .pt; ${SURVEY_FORMATS.join(', ')}: one survey file (images, magnitudes, redshift) in that format`,
      'pt',
    )
    .action(synth);
}
