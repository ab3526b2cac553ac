import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../local/paths';

/**
 * The Node.js the project declares (package.json's engines) runs every package the lockfile
 * installs: `npm ci` warns of none (EBADENGINE) but those named here, each with why it runs anyway.
 */
const semver = createRequire(__filename)('semver') as {
  satisfies(version: string, range: string): boolean;
  minVersion(range: string): { version: string } | null;
};

/** Packages that declare a newer Node than the project's, and what makes them run on it. */
const RUN_ANYWAY: Record<string, string> = {
  // Dev only (the local stack). The registry npm ci reads lists no release before 3.0.0; of Node 22
  // it uses Promise.withResolvers only, which local/sfn-server.ts supplies on Node 20.
  'aws-local-stepfunctions': 'Promise.withResolvers',
};

test("every locked package's engines admit the oldest Node package.json allows, but those named with their reason", () => {
  const project = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
  const oldest = semver.minVersion(project.engines.node)!.version;
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
  };
  const refusing = Object.entries(lock.packages)
    .filter(([path]) => path !== '')
    .map(([path, entry]) => ({
      name: path.replace(/^.*node_modules\//, ''),
      version: entry.version,
      node: (entry.engines as { node?: string })?.node,
    }))
    .filter((p) => p.node !== undefined && !semver.satisfies(oldest, p.node));
  expect(oldest).toBe('20.19.0');
  expect(refusing.map((p) => p.name)).toEqual(Object.keys(RUN_ANYWAY));
  const polyfill = readFileSync(join(ROOT, 'local', 'sfn-server.ts'), 'utf8');
  expect(polyfill).toMatch(/\(Promise as unknown as \{ withResolvers\?: unknown \}\)\.withResolvers \?\?=/);
});
