/**
 * The inference worker's settings per Lambda size: intra-op threads and batch size. These are
 * what `npm run bench` found fastest on a 2-core x86_64 machine (README, "Performance"): 1 and 2
 * vCPUs are measured; above 2 vCPUs, one thread per vCPU is assumed, not measured. The bench
 * prints its own findings next to these and says when they differ.
 */
export interface WorkerSettings {
  threads: number;
  batchSize: number;
}

/** Indexed by whole vCPUs (1,769 MB each, rounded up; below 1,769 MB a single thread). */
export const WORKER_SETTINGS: Readonly<Record<number, WorkerSettings>> = {
  1: { threads: 1, batchSize: 16 },
  2: { threads: 2, batchSize: 64 },
};

/**
 * Galaxies per second of the full-size fp32 AstroMAE at these settings (`npm run bench`, 2026-11-21:
 * 122 on one vCPU, 225 on two). The slower model's rate, so plans hold for int8 as well.
 */
export const MEASURED_GALAXIES_PER_S: Readonly<Record<number, number>> = { 1: 122, 2: 225 };

/**
 * Galaxies per second on `vcpus`, from the rates measured on one and two: a share of one vCPU
 * slows it in proportion; above two, each further vCPU adds what the second added (an
 * extrapolation). The one rule the initializer's budget, `cai plan` and the bench all use.
 */
export function rateAtVcpus(vcpus: number, measured: { one: number; two: number }): number {
  if (vcpus <= 1) return measured.one * vcpus;
  return measured.one + Math.max(0, measured.two - measured.one) * (vcpus - 1);
}

/** Galaxies per second a Lambda of this memory size runs the full-size fp32 model. */
export const galaxiesPerSecond = (memoryMb: number): number =>
  rateAtVcpus(lambdaVcpus(memoryMb), { one: MEASURED_GALAXIES_PER_S[1], two: MEASURED_GALAXIES_PER_S[2] });

export const MAX_LAMBDA_VCPUS = 6;

/** The CPU a Lambda of this memory size can use, in vCPUs: in proportion, 1,769 MB for each. */
/** Lambda gives a function one vCPU's worth of CPU for each 1,769 MB of memory (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). */
export const MB_PER_VCPU = 1769;

export const lambdaVcpus = (memoryMb: number) => Math.min(MAX_LAMBDA_VCPUS, memoryMb / MB_PER_VCPU);

/** Threads worth running: the vCPUs, rounded up (a share of one vCPU still runs one thread). */
export const wholeVcpus = (memoryMb: number) => Math.max(1, Math.ceil(lambdaVcpus(memoryMb)));

export function workerSettings(memoryMb: number): WorkerSettings {
  const vcpus = wholeVcpus(memoryMb);
  const measured = Math.max(
    ...Object.keys(WORKER_SETTINGS)
      .map(Number)
      .filter((v) => v <= vcpus),
  );
  const settings = WORKER_SETTINGS[measured];
  return vcpus === measured ? settings : { threads: vcpus, batchSize: settings.batchSize };
}
