import { UsageError } from '../functions/commons/errors';

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * "100MB", "25M", "1.5GiB", "4096" → bytes. Units are binary (MB = 2^20 bytes), as the prototype's
 * partition sizes were: its "25MB" partitions of 12.6 GB number 517.
 */
export function parseByteSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!match) throw new UsageError(`${what} "${text}" is not a size like 100MB, 25MiB or 4096`);
  const bytes = Math.floor(Number(match[1]) * UNITS[match[2].toUpperCase()]);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`${what} "${text}" is out of range`);
  return bytes;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
