/**
 * How AstroMAE's throughput scales with cores where this project's machine cannot measure it (it
 * has 2): onnxruntime 1.30 on a 16-core x86_64 Intel Xeon, k = 1, 2, 4, 6 cores, two runs on two
 * such machines, 2026-11-27 (the shared reference vcpu-scaling-16core.json; its "sessions"
 * configuration is k sessions of one intra-op thread in k threads of one process, as CAI's pool
 * runs them). Each figure is the speedup over one core, the lower of the two runs.
 */
export const REFERENCE_SOURCE = 'vcpu-scaling-16core.json (16-core Xeon, 2026-11-27, lower of 2 runs)';

/** k workers of one thread each, over one. */
export const REFERENCE_WORKER_SPEEDUP: Readonly<Record<'fp32' | 'int8', Readonly<Record<number, number>>>> = {
  fp32: { 1: 1, 2: 1.57, 4: 2.76, 6: 5.11 },
  int8: { 1: 1, 2: 1.99, 4: 4.18, 6: 5.72 },
};

/** One session of k intra-op threads, over one: what CAI ran before its pool, for comparison. */
export const REFERENCE_THREAD_SPEEDUP: Readonly<Record<'fp32' | 'int8', Readonly<Record<number, number>>>> = {
  fp32: { 1: 1, 2: 1.24, 4: 2.5, 6: 3.19 },
  int8: { 1: 1, 2: 1.65, 4: 2.56, 6: 3.34 },
};

/**
 * int8 over fp32 at one core on that Xeon, whose int8 runs without the VNNI instructions this
 * project's EPYC has (there int8 ran 2.3× fp32): Lambda does not promise VNNI, so int8 plans assume
 * this unless told the target has it.
 */
export const REFERENCE_INT8_OVER_FP32_WITHOUT_VNNI = 1.59;

/** The reference speedup at k cores, linear between the cores it measured (it has no 3 or 5). */
export function referenceSpeedup(table: Readonly<Record<number, number>>, k: number): number {
  const measured = Object.keys(table)
    .map(Number)
    .sort((a, b) => a - b);
  const below = measured.filter((c) => c <= k).at(-1)!;
  const above = measured.find((c) => c >= k) ?? below;
  if (below === above) return table[below];
  return table[below] + ((table[above] - table[below]) * (k - below)) / (above - below);
}
