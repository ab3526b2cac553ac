import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The package's root folder, found from wherever this code runs (sources in tests, dist/ bundles). */
function findRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'statemachine'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the CAI package root above ${from}`);
    dir = parent;
  }
  return dir;
}

export const ROOT = findRoot(__dirname);
