import { UsageError } from '../functions/commons/errors';

export function positiveInteger(text: string, what: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${what} "${text}" is not a positive integer`);
  }
  return n;
}
