import { billRun, type Architecture, type CostBreakdown } from '../../functions/commons/billing/cost';
import { CaiError } from '../../functions/commons/errors';
import { readRequestsBound } from '../../functions/commons/partitions/chunks';
import { stateTransitions, uncountedRequests, type RunShape } from '../../functions/commons/billing/run-usage';
import { writeUnits } from '../../functions/commons/billing/dynamo-units';
import { RUNS_INDEXES } from '../../functions/commons/run/run-store';

/**
 * A finished run's record as DynamoDB sizes it, an estimate: 3 KB (the local stack's runs of one
 * regression output measured 2.2–2.3 KB; more outputs, warnings and failures make it larger). Each of its three
 * writes (the initializer's put and update, the summarizer's update) is billed at it, for the table
 * and each index (the update that sets the dataset twice in byDataset), an upper bound for the first
 * two (the item grows); its one read, eventually
 * consistent, half a unit per 4 KB.
 */
export const RECORD_BYTES_ESTIMATE = 3 * 1024;
const recordWriteUnits = writeUnits(RECORD_BYTES_ESTIMATE, Object.keys(RUNS_INDEXES).length);
/** The initializer's update sets the dataset: the item moves in the byDataset index, a delete and a put there. */
const movingWriteUnits = writeUnits(RECORD_BYTES_ESTIMATE, Object.keys(RUNS_INDEXES).length + 1);
const recordReadUnits = Math.ceil(RECORD_BYTES_ESTIMATE / 4096) / 2;

/**
 * What a whole workload would take and cost on AWS, from per-galaxy times measured on one machine
 * (`npm run bench`): one rank per partition, every container cold, billed by billRun (configured
 * memory × (duration + INIT), requests, state transitions, S3 and DynamoDB requests).
 */
export class CostModelError extends CaiError {}

export interface WorkloadInput {
  totalBytes: number;
  partitionBytes: number;
  /** Bytes of partition per galaxy (20,504 for float32 5×32×32 images, magnitudes and a label). */
  bytesPerSample: number;
  memoryMb: number;
  architecture: Architecture;
  region: string;
  secondsPerSample: number;
  /** INIT of a cold container: module load and model session. */
  initSeconds: number;
  /** S3 read rate of one container, MB/s; reading overlaps inference after the first chunk. */
  s3MiBps: number;
  /** The first read, which nothing overlaps. */
  firstChunkBytes: number;
  concurrency: number;
}

export interface WorkloadEstimate {
  partitions: number;
  samples: number;
  /** One rank's billed duration (excluding INIT), seconds. */
  durationS: number;
  /** First rank started to last rank done, with `concurrency` ranks at once. */
  wallS: number;
  cost: CostBreakdown;
}

export function estimateWorkload(input: WorkloadInput): WorkloadEstimate {
  if (!(input.partitionBytes > 0 && input.totalBytes >= input.partitionBytes && input.secondsPerSample > 0)) {
    throw new CostModelError('a workload needs positive sizes, a partition no larger than the whole, and a positive time per galaxy');
  }
  const partitions = Math.ceil(input.totalBytes / input.partitionBytes);
  const perPartition = Math.floor(input.partitionBytes / input.bytesPerSample);
  const samples = Math.floor(input.totalBytes / input.bytesPerSample);
  const mibps = input.s3MiBps * 2 ** 20;
  const compute = perPartition * input.secondsPerSample;
  const rest = (input.partitionBytes - input.firstChunkBytes) / mibps;
  const durationS = input.firstChunkBytes / mibps + Math.max(compute, rest);
  const invocation = { memoryMb: input.memoryMb, durationMs: durationS * 1000, initMs: input.initSeconds * 1000 };
  // A run that goes well: one rank per partition, no retries, one ResultWriter file.
  const shape: RunShape = { ranks: partitions, retries: 0, caughtRanks: 0, failurePath: false, mapResultFiles: 1 };
  const beyond = uncountedRequests(shape, movingWriteUnits + recordWriteUnits);
  const listPages = Math.ceil(partitions / 1000);
  const cost = billRun(
    {
      invocations: Array.from({ length: partitions }, () => invocation),
      stateTransitions: stateTransitions(shape),
      s3: {
        // The initializer reads the payload; each rank reads its partition (a HEAD, the archive's
        // records, its tensors by 8 MiB parts: at most readRequestsBound); the summarizer the
        // manifest, each rank's result and the Map's result files.
        get: 1 + partitions * readRequestsBound(input.partitionBytes) + 1 + partitions + 2 + beyond.s3Get,
        // The manifest; per rank its attempt's start record, its predictions and its result.
        put: 1 + partitions * 3 + beyond.s3Put,
        // The initializer lists the data; the summarizer lists failed attempts.
        list: listPages + 1,
      },
      // The run record: created by the initializer (its later update and the summarizer's are in
      // uncountedRequests); read by the summarizer.
      dynamo: { writes: recordWriteUnits + beyond.dynamoWrite, reads: recordReadUnits },
    },
    input.region,
    input.architecture,
  );
  const waves = Math.ceil(partitions / input.concurrency);
  return { partitions, samples, durationS, wallS: waves * (input.initSeconds + durationS), cost };
}
