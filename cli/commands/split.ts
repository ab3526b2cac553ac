import type { Command } from 'commander';
import { splitDataset } from '../../toolkit/datasets/split';
import { describeLocation, openLocation, parseLocation, sinkFor } from '../../toolkit/locations';
import { parseByteSize } from '../../toolkit/sizes';
import { printManifest, writeProgress } from '../dataset-output';
import { checkFreeSpace, checkNotOverwritingInput } from '../output-checks';

async function split(input: string, options: { size: string; out: string }): Promise<void> {
  const maxBytes = parseByteSize(options.size, '--size');
  const location = parseLocation(options.out);
  const inputLocation = parseLocation(input);
  checkNotOverwritingInput(location, inputLocation);
  const source = await openLocation(inputLocation);
  try {
    // The partitions hold what the input holds, with a little more framing.
    checkFreeSpace(location, source.size, 'split');
    const manifest = await splitDataset(source, sinkFor(location), maxBytes, writeProgress('split'));
    printManifest(manifest, describeLocation(location));
  } finally {
    await source.close();
  }
}

/** `cai split <input>`: a dataset file into size-bounded partitions. */
export function addSplitCommand(program: Command): void {
  program
    .command('split')
    .description('split a dataset file into size-bounded partitions 1.pt … N.pt plus partitions.json')
    .argument('<input>', 'a TensorDataset .pt file (local or s3://)')
    .requiredOption('--size <size>', 'largest partition file, e.g. 100MB (binary units)')
    .requiredOption('--out <location>', 'a folder or s3://bucket/prefix')
    .action(split);
}
