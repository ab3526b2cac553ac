import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { cgroupPlaces, memoryWatch, memoryWatchPreference, ownCgroups, type MemoryWatch } from '../../local/memory-limit';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

/**
 * How the local stack picks what holds a container to its memory size, against stand-in cgroup
 * trees: folders holding the files the kernel presents (cgroup.controllers, cgroup.subtree_control,
 * memory.max, memory.events, …), found through a stand-in /proc/self (cgroup, mountinfo). A machine
 * runs one of these for real (tests/integration/memory-limit.test.ts); this one has v1 memory and a
 * v2 hierarchy without the memory controller, so the v2 path is checked here.
 */
const MB = 1024 * 1024;

// These pick by the trees alone, whatever CAI_MEMORY_WATCH the run was started with (the last test sets it).
const asked = process.env.CAI_MEMORY_WATCH;
beforeAll(() => delete process.env.CAI_MEMORY_WATCH);
afterAll(() => {
  if (asked !== undefined) process.env.CAI_MEMORY_WATCH = asked;
});

interface Machine {
  proc: string;
  /** This process's v2 cgroup and its parent; v1 memory cgroup. */
  v2Own: string;
  v2Parent: string;
  v1Own: string;
}

/**
 * A machine with both hierarchies, as a hybrid host mounts them: this process in
 * /user.slice/session-1.scope (v2) and /process_api/abc (v1 memory). `v2Memory`: whether
 * user.slice enables the memory controller for its children.
 */
function machine(v2Memory: boolean): Machine {
  const root = tempFolder('cai-cgroupfs-');
  const file = (path: string, text: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text);
  };
  const unified = join(root, 'sys', 'fs', 'cgroup', 'unified');
  const memory = join(root, 'sys', 'fs', 'cgroup', 'memory');
  const proc = join(root, 'proc', 'self');
  file(join(proc, 'cgroup'), `9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/user.slice/session-1.scope\n`);
  file(
    join(proc, 'mountinfo'),
    [
      `31 23 0:28 / ${join(root, 'sys', 'fs', 'cgroup')} rw,relatime - tmpfs tmpfs rw,mode=755`,
      `32 31 0:29 / ${join(root, 'sys', 'fs', 'cgroup', 'cpu')} rw,relatime - cgroup cgroup rw,cpu`,
      `35 31 0:32 / ${memory} rw,relatime - cgroup cgroup rw,memory`,
      `41 31 0:38 / ${unified} rw,relatime - cgroup2 cgroup2 rw`,
      '',
    ].join('\n'),
  );
  const controllers = v2Memory ? 'cpu io memory pids' : 'hugetlb';
  file(join(unified, 'cgroup.controllers'), `${controllers}\n`);
  file(join(unified, 'cgroup.subtree_control'), v2Memory ? 'memory pids\n' : '\n');
  file(join(unified, 'cgroup.procs'), '1\n');
  const v2Parent = join(unified, 'user.slice');
  file(join(v2Parent, 'cgroup.controllers'), v2Memory ? 'memory pids\n' : '\n');
  file(join(v2Parent, 'cgroup.subtree_control'), v2Memory ? 'memory pids\n' : '\n');
  file(join(v2Parent, 'cgroup.procs'), '');
  const v2Own = join(v2Parent, 'session-1.scope');
  file(join(v2Own, 'cgroup.controllers'), v2Memory ? 'memory pids\n' : '\n');
  file(join(v2Own, 'cgroup.subtree_control'), '\n');
  file(join(v2Own, 'cgroup.procs'), `${process.pid}\n`);
  const v1Own = join(memory, 'process_api', 'abc');
  file(join(v1Own, 'cgroup.procs'), `${process.pid}\n`);
  file(join(v1Own, 'memory.limit_in_bytes'), '9223372036854771712\n');
  return { proc, v2Own, v2Parent, v1Own };
}

/** The cgroups a watch made under `parent` (named by this process). */
const made = (parent: string) => readdirSync(parent).filter((name) => name.startsWith(`cai-lambda-${process.pid}-`));

/** The emulator's start, with `true` in its place: the shell joins the cgroup, then becomes the command. */
function joinsItsCgroup(watch: MemoryWatch): string {
  const { command, args } = watch.spawnArgs('true', []);
  const run = spawnSync(command, args, { encoding: 'utf8' });
  expect(run.status).toBe(0);
  return readFileSync(join(watch.folder!, 'cgroup.procs'), 'utf8').trim();
}

/** On cgroupfs a cgroup's files go with its folder; in a plain folder they would stop rmdir, so they go first, as the kernel's would. */
function kernelFilesGone(folder: string): void {
  for (const name of readdirSync(folder)) rmSync(join(folder, name));
}

test("this process's cgroups are read from /proc/self/cgroup's lines and the hierarchies' mounts", () => {
  const m = machine(true);
  expect(ownCgroups(m.proc)).toEqual({ v2: m.v2Own, v1Memory: m.v1Own });
});

test('cgroup v2 with the memory controller delegated: its own cgroup beside this process’s, memory.max in bytes, memory.events’ oom_kill read, memory.peak reset per invocation, removed on close', () => {
  const m = machine(true);
  const places = cgroupPlaces(ownCgroups(m.proc));
  // A v2 cgroup that holds processes (this process's own) cannot enable controllers for children: its parent can.
  expect(places).toEqual([
    { version: 2, parent: m.v2Parent },
    { version: 1, parent: m.v1Own },
  ]);
  const watch = memoryWatch(256, { places });
  expect({ kind: watch.kind, version: watch.cgroupVersion }).toEqual({ kind: 'cgroup', version: 2 });
  expect(made(m.v2Parent)).toEqual([watch.folder!.split('/').pop()]);
  expect(made(m.v1Own)).toEqual([]);
  const folder = watch.folder!;
  expect(readFileSync(join(folder, 'memory.max'), 'utf8')).toBe(String(256 * MB));
  expect(readFileSync(join(folder, 'memory.swap.max'), 'utf8')).toBe('0'); // Lambda has no swap
  expect(joinsItsCgroup(watch)).toMatch(/^\d+$/);

  // What the kernel shows: memory.events with its oom_kill counter, memory.peak.
  const events = (kills: number) => `low 0\nhigh 0\nmax ${kills * 7}\noom ${kills}\noom_kill ${kills}\noom_group_kill 0\n`;
  writeFileSync(join(folder, 'memory.events'), events(2)); // kills before this invocation do not count
  writeFileSync(join(folder, 'memory.peak'), `${300 * MB}\n`);
  watch.begin();
  writeFileSync(join(folder, 'memory.events'), events(3));
  writeFileSync(join(folder, 'memory.peak'), `${256 * MB}\n`);
  expect(watch.end()).toEqual({ killedForMemory: true, peakMb: 256 });
  // The next invocation: no kill since it began.
  watch.begin();
  writeFileSync(join(folder, 'memory.peak'), `${100 * MB}\n`);
  expect(watch.end()).toEqual({ killedForMemory: false, peakMb: 100 });

  kernelFilesGone(folder);
  watch.close();
  expect(existsSync(folder)).toBe(false);
  expect(made(m.v2Parent)).toEqual([]);
});

test('cgroup v2 where this process is in the root cgroup: the containers’ cgroups go under it', () => {
  const m = machine(true);
  const root = join(m.v2Parent, '..');
  const places = cgroupPlaces({ v2: root });
  expect(places).toEqual([{ version: 2, parent: root }]);
});

test('a hybrid machine whose v2 hierarchy lacks the memory controller (this one): v1, its limit in bytes, memory.oom_control’s oom_kill read, removed on close', () => {
  const m = machine(false);
  const places = cgroupPlaces(ownCgroups(m.proc));
  expect(places).toEqual([{ version: 1, parent: m.v1Own }]);
  const watch = memoryWatch(256, { places });
  expect({ kind: watch.kind, version: watch.cgroupVersion }).toEqual({ kind: 'cgroup', version: 1 });
  const folder = watch.folder!;
  expect(folder.startsWith(`${m.v1Own}/cai-lambda-${process.pid}-`)).toBe(true);
  expect(readFileSync(join(folder, 'memory.limit_in_bytes'), 'utf8')).toBe(String(256 * MB));
  expect(readFileSync(join(folder, 'memory.memsw.limit_in_bytes'), 'utf8')).toBe(String(256 * MB));
  expect(joinsItsCgroup(watch)).toMatch(/^\d+$/);

  const oomControl = (kills: number) => `oom_kill_disable 0\nunder_oom 0\noom_kill ${kills}\n`;
  writeFileSync(join(folder, 'memory.oom_control'), oomControl(0));
  watch.begin();
  expect(readFileSync(join(folder, 'memory.max_usage_in_bytes'), 'utf8')).toBe('0'); // the peak starts over
  writeFileSync(join(folder, 'memory.oom_control'), oomControl(1));
  writeFileSync(join(folder, 'memory.max_usage_in_bytes'), String(256 * MB));
  expect(watch.end()).toEqual({ killedForMemory: true, peakMb: 256 });

  kernelFilesGone(folder);
  watch.close();
  expect(existsSync(folder)).toBe(false);
});

test('neither hierarchy writable (a read-only cgroup mount, as in a container): the 50 ms poll; a cgroup asked for is refused in one line', () => {
  const m = machine(true);
  const root = join(m.proc, '..', '..');
  // Read-only for whoever probes it: root writes past any mode, so the probe runs as nobody then.
  const lock = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) lock(path);
      else chmodSync(path, 0o444);
    }
    chmodSync(folder, 0o555);
  };
  lock(join(root, 'sys'));
  chmodSync(root, 0o755);
  const bundle = join(root, 'memory-limit.cjs');
  buildSync({ entryPoints: [join(ROOT, 'local', 'memory-limit.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: bundle });
  const probe = `
    const { cgroupPlaces, memoryWatch, ownCgroups } = require(${JSON.stringify(bundle)});
    const places = cgroupPlaces(ownCgroups(${JSON.stringify(m.proc)}));
    const chosen = memoryWatch(256, { places });
    let refused;
    try { memoryWatch(256, { places, prefer: 'cgroup' }); } catch (error) { refused = error.message; }
    console.log(JSON.stringify({ places: places.length, kind: chosen.kind, refused }));
  `;
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const run = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', ...asNobody, env: { PATH: process.env.PATH } });
  expect(run.stderr).toBe('');
  expect(JSON.parse(run.stdout)).toEqual({
    places: 2,
    kind: 'poll',
    refused:
      'no memory cgroup can be made here: it needs a writable cgroup v2 folder whose cgroup.subtree_control enables memory, or a writable cgroup v1 memory hierarchy',
  });
  expect(made(m.v2Parent)).toEqual([]);
  expect(made(m.v1Own)).toEqual([]);
  // So that the test's own clean-up can remove the tree.
  chmodSync(root, 0o700);
  spawnSync('chmod', ['-R', 'u+w', join(root, 'sys')]);
});

test('CAI_MEMORY_WATCH forces one: poll over a writable cgroup; an unknown value is refused in one line', () => {
  const m = machine(true);
  const places = cgroupPlaces(ownCgroups(m.proc));
  try {
    process.env.CAI_MEMORY_WATCH = 'poll';
    expect(memoryWatch(256, { places }).kind).toBe('poll');
    expect(made(m.v2Parent)).toEqual([]);
    // The control: unset, the same places give a cgroup.
    delete process.env.CAI_MEMORY_WATCH;
    const watch = memoryWatch(256, { places });
    expect(watch.kind).toBe('cgroup');
    kernelFilesGone(watch.folder!);
    watch.close();
  } finally {
    delete process.env.CAI_MEMORY_WATCH;
  }
  expect(memoryWatchPreference({ CAI_MEMORY_WATCH: 'cgroup' })).toBe('cgroup');
  expect(memoryWatchPreference({})).toBeUndefined();
  expect(() => memoryWatchPreference({ CAI_MEMORY_WATCH: 'cgroups' })).toThrow(/^CAI_MEMORY_WATCH must be cgroup or poll, not "cgroups"$/);
});
