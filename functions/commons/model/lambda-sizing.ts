import committed from './throughput.json';
import { REFERENCE_INT8_OVER_FP32_WITHOUT_VNNI, REFERENCE_SOURCE, REFERENCE_WORKER_SPEEDUP, referenceSpeedup } from './reference-scaling';

/**
 * What a Lambda of a given memory size runs, and how fast: its vCPU share, its inference workers
 * (one ONNX session of one thread per vCPU), and galaxies per second of the full-size AstroMAE, from
 * measurements only: `npm run bench`'s rates for as many workers as its machine has cores
 * (throughput.json, which the bench writes), beyond them the reference scaling of a 16-core server.
 */

/** Lambda gives a function one vCPU's worth of CPU for each 1,769 MB of memory (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). */
export const MB_PER_VCPU = 1769;
export const MAX_LAMBDA_VCPUS = 6;

/** The CPU a Lambda of this memory size can use, in vCPUs: in proportion, 1,769 MB for each. */
export const lambdaVcpus = (memoryMb: number) => Math.min(MAX_LAMBDA_VCPUS, memoryMb / MB_PER_VCPU);

/** Inference workers for a memory size: its vCPU share rounded, at least 1, at most 6. */
export const workersFor = (memoryMb: number) => Math.min(MAX_LAMBDA_VCPUS, Math.max(1, Math.round(lambdaVcpus(memoryMb))));

export type Precision = 'fp32' | 'int8';

/** Lambda's instruction set architectures (https://docs.aws.amazon.com/lambda/latest/dg/foundation-arch.html). */
export type Architecture = 'x86_64' | 'arm64';

/**
 * arm64's rate as a share of x86_64's, until `npm run bench` runs on a Graviton: an assumption, not
 * a measurement. Every rate here was measured on x86_64 (AVX2/AVX-512 kernels); ONNX Runtime's
 * arm64 kernels (NEON) on Graviton2 may be slower or faster for this model, and nothing here says
 * which. 0.8 errs on the slow side, so an arm64 plan gives a rank less work and a longer wall
 * time rather than a rank that overruns its timeout.
 */
export const ARM64_RATE_FACTOR = 0.8;

/** What `npm run bench` measured (it writes throughput.json): galaxies per second of k workers, k up to its cores. */
export interface Throughput {
  /** When and where: the bench's date, CPU and library versions. */
  measured: string;
  /** Whether that CPU has the VNNI instructions int8 runs fast on. */
  vnni: boolean;
  /** The batch of one worker the rates are for: the fastest for one thread. */
  batchSize: number;
  workers: Record<Precision, Record<string, number>>;
}

const THROUGHPUT: Throughput = committed as Throughput;

/** Objects per inference call of one worker (one thread): the batch the bench measured fastest. */
export const WORKER_BATCH_SIZE = THROUGHPUT.batchSize;

/** A rate and where each part of it comes from. */
export interface Rate {
  galaxiesPerSecond: number;
  sources: string[];
}

/** Galaxies per second of k workers on k whole vCPUs. */
function rateWithWorkers(table: Throughput, k: number, precision: Precision, vnni: boolean): Rate {
  const measuredHere = `measured here (${table.measured})`;
  if (precision === 'int8' && !vnni) {
    const fp32 = rateWithWorkers(table, k, 'fp32', false);
    return {
      galaxiesPerSecond: fp32.galaxiesPerSecond * REFERENCE_INT8_OVER_FP32_WITHOUT_VNNI,
      sources: [...fp32.sources, `int8 ×${REFERENCE_INT8_OVER_FP32_WITHOUT_VNNI} over fp32 on a CPU without VNNI (${REFERENCE_SOURCE})`],
    };
  }
  const rates = table.workers[precision];
  if (rates[String(k)] !== undefined)
    return { galaxiesPerSecond: rates[String(k)], sources: [`${precision}, ${k} worker(s): ${measuredHere}`] };
  const speedup = referenceSpeedup(REFERENCE_WORKER_SPEEDUP[precision], k);
  return {
    galaxiesPerSecond: rates['1'] * speedup,
    sources: [`${precision}, 1 worker: ${measuredHere}`, `×${speedup.toFixed(2)} for ${k} workers (${REFERENCE_SOURCE})`],
  };
}

/**
 * Galaxies per second a Lambda of this memory size runs with its workers: a share of one vCPU slows
 * one worker in proportion; between whole vCPUs, the rate of the workers either side, in proportion.
 * int8 assumes a CPU without VNNI unless `vnni` says the target has it; arm64 is x86_64's rate
 * × ARM64_RATE_FACTOR.
 */
export function lambdaRate(
  memoryMb: number,
  precision: Precision = 'fp32',
  options: { vnni?: boolean; throughput?: Throughput; architecture?: Architecture } = {},
): Rate {
  const x86 = x86Rate(memoryMb, precision, options);
  if (options.architecture !== 'arm64') return x86;
  return {
    galaxiesPerSecond: x86.galaxiesPerSecond * ARM64_RATE_FACTOR,
    sources: [...x86.sources, `arm64: the x86_64 rate × ${ARM64_RATE_FACTOR}, assumed (not measured on Graviton)`],
  };
}

/** The rate on the x86_64 CPUs the bench measured. */
function x86Rate(memoryMb: number, precision: Precision, options: { vnni?: boolean; throughput?: Throughput }): Rate {
  const table = options.throughput ?? THROUGHPUT;
  const vcpus = lambdaVcpus(memoryMb);
  const vnni = options.vnni ?? false;
  if (vcpus <= 1) {
    const one = rateWithWorkers(table, 1, precision, vnni);
    return { galaxiesPerSecond: one.galaxiesPerSecond * vcpus, sources: one.sources };
  }
  const [low, high] = [
    rateWithWorkers(table, Math.floor(vcpus), precision, vnni),
    rateWithWorkers(table, Math.ceil(vcpus), precision, vnni),
  ];
  const share = vcpus - Math.floor(vcpus);
  return {
    galaxiesPerSecond: low.galaxiesPerSecond + (high.galaxiesPerSecond - low.galaxiesPerSecond) * share,
    sources: [...new Set([...low.sources, ...high.sources])],
  };
}

/** Galaxies per second of the full-size fp32 model at this memory size and architecture: what rank budgets plan with (int8 is faster). */
export const galaxiesPerSecond = (memoryMb: number, architecture: Architecture = 'x86_64'): number =>
  lambdaRate(memoryMb, 'fp32', { architecture }).galaxiesPerSecond;
