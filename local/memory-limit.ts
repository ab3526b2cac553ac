import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmdirSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Holds a local Lambda container to its function's MemorySize, as Lambda does: when the runtime's
 * memory passes it, the runtime is killed (SIGKILL) mid-invocation. Two ways, the first preferred:
 *
 * - **cgroup**: the emulator is started inside a memory cgroup of its own whose limit is the memory
 *   size; the runtime it starts inherits it, and the kernel kills the runtime the moment a page
 *   fault would pass the limit. The cgroup's `oom_kill` counter tells a memory kill from any other
 *   death. Needs a writable cgroup v2 folder whose `cgroup.subtree_control` enables `memory` (this
 *   process's cgroup or its parent: root, or a delegated subtree), else a writable cgroup v1 memory
 *   hierarchy.
 * - **poll**: elsewhere, the resident memory of the emulator's process tree is read every 50 ms
 *   while an invocation runs, and the runtime is killed when the sum passes the memory size. A spike
 *   shorter than the interval, or an allocation faster than the interval allows for, passes unseen
 *   or overshoots before it is caught.
 *
 * Either way the emulator (about 11 MB) is counted with the runtime, as a cgroup counts it.
 */
export type MemoryWatchKind = 'cgroup' | 'poll';

export interface MemoryWatch {
  readonly kind: MemoryWatchKind;
  /** A cgroup's version, and its folder. */
  readonly cgroupVersion?: 1 | 2;
  readonly folder?: string;
  /** The command that starts `command args` inside the limit (the emulator, which starts the runtime). */
  spawnArgs(command: string, args: string[]): { command: string; args: string[] };
  /** The emulator is running as `pid`. */
  attach(pid: number): void;
  /** An invocation starts: watch it from now. */
  begin(): void;
  /** It ended: whether its runtime was killed for memory, and the memory used meanwhile (MB) when known. */
  end(): { killedForMemory: boolean; peakMb?: number };
  /** The emulator has exited: release the cgroup. */
  close(): void;
}

const MB = 1024 * 1024;
/** How often the fallback reads the process tree's memory while an invocation runs. */
export const POLL_INTERVAL_MS = 50;

/** The processes under `pid`, every generation, from each thread's children list. */
export function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      return; // exited, or not Linux
    }
    for (const task of tasks) {
      let children: number[];
      try {
        children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        continue;
      }
      for (const child of children) {
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

/** The kernel's page size, from this process's first mapping (4 KiB on x86_64, up to 64 KiB on arm64). */
function pageBytes(): number {
  try {
    const kb = /KernelPageSize:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps', 'utf8'));
    if (kb) return Number(kb[1]) * 1024;
  } catch {
    // not Linux: nothing is polled anyway
  }
  return 4096;
}

/** Resident bytes of a process, from /proc/<pid>/statm (the cheapest file that has them); 0 once it has exited. */
function residentBytes(pid: number, page: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * page;
  } catch {
    return 0;
  }
}

/** The folders of this process's cgroups: in the unified hierarchy (v2), and in the v1 memory hierarchy. */
export interface OwnCgroups {
  v2?: string;
  v1Memory?: string;
}

/**
 * This process's cgroups, from `<proc>/cgroup` (v2: the `0::<path>` line; v1 memory: the line whose
 * controllers include `memory`) and the hierarchies' mounts in `<proc>/mountinfo`. `proc` is
 * /proc/self unless a test points it at a stand-in.
 */
export function ownCgroups(proc = '/proc/self'): OwnCgroups {
  let lines: string[];
  let mounts: string[];
  try {
    lines = readFileSync(join(proc, 'cgroup'), 'utf8').split('\n');
    mounts = readFileSync(join(proc, 'mountinfo'), 'utf8').split('\n');
  } catch {
    return {}; // not Linux
  }
  // mountinfo: id parent major:minor root mount-point options - fstype source super-options
  const folderIn = (path: string, fits: (fstype: string, superOptions: string[]) => boolean): string | undefined => {
    for (const mount of mounts) {
      const [left, right] = mount.split(' - ');
      if (!right) continue;
      const [fstype, , superOptions = ''] = right.split(' ');
      if (!fits(fstype, superOptions.split(','))) continue;
      const [, , , root, mountPoint] = left.split(' ');
      const inside = root === '/' ? path : path === root || path.startsWith(`${root}/`) ? path.slice(root.length) : undefined;
      if (inside !== undefined) return join(mountPoint, inside);
    }
    return undefined;
  };
  const pathOf = (line: string | undefined) => line?.split(':').slice(2).join(':');
  const v2 = pathOf(lines.find((l) => l.startsWith('0::')));
  const v1 = pathOf(lines.find((l) => l.split(':')[1]?.split(',').includes('memory')));
  return {
    v2: v2 === undefined ? undefined : folderIn(v2, (fstype) => fstype === 'cgroup2'),
    v1Memory: v1 === undefined ? undefined : folderIn(v1, (fstype, options) => fstype === 'cgroup' && options.includes('memory')),
  };
}

let made = 0;
const CGROUP_PREFIX = 'cai-lambda-';

/** Folders a process that is gone left behind (a test run killed before it closed its stack). */
function removeStale(parent: string): void {
  for (const name of readdirSync(parent)) {
    const owner = new RegExp(`^${CGROUP_PREFIX}(\\d+)-`).exec(name);
    if (!owner || existsSync(`/proc/${owner[1]}`)) continue;
    try {
      rmdirSync(join(parent, name));
    } catch {
      // still holds a process: left alone
    }
  }
}

/** A place a container's cgroup can be made in: a folder of one hierarchy. */
export interface CgroupPlace {
  version: 1 | 2;
  parent: string;
}

const listsMemory = (file: string) => {
  try {
    return readFileSync(file, 'utf8').trim().split(/\s+/).includes('memory');
  } catch {
    return false;
  }
};

/**
 * Where a container's memory cgroup may go, in order of preference (not yet tried). v2: a folder
 * whose `cgroup.subtree_control` enables `memory` for its children, this process's own cgroup or
 * else its parent (a v2 cgroup that holds processes cannot enable controllers for children, so
 * outside the root the containers' cgroups sit beside this process's own). v1: under this
 * process's own memory cgroup.
 */
export function cgroupPlaces(own: OwnCgroups = ownCgroups()): CgroupPlace[] {
  const places: CgroupPlace[] = [];
  if (own.v2) {
    const candidates = [own.v2, dirname(own.v2)];
    const parent = candidates.find(
      (folder) => existsSync(join(folder, 'cgroup.procs')) && listsMemory(join(folder, 'cgroup.subtree_control')),
    );
    if (parent) places.push({ version: 2, parent });
  }
  if (own.v1Memory) places.push({ version: 1, parent: own.v1Memory });
  return places;
}

/** What each cgroup version calls the files the watch uses. */
const FILES = {
  1: { limit: 'memory.limit_in_bytes', swapLimit: 'memory.memsw.limit_in_bytes', events: 'memory.oom_control' },
  2: { limit: 'memory.max', swapLimit: 'memory.swap.max', events: 'memory.events' },
} as const;

/** A memory cgroup of the container's own in `place`, or undefined where none can be made there. */
function cgroupWatch(memoryMb: number, place: CgroupPlace): MemoryWatch | undefined {
  const files = FILES[place.version];
  // Named by this process, so a later run can tell a leftover from a live one.
  const folder = join(place.parent, `${CGROUP_PREFIX}${process.pid}-${++made}`);
  try {
    removeStale(place.parent);
    mkdirSync(folder);
    // Only a memory cgroup has the file: the write fails in any other (read-only, or no controller).
    writeFileSync(join(folder, files.limit), String(memoryMb * MB));
  } catch {
    try {
      rmdirSync(folder);
    } catch {
      // never made
    }
    return undefined;
  }
  try {
    // No swapping past the limit where swap is accounted: Lambda has no swap. (v1 counts memory and
    // swap together; v2 limits swap on its own.)
    writeFileSync(join(folder, files.swapLimit), String(place.version === 1 ? memoryMb * MB : 0));
  } catch {
    // swap accounting off: nothing to limit
  }
  // v1's memory.oom_control and v2's memory.events both count the processes the OOM killer ended.
  const oomKills = () => Number(/^oom_kill (\d+)$/m.exec(readFileSync(join(folder, files.events), 'utf8'))?.[1] ?? 0);
  let killsBefore = 0;
  let peak: number | undefined;
  return {
    kind: 'cgroup',
    cgroupVersion: place.version,
    folder,
    // The shell joins the cgroup and becomes the emulator (exec keeps its pid), so nothing runs outside it.
    spawnArgs: (command, args) => ({
      command: '/bin/sh',
      args: ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', folder, command, ...args],
    }),
    attach: () => {},
    begin() {
      killsBefore = oomKills();
      peak = resetPeak(folder, place.version);
    },
    end() {
      const peakMb = readPeak(folder, place.version, peak);
      peak = undefined;
      return { killedForMemory: oomKills() > killsBefore, peakMb };
    },
    close() {
      try {
        rmdirSync(folder);
      } catch {
        // a process is still in it (the emulator did not exit): left for removeStale
      }
    },
  };
}

/**
 * Starts an invocation's peak: v1 resets memory.max_usage_in_bytes; v2's memory.peak is reset for
 * one open file (kernel 6.12 on), whose descriptor is returned; an older memory.peak cannot be
 * reset and counts from the cgroup's start, so none is kept and the peak is not known.
 */
function resetPeak(folder: string, version: 1 | 2): number | undefined {
  if (version === 1) {
    writeFileSync(join(folder, 'memory.max_usage_in_bytes'), '0');
    return undefined;
  }
  let fd: number | undefined;
  try {
    fd = openSync(join(folder, 'memory.peak'), 'r+');
    writeSync(fd, 'reset\n');
    return fd;
  } catch {
    if (fd !== undefined) closeSync(fd);
    return undefined;
  }
}

function readPeak(folder: string, version: 1 | 2, fd: number | undefined): number | undefined {
  if (version === 1) return Number(readFileSync(join(folder, 'memory.max_usage_in_bytes'), 'utf8')) / MB;
  if (fd === undefined) return undefined;
  try {
    const buffer = Buffer.alloc(32);
    const bytes = readSync(fd, buffer, 0, buffer.length, 0);
    return Number(buffer.subarray(0, bytes).toString().trim()) / MB;
  } finally {
    closeSync(fd);
  }
}

/** The fallback: the process tree's resident memory every 50 ms during an invocation, the runtime killed over the limit. */
function pollWatch(memoryMb: number): MemoryWatch {
  const page = pageBytes();
  const limit = memoryMb * MB;
  let root: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let killed = false;
  let peak = 0;
  const check = () => {
    if (root === undefined) return;
    const tree = [root, ...descendantsOf(root)];
    const used = tree.reduce((sum, pid) => sum + residentBytes(pid, page), 0);
    peak = Math.max(peak, used);
    if (used <= limit || killed) return;
    killed = true;
    // The runtime and anything it started; the emulator stays, to report the death and restart it.
    for (const pid of tree.slice(1)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  return {
    kind: 'poll',
    spawnArgs: (command, args) => ({ command, args }),
    attach(pid) {
      root = pid;
    },
    begin() {
      killed = false;
      peak = 0;
      check();
      timer = setInterval(check, POLL_INTERVAL_MS);
    },
    end() {
      clearInterval(timer);
      return { killedForMemory: killed, peakMb: peak / MB };
    },
    close() {
      clearInterval(timer);
    },
  };
}

/** `CAI_MEMORY_WATCH`: `cgroup` or `poll` forces one (on any machine, poll); unset, the best this machine has. */
export function memoryWatchPreference(env: NodeJS.ProcessEnv = process.env): MemoryWatchKind | undefined {
  const asked = env.CAI_MEMORY_WATCH;
  if (!asked) return undefined;
  if (asked === 'cgroup' || asked === 'poll') return asked;
  throw new Error(`CAI_MEMORY_WATCH must be cgroup or poll, not ${JSON.stringify(asked)}`);
}

export interface MemoryWatchOptions {
  /** Forces one (tests of each); else CAI_MEMORY_WATCH; else a cgroup where one can be made, then the poll. */
  prefer?: MemoryWatchKind;
  /** Where the cgroups may go (tests point them at a stand-in tree); this process's own by default. */
  places?: CgroupPlace[];
}

/** A cgroup (v2, then v1) where one can be made, else the poll. */
export function memoryWatch(memoryMb: number, options: MemoryWatchOptions = {}): MemoryWatch {
  const prefer = options.prefer ?? memoryWatchPreference();
  if (prefer === 'poll') return pollWatch(memoryMb);
  for (const place of options.places ?? cgroupPlaces()) {
    const cgroup = cgroupWatch(memoryMb, place);
    if (cgroup) return cgroup;
  }
  if (prefer === 'cgroup') {
    throw new Error(
      'no memory cgroup can be made here: it needs a writable cgroup v2 folder whose cgroup.subtree_control enables memory, or a writable cgroup v1 memory hierarchy',
    );
  }
  return pollWatch(memoryMb);
}
