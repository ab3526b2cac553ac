import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LambdaError, LocalFunction, lambdaReportLine } from '../../local/lambda-runtime';
import { memoryWatch, type MemoryWatchKind } from '../../local/memory-limit';
import { tempFolder } from '../helpers/temp';

/**
 * A local container is held to its memory size as Lambda holds a function (docs/local-stack.md):
 * past it the runtime is killed mid-invocation and the caller gets Lambda's Runtime.OutOfMemory,
 * billed up to the kill, with the REPORT line Lambda prints; the next invocation starts a new
 * runtime. Both ways of holding it are tested where this machine has them: the cgroup (preferred,
 * v2 or v1, where one can be made) and the poll (the fallback, everywhere). CAI_MEMORY_WATCH=poll
 * runs the poll alone, as on a machine without a writable cgroup; how the cgroup of each version is
 * found, made and read is tested on stand-in trees (tests/unit/memory-cgroups.test.ts).
 */
const work = tempFolder('cai-memory-');
const hog = join(work, 'hog');
mkdirSync(hog);
// Holds `mb` MB of filled (so resident) buffers, `stepMs` apart, 8 MB at a time; or sleeps; or tells
// V8's heap limit; or aborts.
writeFileSync(
  join(hog, 'index.mjs'),
  `import { getHeapStatistics } from 'node:v8';
const held = [];
export const handler = async (event) => {
  if (event.heapLimit) return { heapLimitMb: getHeapStatistics().heap_size_limit / 1024 / 1024 };
  if (event.abort) process.abort();
  if (event.sleepMs) await new Promise((r) => setTimeout(r, event.sleepMs));
  for (let mb = 0; mb < (event.mb ?? 0); mb += 8) {
    held.push(Buffer.alloc(8 * 1024 * 1024, 1));
    if (event.stepMs) await new Promise((r) => setTimeout(r, event.stepMs));
  }
  const mb = held.length * 8;
  held.length = 0;
  return { held: mb };
};
`,
);

/** What this machine holds containers with: the cgroup it can make (unless CAI_MEMORY_WATCH says poll), and the poll. */
const probe = memoryWatch(256);
probe.close();
const KINDS: MemoryWatchKind[] = probe.kind === 'cgroup' ? ['cgroup', 'poll'] : ['poll'];
const CGROUP = probe.kind === 'cgroup' ? `cgroup v${probe.cgroupVersion}` : undefined;

let made = 0;
/** A container of the hog; `memoryWatch` forces one way of holding it, else the machine's best. */
function hogFunction(memoryWatch: MemoryWatchKind | undefined, memoryMb = 256): { fn: LocalFunction; log: string } {
  const log = join(work, `hog-${++made}.log`);
  const fn = new LocalFunction({
    name: 'hog',
    artifact: hog,
    handler: 'index.handler',
    memoryMb,
    timeoutS: 60,
    architecture: 'x86_64',
    env: {},
    concurrency: 1,
    logFile: log,
    memoryWatch,
  });
  return { fn, log };
}

const OUT_OF_MEMORY = /^RequestId: \S+ Error: Runtime exited with error: signal: killed$/;

describe.each(KINDS.map((kind) => [kind === 'cgroup' ? CGROUP : kind, kind] as const))('held by the %s', (_, kind) => {
  test('a container over its memory size is killed and reported as Lambda reports it (Runtime.OutOfMemory), billed; the next invocation starts a new runtime', async () => {
    const { fn, log } = hogFunction(kind);
    try {
      await expect(fn.invoke({ mb: 64 })).resolves.toEqual({ held: 64 });
      // 8 MB every 20 ms (400 MB/s): the poll's 50 ms see it pass 256 MB, as the cgroup does at once.
      const started = performance.now();
      const error = await fn.invoke({ mb: 1024, stepMs: 20 }).catch((e: unknown) => e);
      const elapsed = performance.now() - started;
      expect(error).toBeInstanceOf(LambdaError);
      expect(error).toMatchObject({ name: 'Runtime.OutOfMemory', message: expect.stringMatching(OUT_OF_MEMORY) });
      const report = fn.billed[1];
      expect(report).toMatchObject({ status: 'error', error: 'Runtime.OutOfMemory', memoryMb: 256, maxMemoryUsedMb: 256, initMs: 0 });
      // Billed up to the kill: about 25 steps of 20 ms to reach 256 MB, never the 60 s timeout.
      expect(report.durationMs).toBeGreaterThan(300);
      expect(report.durationMs).toBeLessThanOrEqual(elapsed);
      expect(report.billedMs).toBe(Math.ceil(report.durationMs));
      const line = lambdaReportLine(report);
      expect(line).toMatch(
        /^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 256 MB\tMax Memory Used: 256 MB\tStatus: error\tError Type: Runtime\.OutOfMemory$/,
      );
      expect((error as Error).message).toContain(report.requestId);
      // The log is written as a stream (as CloudWatch receives it, a little after the reply).
      for (const until = Date.now() + 5000; !readFileSync(log, 'utf8').includes(line) && Date.now() < until;)
        await new Promise((r) => setTimeout(r, 20));
      expect(readFileSync(log, 'utf8')).toContain(line);
      // The emulator starts a new runtime for the next invocation: a cold start, billed with its INIT.
      await expect(fn.invoke({ mb: 64 })).resolves.toEqual({ held: 64 });
      expect(fn.billed[2].initMs).toBeGreaterThan(0);
      expect(fn.billed[2].status).toBeUndefined();
    } finally {
      await fn.close();
    }
  });

  test('a runtime killed from outside (SIGKILL) is Runtime.ExitError, not out of memory, and billed with Lambda’s REPORT line', async () => {
    const { fn } = hogFunction(kind);
    try {
      await fn.invoke({});
      fn.intercept = async () => ({ crashAfterMs: 300 });
      await expect(fn.invoke({ sleepMs: 5000 })).rejects.toMatchObject({
        name: 'Runtime.ExitError',
        message: expect.stringMatching(OUT_OF_MEMORY),
      });
      expect(fn.billed[1]).toMatchObject({ status: 'error', error: 'Runtime.ExitError', memoryMb: 256 });
      expect(fn.billed[1].durationMs).toBeGreaterThanOrEqual(250);
      expect(fn.billed[1].durationMs).toBeLessThan(4000);
      expect(lambdaReportLine(fn.billed[1])).toMatch(/\tStatus: error\tError Type: Runtime\.ExitError$/);
    } finally {
      await fn.close();
    }
  });
});

test("V8's heap is sized from the memory size as Lambda's bootstrap sizes it; a runtime that aborts (as V8 does past its heap) is Runtime.ExitError, not out of memory", async () => {
  const { fn } = hogFunction(undefined, 1024);
  const small = hogFunction(undefined).fn;
  try {
    // Old space 90 % of 1,024 MB (921) and young generation (3 semi-spaces of 51 MB): not the ~4 GB this machine's default would be.
    const limitMb = ((await fn.invoke({ heapLimit: true })) as { heapLimitMb: number }).heapLimitMb;
    expect(limitMb).toBeGreaterThanOrEqual(921);
    expect(limitMb).toBeLessThan(1200);
    await expect(small.invoke({ abort: true })).rejects.toMatchObject({
      name: 'Runtime.ExitError',
      message: expect.stringMatching(/^RequestId: \S+ Error: Runtime exited with error: signal: aborted/),
    });
    expect(small.billed[0]).toMatchObject({ status: 'error', error: 'Runtime.ExitError' });
  } finally {
    await fn.close();
    await small.close();
  }
});

// Only where a cgroup can be made: the poll has no folder.
if (CGROUP) {
  test(`each container’s ${CGROUP} is made where this process’s allows, limited to its memory size, and removed when the container closes`, async () => {
    const parent = dirname(probe.folder!);
    const limitFile = probe.cgroupVersion === 2 ? 'memory.max' : 'memory.limit_in_bytes';
    const ours = () => readdirSync(parent).filter((name) => name.startsWith(`cai-lambda-${process.pid}-`));
    const before = ours();
    const { fn } = hogFunction('cgroup');
    await fn.invoke({});
    const made = ours().filter((name) => !before.includes(name));
    expect(made).toHaveLength(1);
    expect(readFileSync(join(parent, made[0], limitFile), 'utf8').trim()).toBe(String(256 * 1024 * 1024));
    await fn.close();
    expect(ours()).toEqual(before);
  });
}

test('an unknown CAI_MEMORY_WATCH stops a function before any container starts, in one line', () => {
  const asked = process.env.CAI_MEMORY_WATCH;
  process.env.CAI_MEMORY_WATCH = 'cgroups';
  try {
    expect(() => hogFunction(undefined)).toThrow(/^CAI_MEMORY_WATCH must be cgroup or poll, not "cgroups"$/);
  } finally {
    if (asked === undefined) delete process.env.CAI_MEMORY_WATCH;
    else process.env.CAI_MEMORY_WATCH = asked;
  }
});
