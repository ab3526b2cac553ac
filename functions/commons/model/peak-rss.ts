import { readFileSync } from 'node:fs';

/** A process's peak resident memory (VmHWM), MB, on Linux; undefined elsewhere or when it has exited. */
export function vmHwmMb(pid: number | 'self' = 'self'): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * This process's peak resident memory, MB. On Linux (Lambda included) VmHWM, because getrusage's
 * maxrss survives exec: a process forked from a large one would report its parent's peak.
 */
export function peakRssMb(): number {
  return vmHwmMb() ?? process.resourceUsage().maxRSS / 1024;
}
