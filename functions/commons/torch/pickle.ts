import { ArchiveError, UnsafePickleError } from '../errors';

/**
 * A restricted unpickler. It evaluates the pickle opcodes itself and never runs code the pickle
 * names: every GLOBAL goes through `resolveGlobal`, and a name it does not return is refused before
 * anything else happens. What the allowlisted globals do is written in TypeScript by the caller.
 */
export interface PickleGlobal {
  readonly qualifiedName: string;
  /** REDUCE: `callable(*args)`. */
  call?(args: unknown[]): unknown;
  /** NEWOBJ: `cls.__new__(cls, *args)`. */
  instantiate?(args: unknown[]): unknown;
}

/** An instance made by NEWOBJ; BUILD stores its state (usually the instance `__dict__`). */
export class PyObject {
  state: unknown = undefined;
  constructor(readonly className: string) {}
}

export interface UnpickleOptions {
  resolveGlobal(module: string, name: string): PickleGlobal | undefined;
  persistentLoad?(pid: unknown): unknown;
  /** What the refusal message says the allowlist is for. */
  context?: string;
}

const MARK = Symbol('mark');

/** A name from an untrusted pickle, made safe to print: escaped control bytes, bounded length. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what this escapes.
  const escaped = text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length > 120 ? `${escaped.slice(0, 120)}…` : escaped;
}
// A tensor archive has no use for integers wider than this; the cap keeps BigInt parsing cheap.
const MAX_LONG_BYTES = 256;

const OPCODE_NAMES: Record<number, string> = {
  105: 'INST',
  111: 'OBJ',
  130: 'EXT1',
  131: 'EXT2',
  132: 'EXT4',
  151: 'NEXT_BUFFER',
  152: 'READONLY_BUFFER',
  83: 'STRING',
  86: 'UNICODE',
};

export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder('latin1');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const memo = new Map<number, unknown>();
  const metastack: unknown[][] = [];
  let stack: unknown[] = [];
  let pos = 0;

  const corrupt = (why: string): never => {
    throw new ArchiveError(`corrupt pickle at byte ${pos}: ${why}`);
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > bytes.byteLength) corrupt('truncated');
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) corrupt('length out of range');
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) corrupt('unterminated line');
    const text = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const text = (n: number): string => {
    try {
      return utf8.decode(take(n));
    } catch (error) {
      if (error instanceof ArchiveError) throw error;
      return corrupt('invalid utf-8 string');
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0) corrupt('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) corrupt('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const outer = metastack.pop();
    if (!outer) corrupt('MARK expected');
    stack = outer!;
    return items;
  };
  const push = (v: unknown): void => {
    if (v === MARK) corrupt('misplaced MARK');
    stack.push(v);
  };
  const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : corrupt('APPEND to a non-list'));
  const asDict = (v: unknown): Map<unknown, unknown> => (v instanceof Map ? v : corrupt('SETITEM on a non-dict'));
  const asSet = (v: unknown): Set<unknown> => (v instanceof Set ? v : corrupt('ADDITEMS on a non-set'));
  const asGlobal = (v: unknown): PickleGlobal => {
    if (typeof v !== 'object' || v === null || !('qualifiedName' in v)) corrupt('call of something not callable');
    return v as PickleGlobal;
  };
  const long = (n: number): number | bigint => {
    if (n > MAX_LONG_BYTES) corrupt(`integer of ${n} bytes`);
    const raw = take(n);
    if (n === 0) return 0;
    let value = 0n;
    for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i]);
    if (raw[n - 1] & 0x80) value -= 1n << BigInt(8 * n);
    return Number.isSafeInteger(Number(value)) && BigInt(Number(value)) === value ? Number(value) : value;
  };
  const resolve = (module: string, name: string): PickleGlobal => {
    const found = options.resolveGlobal(module, name);
    if (!found) {
      throw new UnsafePickleError(
        `refused pickle global ${printable(`${module}.${name}`)}: only ${options.context ?? 'allowlisted'} globals are loaded, and nothing was executed`,
      );
    }
    return found;
  };
  const persistent = (pid: unknown): unknown => {
    if (!options.persistentLoad) corrupt('persistent id without a loader');
    return options.persistentLoad!(pid);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        const protocol = u8();
        if (protocol > 5) corrupt(`unsupported pickle protocol ${protocol}`);
        break;
      }
      case 0x95: // FRAME: a length prefix only; the bytes follow inline.
        u64();
        break;
      case 0x2e: // STOP
        if (metastack.length !== 0) corrupt('STOP inside MARK');
        return pop();
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && metastack.length > 0) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(long(u8()));
        break;
      case 0x8b: // LONG4
        push(long(u32()));
        break;
      case 0x49: {
        // INT (text): "00"/"01" are the protocol-0 booleans.
        const t = line();
        if (t === '00' || t === '01') push(t === '01');
        else if (/^-?\d{1,18}$/.test(t)) push(Number(t));
        else corrupt('bad INT');
        break;
      }
      case 0x4c: {
        // LONG (text)
        const t = line().replace(/L$/, '');
        if (!/^-?\d{1,600}$/.test(t)) corrupt('bad LONG');
        const v = BigInt(t);
        push(Number.isSafeInteger(Number(v)) ? Number(v) : v);
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const v = Number(line());
        if (Number.isNaN(v)) corrupt('bad FLOAT');
        push(v);
        break;
      }
      case 0x47: {
        // BINFLOAT, big-endian
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x58: // BINUNICODE
        push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(text(u64()));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str): read as latin-1
        const n = i32();
        if (n < 0) corrupt('negative length');
        push(latin1.decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        push(take(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()));
        break;
      case 0x8e: // BINBYTES8
        push(take(u64()));
        break;
      case 0x96: // BYTEARRAY8
        push(take(u64()));
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x29: // EMPTY_TUPLE
        push([]);
        break;
      case 0x8f: // EMPTY_SET
        push(new Set());
        break;
      case 0x6c: // LIST
      case 0x74: // TUPLE
        push(popMark());
        break;
      case 0x91: // FROZENSET
        push(new Set(popMark()));
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) corrupt('odd number of dict items');
        const d = new Map();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        push(d);
        break;
      }
      case 0x85: // TUPLE1
        push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push([a, b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push([a, b, c]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        asList(top()).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        for (const item of items) asList(top()).push(item);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        asDict(top()).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) corrupt('odd number of dict items');
        const d = asDict(top());
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = asSet(top());
        for (const item of items) s.add(item);
        break;
      }
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const key = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(key)) corrupt(`memo key ${key} not found`);
        push(memo.get(key));
        break;
      }
      case 0x71: // BINPUT
      case 0x72: // LONG_BINPUT
      case 0x70: {
        // PUT
        const key = op === 0x71 ? u8() : op === 0x72 ? u32() : Number(line());
        if (!Number.isSafeInteger(key)) corrupt('bad memo key');
        memo.set(key, top());
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        push(resolve(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof name !== 'string' || typeof module !== 'string') corrupt('STACK_GLOBAL needs two strings');
        push(resolve(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = asGlobal(pop());
        if (!Array.isArray(args)) corrupt('REDUCE arguments are not a tuple');
        if (!callable.call) throw new UnsafePickleError(`refused call of ${callable.qualifiedName}`);
        push(callable.call(args as unknown[]));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = asGlobal(pop());
        if (!Array.isArray(args)) corrupt('NEWOBJ arguments are not a tuple');
        if (!cls.instantiate) throw new UnsafePickleError(`refused instantiation of ${cls.qualifiedName}`);
        push(cls.instantiate(args as unknown[]));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = asGlobal(pop());
        if (!Array.isArray(args) || !(kwargs instanceof Map)) corrupt('bad NEWOBJ_EX arguments');
        if (!cls.instantiate || (kwargs as Map<unknown, unknown>).size > 0) {
          throw new UnsafePickleError(`refused instantiation of ${cls.qualifiedName}`);
        }
        push(cls.instantiate(args as unknown[]));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        if (!(target instanceof PyObject)) corrupt('BUILD on something that is not an object');
        (target as PyObject).state = state;
        break;
      }
      case 0x51: // BINPERSID
        push(persistent(pop()));
        break;
      case 0x50: // PERSID
        push(persistent(line()));
        break;
      default: {
        const name = OPCODE_NAMES[op];
        pos = at;
        corrupt(name ? `unsupported pickle opcode ${name}` : `unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }
}
