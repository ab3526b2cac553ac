import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Holds a local Lambda container to its function's MemorySize, as Lambda does: when the runtime's
 * memory passes it, the runtime is killed (SIGKILL) mid-invocation. Two ways, the first preferred:
 *
 * - **cgroup**: the emulator is started inside a memory cgroup (v1) of its own whose limit is the
 *   memory size; the runtime it starts inherits it, and the kernel kills the runtime the moment a
 *   page fault would pass the limit. The cgroup's `oom_kill` counter tells a memory kill from any
 *   other death. Needs a writable cgroup v1 memory hierarchy (root, or a delegated one).
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

/** The memory cgroup (v1) folder this process belongs to, from /proc/self/cgroup and the hierarchy's mount. */
export function ownMemoryCgroup(): string | undefined {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1]?.split(',').includes('memory'));
    if (!line) return undefined;
    const path = line.split(':').slice(2).join(':');
    // mountinfo: id parent major:minor root mount-point options - fstype source super-options
    for (const mount of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [left, right] = mount.split(' - ');
      if (!right) continue;
      const [fstype, , superOptions] = right.split(' ');
      if (fstype !== 'cgroup' || !superOptions?.split(',').includes('memory')) continue;
      const [, , , root, mountPoint] = left.split(' ');
      const inside = root === '/' ? path : path.startsWith(root) ? path.slice(root.length) : undefined;
      if (inside !== undefined) return join(mountPoint, inside);
    }
  } catch {
    // not Linux
  }
  return undefined;
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

const oomKills = (folder: string) => Number(/oom_kill (\d+)/.exec(readFileSync(join(folder, 'memory.oom_control'), 'utf8'))?.[1] ?? 0);

/** A memory cgroup of the container's own under this process's, or undefined where none can be made. */
function cgroupWatch(memoryMb: number): MemoryWatch | undefined {
  const parent = ownMemoryCgroup();
  if (!parent) return undefined;
  // Named by this process, so a later run can tell a leftover from a live one.
  const folder = join(parent, `${CGROUP_PREFIX}${process.pid}-${++made}`);
  try {
    removeStale(parent);
    mkdirSync(folder);
    writeFileSync(join(folder, 'memory.limit_in_bytes'), String(memoryMb * MB));
    if (!existsSync(join(folder, 'memory.oom_control'))) throw new Error('no oom_control');
  } catch {
    try {
      rmdirSync(folder);
    } catch {
      // never made
    }
    return undefined;
  }
  try {
    // No swapping past the limit where swap is accounted: Lambda has no swap.
    writeFileSync(join(folder, 'memory.memsw.limit_in_bytes'), String(memoryMb * MB));
  } catch {
    // swap accounting off: nothing to limit
  }
  let killsBefore = 0;
  return {
    kind: 'cgroup',
    // The shell joins the cgroup and becomes the emulator (exec keeps its pid), so nothing runs outside it.
    spawnArgs: (command, args) => ({
      command: '/bin/sh',
      args: ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', folder, command, ...args],
    }),
    attach: () => {},
    begin() {
      killsBefore = oomKills(folder);
      writeFileSync(join(folder, 'memory.max_usage_in_bytes'), '0');
    },
    end() {
      const peakMb = Number(readFileSync(join(folder, 'memory.max_usage_in_bytes'), 'utf8')) / MB;
      return { killedForMemory: oomKills(folder) > killsBefore, peakMb };
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

/** The cgroup where one can be made, else the poll; `prefer` forces one (tests of each). */
export function memoryWatch(memoryMb: number, prefer?: MemoryWatchKind): MemoryWatch {
  if (prefer === 'poll') return pollWatch(memoryMb);
  const cgroup = cgroupWatch(memoryMb);
  if (cgroup) return cgroup;
  if (prefer === 'cgroup') throw new Error('no memory cgroup can be made here (needs a writable cgroup v1 memory hierarchy)');
  return pollWatch(memoryMb);
}
