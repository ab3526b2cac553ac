import type { Command } from 'commander';
import { UsageError } from '../../functions/commons/errors';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { describeLocation, parseLocation, sinkFor } from '../../toolkit/locations';
import { formatBytes, parseByteSize } from '../../toolkit/sizes';
import { printManifest, writeProgress } from '../dataset-output';
import { positiveInteger } from '../options';
import { checkFreeSpace } from '../output-checks';

/** ~1 TiB of galaxies: more is a typo, not a dataset. */
export const MAX_SYNTH_SAMPLES = 50_000_000;

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
    onProgress: writeProgress('synth'),
  });
  printManifest(manifest, describeLocation(location));
}

/** `cai synth`: a deterministic synthetic SDSS-like dataset. */
export function addSynthCommand(program: Command): void {
  program
    .command('synth')
    .description('write a deterministic synthetic SDSS-like dataset in the prototype format')
    .requiredOption('--samples <n>', 'number of galaxies')
    .option('--size <size>', 'largest partition file (binary units)', '25MB')
    .requiredOption('--out <location>', 'a folder or s3://bucket/prefix')
    .option('--seed <n>', 'dataset seed', '1')
    .action(synth);
}
