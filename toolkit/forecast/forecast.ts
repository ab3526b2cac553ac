import { estimateWorkload, type WorkloadEstimate } from './workload';
import type { Architecture } from '../../functions/commons/billing/cost';
import { SEED_PUBLISHED_RUNS, SEED_RANK_SECONDS, SEED_TIMED_RUNS, statisticsShare, type SeedRun } from './seed-runs';
import { UsageError } from '../../functions/commons/errors';
import { lambdaRate, type Rate } from '../../functions/commons/model/lambda-sizing';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { S3_PART_BYTES } from '../../functions/commons/tensors/byte-source';

/**
 * `cai plan`: the wall time and cost of a run on AWS before it is made. Every part is measured or
 * published: CAI's galaxies/s per memory size (lambda-sizing.ts: `npm run bench`'s rates, the
 * reference scaling beyond this machine's cores; arm64's assumed from x86_64's), INIT, S3 read
 * rate, Lambda's scaling rate and the account's concurrency quota (AWS's documented defaults,
 * overridable), and the Distributed Map's launch overhead, fitted on the prototype's timed runs.
 */

/**
 * Launch overhead = a · ranks^p: the time between the execution's start and the last rank's start
 * plus the Map's and Summarize's own, beyond one rank's duration. A power law, so that the exponent
 * is learned from the data rather than chosen (the Map launches children in growing batches:
 * the seed's runs grow slower than linearly in ranks).
 */
export interface OverheadFit {
  a: number;
  p: number;
  /** The rows it was fitted on (partition sizes, MB). */
  fittedOn: number[];
}

export const overheadSeconds = (fit: OverheadFit, ranks: number) => fit.a * ranks ** fit.p;

/** Least squares on log(overhead) against log(ranks), overhead = wall − the seed's rank duration. */
export function fitOverhead(runs: readonly SeedRun[], partitionsMb: number[]): OverheadFit {
  const points = runs
    .filter((r) => partitionsMb.includes(r.partitionMb))
    .map((r) => ({ x: Math.log(r.ranks), y: Math.log(r.wallS - SEED_RANK_SECONDS[r.partitionMb]) }));
  if (points.length < 2 || points.some((q) => !Number.isFinite(q.y))) {
    throw new UsageError(`no seed runs with a positive overhead to fit for partitions ${partitionsMb.join(', ')} MB`);
  }
  const mean = (f: (q: { x: number; y: number }) => number) => points.reduce((s, q) => s + f(q), 0) / points.length;
  const [mx, my] = [mean((q) => q.x), mean((q) => q.y)];
  const p = mean((q) => (q.x - mx) * (q.y - my)) / mean((q) => (q.x - mx) ** 2);
  return { a: Math.exp(my - p * mx), p, fittedOn: partitionsMb };
}

/** What limits how many ranks run at once, with AWS's documented defaults. */
export interface ScalingLimits {
  /** Account concurrency quota (default 1,000 per region). */
  concurrency: number;
  /** Lambda scales each function by this many executions every 10 seconds (default 1,000). */
  scalingPer10s: number;
}

export const AWS_SCALING_DEFAULTS: ScalingLimits = { concurrency: 1000, scalingPer10s: 1000 };

/**
 * The earliest the last of `ranks` ranks of `rankSeconds` (d) each can start under Lambda's scaling
 * rate (https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html): a function has at most
 * E(t) = S + S·t/10 execution environments t seconds in (S at once, S more every 10 s, refilled
 * continuously: the most AWS allows), and a finished rank hands its environment to the next. Ranks
 * started as early as that allows number E(t) + E(t − d) + E(t − 2d) + … by t, so short ranks
 * start sooner than a ramp to `ranks` environments would take.
 */
export function lastRankStartSeconds(ranks: number, rankSeconds: number, scalingPer10s: number): number {
  const [n, d, s] = [ranks, rankSeconds, scalingPer10s];
  if (n <= s || d <= 0) return 0;
  for (let k = 0; ; k++) {
    // Within [k·d, (k+1)·d) the sum has k + 1 terms: started(t) = s(k+1) + (s/10)((k+1)t − d·k(k+1)/2).
    const atStart = s * (k + 1) + (s / 10) * d * ((k * (k + 1)) / 2);
    if (atStart >= n) return k * d;
    const t = (10 * (n - s * (k + 1))) / (s * (k + 1)) + (d * k) / 2;
    if (t < (k + 1) * d) return t;
  }
}

/**
 * Wall time of `ranks` ranks of `rankSeconds` each: the latest of the launch-bound time (overhead +
 * one rank), the quota-bound one (the rank-seconds spread over the quota, after Lambda's ramp to
 * it) and the scaling floor (the last rank's earliest start under Lambda's scaling rate + one
 * rank), which no fit can undercut. The fitted rows never reach the quota; the 10,240-rank runs do.
 */
export function predictWallSeconds(fit: OverheadFit, ranks: number, rankSeconds: number, limits: ScalingLimits): number {
  const launchBound = overheadSeconds(fit, ranks) + rankSeconds;
  const ramp = 10 * (Math.ceil(Math.min(ranks, limits.concurrency) / limits.scalingPer10s) - 1);
  const quotaBound = ramp + (ranks * rankSeconds) / limits.concurrency;
  const scalingFloor = lastRankStartSeconds(ranks, rankSeconds, limits.scalingPer10s) + rankSeconds;
  return Math.max(launchBound, quotaBound, scalingFloor);
}

export interface ValidationError {
  label: string;
  ranks: number;
  /** Ranks of the runs it covers, for choosing which error stands beside a prediction. */
  rankRange: [number, number];
  predictedS: number;
  measuredS: number[];
  /** Mean of |predicted − measured| / measured over the runs, and the signed mean. */
  meanAbsError: number;
  meanSignedError: number;
  /** A published run's data: what the prototype called it, and what its statistics count. */
  data?: { statedGb: number; countedGb: number; share: number };
}

export interface Calibration {
  fit: OverheadFit;
  /** Cross-check on the rows not fitted on (75 MB and 100 MB), then the two published big runs. */
  heldOut: ValidationError;
  published: ValidationError[];
}

function validate(label: string, fit: OverheadFit, runs: SeedRun[], limits: ScalingLimits): ValidationError {
  const predictions = runs.map((r) => predictWallSeconds(fit, r.ranks, SEED_RANK_SECONDS[r.partitionMb], limits));
  const errors = runs.map((r, i) => (predictions[i] - r.wallS) / r.wallS);
  const ranks = runs.map((r) => r.ranks);
  return {
    label,
    ranks: ranks.reduce((a, b) => Math.max(a, b)),
    rankRange: [ranks.reduce((a, b) => Math.min(a, b)), ranks.reduce((a, b) => Math.max(a, b))],
    predictedS: predictions.reduce((s, p) => s + p, 0) / predictions.length,
    measuredS: runs.map((r) => r.wallS),
    meanAbsError: errors.reduce((s, e) => s + Math.abs(e), 0) / errors.length,
    meanSignedError: errors.reduce((s, e) => s + e, 0) / errors.length,
  };
}

/** Fits on the 25 MB and 50 MB rows; measures the error where it was not fitted. */
export function calibrate(limits: ScalingLimits = AWS_SCALING_DEFAULTS): Calibration {
  const fit = fitOverhead(SEED_TIMED_RUNS, [25, 50]);
  const heldOutRuns = SEED_TIMED_RUNS.filter((r) => !fit.fittedOn.includes(r.partitionMb));
  const heldOutSizes = [...new Set(heldOutRuns.map((r) => r.partitionMb))];
  return {
    fit,
    heldOut: validate(`held-out ${heldOutSizes.join(' and ')} MB rows (${heldOutRuns.length} runs)`, fit, heldOutRuns, limits),
    published: SEED_PUBLISHED_RUNS.map((p) => ({
      ...validate(
        p.label,
        fit,
        p.wallS.map((wallS) => ({ partitionMb: p.partitionMb, dataGb: 0, ranks: p.ranks, wallS })),
        limits,
      ),
      data: { statedGb: p.statedGb, countedGb: p.statisticsBytes / 1e9, share: statisticsShare(p) },
    })),
  };
}

/** The check nearest in scale (ranks, on a log scale) to a prediction: its error is the one to quote. */
export function nearestCheck(calibration: Calibration, ranks: number): ValidationError {
  const checks = [calibration.heldOut, ...calibration.published];
  const distance = (c: ValidationError) =>
    ranks < c.rankRange[0] ? Math.log(c.rankRange[0] / ranks) : ranks > c.rankRange[1] ? Math.log(ranks / c.rankRange[1]) : 0;
  return checks.reduce((best, c) => (distance(c) < distance(best) ? c : best));
}

export interface PlanAssumptions {
  architecture: Architecture;
  region: string;
  precision: 'fp32' | 'int8';
  /** The target's CPU has VNNI (int8 then runs at the rate measured with it); Lambda does not promise it. */
  vnni: boolean;
  /** INIT of a cold container (module load and ONNX session), seconds. */
  initSeconds: number;
  /** One container's S3 read rate, MiB/s. */
  s3MiBps: number;
  limits: ScalingLimits;
}

export const DEFAULT_ASSUMPTIONS: PlanAssumptions = {
  architecture: 'x86_64',
  region: 'us-east-1',
  precision: 'fp32',
  vnni: false,
  initSeconds: 1.5,
  s3MiBps: 90,
  limits: AWS_SCALING_DEFAULTS,
};

/** Lambda's longest timeout: a rank that would take longer cannot run. */
export const LAMBDA_MAX_SECONDS = 900;

export interface PlanRow {
  partitionBytes: number;
  memoryMb: number;
  ranks: number;
  galaxies: number;
  /** Galaxies per second of one rank at this memory size, and where the rate comes from. */
  rate: Rate;
  /** One rank: INIT plus its duration. */
  rankSeconds: number;
  wallSeconds: number;
  /** The check nearest in ranks, whose error stands beside this prediction. */
  check: ValidationError;
  costUsd: number;
  cost: WorkloadEstimate['cost'];
  /** Why this row cannot run (a rank over Lambda's 15 minutes), if so. */
  infeasible?: string;
  cheapest?: boolean;
  fastest?: boolean;
}

export interface Plan {
  totalBytes: number;
  assumptions: PlanAssumptions;
  calibration: Calibration;
  rows: PlanRow[];
}

export function forecastRun(totalBytes: number, partitions: number[], memories: number[], assumptions: PlanAssumptions): Plan {
  const calibration = calibrate(assumptions.limits);
  const rows = partitions.flatMap((partition) =>
    memories.map((memoryMb): PlanRow => {
      const partitionBytes = Math.min(partition, totalBytes);
      const rate = lambdaRate(memoryMb, assumptions.precision, { vnni: assumptions.vnni, architecture: assumptions.architecture });
      const estimate = estimateWorkload({
        totalBytes,
        partitionBytes,
        bytesPerSample: BYTES_PER_GALAXY,
        memoryMb,
        architecture: assumptions.architecture,
        region: assumptions.region,
        secondsPerSample: 1 / rate.galaxiesPerSecond,
        initSeconds: assumptions.initSeconds,
        s3MiBps: assumptions.s3MiBps,
        firstChunkBytes: Math.min(partitionBytes, S3_PART_BYTES),
        concurrency: assumptions.limits.concurrency,
      });
      const rankSeconds = assumptions.initSeconds + estimate.durationS;
      return {
        partitionBytes,
        memoryMb,
        ranks: estimate.partitions,
        galaxies: estimate.samples,
        rate,
        rankSeconds,
        wallSeconds: predictWallSeconds(calibration.fit, estimate.partitions, rankSeconds, assumptions.limits),
        check: nearestCheck(calibration, estimate.partitions),
        costUsd: estimate.cost.totalUsd,
        cost: estimate.cost,
        ...(rankSeconds > LAMBDA_MAX_SECONDS
          ? { infeasible: `a rank takes ~${Math.round(rankSeconds)} s, over Lambda's ${LAMBDA_MAX_SECONDS} s` }
          : {}),
      };
    }),
  );
  const feasible = rows.filter((r) => !r.infeasible);
  if (feasible.length) {
    feasible.reduce((a, b) => (b.costUsd < a.costUsd ? b : a)).cheapest = true;
    feasible.reduce((a, b) => (b.wallSeconds < a.wallSeconds ? b : a)).fastest = true;
  }
  return { totalBytes, assumptions, calibration, rows };
}
