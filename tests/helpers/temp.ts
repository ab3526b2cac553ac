import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the test environment (tests/environment.cjs) finds the folders to remove. */
const REGISTRY = '__caiTempFolders';

/**
 * A new folder under the system's temp folder, removed with all it holds when its test file is
 * done: by the test environment's teardown (tests/environment.cjs), which runs after every test and
 * every afterAll hook of the file, so after its stacks, servers and containers have closed.
 */
export function tempFolder(prefix: string): string {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  const registry = globalThis as unknown as Record<string, string[] | undefined>;
  (registry[REGISTRY] ??= []).push(folder);
  return folder;
}
