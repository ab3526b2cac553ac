import { readFileSync } from 'node:fs';

/**
 * This process's peak resident memory, MB. On Linux (Lambda included) VmHWM, because getrusage's
 * maxrss survives exec: a process forked from a large one would report its parent's peak.
 */
export function peakRssMb(): number {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (kb) return Number(kb[1]) / 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS / 1024;
}
