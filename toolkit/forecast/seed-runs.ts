/**
 * The prototype's measured AWS runs (seeds/001, reference/total_execution_time.csv and
 * result_stats_adjusted.csv): the facts `cai plan` is calibrated and checked against.
 */

/** One rank's Lambda duration by partition size, seconds, at 10,240 MB (seeds/001's cost table). */
export const SEED_RANK_SECONDS: Readonly<Record<number, number>> = { 25: 6.55, 50: 11.8, 75: 17.6, 100: 25 };

export interface SeedRun {
  partitionMb: number;
  dataGb: number;
  ranks: number;
  /** Wall time of the whole Step Functions execution, seconds. */
  wallS: number;
}

/** total_execution_time.csv: 84 timed runs, three per (partition size, data size); columns as named. */
const TIMED: [number, number, number, number][] = [
  [25, 1.0, 41, 26.642],
  [25, 1.0, 41, 28.89],
  [25, 1.0, 41, 20.424],
  [25, 2.0, 82, 33.249],
  [25, 2.0, 82, 29.158],
  [25, 2.0, 82, 28.655],
  [25, 4.0, 164, 34.073],
  [25, 4.0, 164, 38.375],
  [25, 4.0, 164, 28.926],
  [25, 6.0, 246, 38.602],
  [25, 6.0, 246, 41.322],
  [25, 6.0, 246, 35.117],
  [25, 8.0, 328, 46.96],
  [25, 8.0, 328, 41.735],
  [25, 8.0, 328, 56.003],
  [25, 10.0, 410, 51.575],
  [25, 10.0, 410, 50.701],
  [25, 10.0, 410, 46.484],
  [25, 12.6, 517, 59.789],
  [25, 12.6, 517, 55.076],
  [25, 12.6, 517, 55.607],
  [50, 1.0, 21, 27.264],
  [50, 1.0, 21, 26.668],
  [50, 1.0, 21, 23.591],
  [50, 2.0, 41, 31.26],
  [50, 2.0, 41, 31.697],
  [50, 2.0, 41, 31.688],
  [50, 4.0, 82, 33.396],
  [50, 4.0, 82, 33.144],
  [50, 4.0, 82, 33.059],
  [50, 6.0, 123, 39.869],
  [50, 6.0, 123, 36.108],
  [50, 6.0, 123, 36.648],
  [50, 8.0, 164, 38.041],
  [50, 8.0, 164, 37.312],
  [50, 8.0, 164, 38.077],
  [50, 10.0, 205, 40.331],
  [50, 10.0, 205, 41.245],
  [50, 10.0, 205, 42.897],
  [50, 12.6, 259, 43.206],
  [50, 12.6, 259, 45.546],
  [50, 12.6, 259, 45.92],
  [75, 1.0, 14, 38.746],
  [75, 1.0, 14, 39.163],
  [75, 1.0, 14, 39.507],
  [75, 2.0, 28, 41.169],
  [75, 2.0, 28, 40.866],
  [75, 2.0, 28, 41.887],
  [75, 4.0, 55, 43.089],
  [75, 4.0, 55, 43.294],
  [75, 4.0, 55, 47.971],
  [75, 6.0, 82, 49.995],
  [75, 6.0, 82, 44.647],
  [75, 6.0, 82, 44.643],
  [75, 8.0, 110, 46.351],
  [75, 8.0, 110, 52.35],
  [75, 8.0, 110, 42.6],
  [75, 10.0, 137, 53.376],
  [75, 10.0, 137, 47.972],
  [75, 10.0, 137, 46.899],
  [75, 12.6, 173, 50.825],
  [75, 12.6, 173, 52.275],
  [75, 12.6, 173, 44.953],
  [100, 1.0, 11, 38.314],
  [100, 1.0, 11, 28.85],
  [100, 1.0, 11, 30.77],
  [100, 2.0, 21, 30.54],
  [100, 2.0, 21, 31.73],
  [100, 2.0, 21, 38.55],
  [100, 4.0, 41, 61.291],
  [100, 4.0, 41, 61.69],
  [100, 4.0, 41, 60.97],
  [100, 6.0, 62, 56.67],
  [100, 6.0, 62, 62.34],
  [100, 6.0, 62, 74.21],
  [100, 8.0, 82, 66.34],
  [100, 8.0, 82, 56.7],
  [100, 8.0, 82, 66.24],
  [100, 10.0, 103, 59.84],
  [100, 10.0, 103, 68.01],
  [100, 10.0, 103, 60.01],
  [100, 12.6, 130, 67.39],
  [100, 12.6, 130, 70.1],
  [100, 12.6, 130, 68.19],
];

export const SEED_TIMED_RUNS: readonly SeedRun[] = TIMED.map(([partitionMb, dataGb, ranks, wallS]) => ({
  partitionMb,
  dataGb,
  ranks,
  wallS,
}));

export interface PublishedRun {
  label: string;
  partitionMb: number;
  ranks: number;
  /** The data size the prototype gave the runs (result_stats_adjusted.csv, data (GB)). */
  statedGb: number;
  /** The data its statistics counted: total_bits ÷ 8 (the same in each of the three runs). */
  statisticsBytes: number;
  /** The three runs' wall times, seconds (result_stats_adjusted.csv, total_duration). */
  wallS: number[];
}

export const SEED_PUBLISHED_RUNS: readonly PublishedRun[] = [
  {
    label: '1,024 ranks of 100 MB',
    partitionMb: 100,
    ranks: 1024,
    statedGb: 100,
    statisticsBytes: 818_681_515_200 / 8,
    wallS: [59.69, 58.09, 73.53],
  },
  {
    label: '10,240 ranks of 100 MB',
    partitionMb: 100,
    ranks: 10240,
    statedGb: 1000,
    statisticsBytes: 833_750_418_240 / 8,
    wallS: [246.87, 242.6, 220.97],
  },
];

/**
 * The share of a published run's ranks × partition size that its statistics count: about 1 for the
 * 1,024-rank runs, about a tenth for the 10,240-rank ("1 TB") ones, whose statistics count as much
 * data as the 1,024-rank runs'. Their wall time measures the launch of 10,240 ranks, not 1 TB read.
 */
export const statisticsShare = (run: PublishedRun): number => run.statisticsBytes / (run.ranks * run.partitionMb * 1e6);
