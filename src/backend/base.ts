// The part every backend shares: tensor handles (with views and frees) and the argument
// checks. A concrete backend supplies storage (allocStorage & co.) and the raw kernels
// over its own resolved buffers (`Kernels<Buf, Ids>`); it never sees an unchecked argument.
//
// Checks are done here once for all three backends, so every backend rejects the same
// inputs with the same message. They are not written per kernel: each kernel method is
// installed from the registry (kernels.ts), whose argument roles are compiled once, at
// load, into a plan that one generic checker (runKernel) follows on every call. The
// native addon checks lengths again on its side, so that calling it directly cannot crash
// the process either.

import { DTYPE_ARRAYS, NO_DROPOUT, type Backend, type BackendInfo, type BackendName, type DType, type DropoutSpec, type Tensor, type TypedData } from './backend.js';
import { KERNELS, KERNEL_NAMES, type ArgDef, type KernelDef, type KernelName, type Kernels } from './kernels.js';

interface StorageRecord<S> {
  storage: S;
  dtype: DType;
  length: number;
  /** The ids of the live views of this storage: freeing it drops their records too, or they
   * would keep the storage reachable (a garbage-collected backend would never release it). */
  views: Set<number>;
  /** Bumped by every write, zero and kernel output to this storage: invalidates token marks. */
  epoch: number;
}

interface TensorRecord<S, B> {
  tensor: Tensor;
  owner: StorageRecord<S>;
  offset: number;
  isView: boolean;
  buf: B | undefined; // resolved lazily, then reused for every kernel call
  // The token mark (writeTokens): while tokEpoch === owner.epoch, every element of this
  // tensor is an id in 0..tokV-1, or tokAllowed.
  tokEpoch: number;
  tokV: number;
  tokAllowed: number | undefined;
}

const MAX_U32 = 0xffffffff;

// ---- the plans: each registry entry compiled, once, into what runKernel checks ----

type Formula = (args: readonly unknown[]) => number;

interface TensorCheck {
  idx: number;
  name: string;
  dtype: DType;
  output: boolean;
  nullable: boolean;
  /** Exact length, or null for a table (checked as rows of `of`). */
  length: Formula | null;
  of: number;
  ofName: string;
  minRows: Formula | null;
  /** Ids: the V of 0..V-1, and the argument index of the allowed value (-1: none). */
  range: Formula | null;
  allowed: number;
}

interface ScalarCheck {
  idx: number;
  name: string;
  kind: 'finite' | 'unit' | 'int32' | 'step' | 'flag' | 'dropout';
  optional: boolean;
}

interface Plan {
  name: KernelName;
  arity: number;
  argNames: readonly string[];
  dims: ReadonlyArray<{ idx: number; name: string }>;
  constraints: ReadonlyArray<(fn: string, args: readonly unknown[]) => void>;
  scalars: readonly ScalarCheck[];
  /** In check order: tables, outputs, inputs (each in call order). */
  tensors: readonly TensorCheck[];
  /** Argument indices of the outputs and of the inputs, in check order (for overlaps). */
  outputs: readonly number[];
  inputs: readonly number[];
  returnsNumber: boolean;
}

function compilePlan(name: KernelName, def: KernelDef): Plan {
  const args: readonly ArgDef[] = def.args;
  const bad = (what: string): never => {
    throw new Error(`ferrogpt: kernel registry: ${name}: ${what}`);
  };
  const index = new Map<string, number>();
  args.forEach((a, i) => (index.has(a.name) ? bad(`argument ${a.name} appears twice`) : index.set(a.name, i)));
  const dimIndex = (s: string): number => {
    const i = index.get(s);
    if (i === undefined || args[i].role !== 'dim') bad(`${s} is not a dim`);
    return i!;
  };
  // Symbols a formula may use: dims, and the row counts of tables checked before it.
  const symbols = new Map<string, Formula>();
  for (const [i, a] of args.entries()) if (a.role === 'dim') symbols.set(a.name, (v) => v[i] as number);
  const formula = (text: string): Formula => {
    // A product, optionally divided by an integer: 'OC*C/32' (a constraint makes it exact).
    const [productText, divisorText, ...more] = text.split('/').map((f) => f.trim());
    if (more.length > 0 || (divisorText !== undefined && !/^\d+$/.test(divisorText))) bad(`'${text}': at most one division, by an integer`);
    const product = productFormula(text, productText);
    if (divisorText === undefined) return product;
    const divisor = Number(divisorText);
    return (v) => product(v) / divisor;
  };
  const productFormula = (text: string, productText: string): Formula => {
    const factors = productText.split('*').map((f) => f.trim());
    const getters = factors.map((f): Formula => {
      if (/^\d+$/.test(f)) {
        const c = Number(f);
        return () => c;
      }
      return symbols.get(f) ?? bad(`'${text}': ${f} is not a dim (or the row count of a table checked earlier)`);
    });
    // Multiplied left to right, as written (the same rounding as the expression in code).
    if (getters.length === 1) return getters[0];
    if (getters.length === 2) {
      const [g0, g1] = getters;
      return (v) => g0(v) * g1(v);
    }
    if (getters.length === 3) {
      const [g0, g1, g2] = getters;
      return (v) => g0(v) * g1(v) * g2(v);
    }
    return (v) => {
      let p = getters[0](v);
      for (let k = 1; k < getters.length; k++) p *= getters[k](v);
      return p;
    };
  };

  const dims: Array<{ idx: number; name: string }> = [];
  const scalars: ScalarCheck[] = [];
  for (const [i, a] of args.entries()) {
    if (a.role === 'dim') dims.push({ idx: i, name: a.name });
    else if (a.role === 'scalar') scalars.push({ idx: i, name: a.name, kind: a.kind ?? bad(`scalar ${a.name} has no kind`), optional: false });
    else if (a.role === 'flag') scalars.push({ idx: i, name: a.name, kind: 'flag', optional: true });
    else if (a.role === 'dropout') scalars.push({ idx: i, name: a.name, kind: 'dropout', optional: a.optional === true });
  }
  // Optional arguments are trailing (the TypeScript signature needs them last).
  const firstOptional = args.findIndex((a) => a.optional === true);
  if (firstOptional >= 0 && args.slice(firstOptional).some((a) => a.optional !== true)) bad('optional arguments must come last');

  // Each kind of constraint: its pattern, when it fails, and the message.
  const relations = [
    { re: /^(\w+)\s*%\s*(\w+)\s*==\s*0$/, fails: (a: number, b: number) => a % b !== 0, says: 'must be divisible by' },
    { re: /^(\w+)\s*<=\s*(\w+)$/, fails: (a: number, b: number) => a > b, says: 'exceeds' },
  ];
  const constraints = (def.constraints ?? []).map((text) => {
    for (const { re, fails, says } of relations) {
      const m = re.exec(text);
      if (!m) continue;
      const [, an, bn] = m;
      const ai = dimIndex(an);
      // The right-hand side: a dim, or an integer ('C % 32 == 0', the int8 block).
      const constant = /^\d+$/.test(bn) ? Number(bn) : null;
      const bi = constant === null ? dimIndex(bn) : -1;
      const label = constant === null ? (b: number) => `${bn} (${b})` : () => bn;
      return (fn: string, v: readonly unknown[]) => {
        const a = v[ai] as number;
        const b = constant ?? (v[bi] as number);
        if (fails(a, b)) throw new Error(`${fn}: ${an} (${a}) ${says} ${label(b)}`);
      };
    }
    return bad(`constraint '${text}' is neither 'A % B == 0' nor 'A <= B'`);
  });

  const tensorCheck = (i: number): TensorCheck => {
    const a = args[i];
    const check: TensorCheck = {
      idx: i,
      name: a.name,
      dtype: a.role === 'ids' ? 'i32' : (a.dtype ?? 'f32'),
      output: a.role === 'out' || (a.role === 'table' && a.output === true),
      nullable: a.nullable === true,
      length: null,
      of: -1,
      ofName: '',
      minRows: null,
      range: null,
      allowed: -1,
    };
    if (a.role === 'table') {
      check.of = dimIndex(a.of ?? bad(`table ${a.name} has no 'of'`));
      check.ofName = a.of!;
      check.minRows = a.atLeast === undefined ? null : formula(a.atLeast);
      if (a.count !== undefined) {
        if (symbols.has(a.count)) bad(`${a.count} is already defined`);
        const C = check.of;
        // Read when the table has been checked (its argument is then its record).
        symbols.set(a.count, (v) => (v[i] as { tensor: Tensor }).tensor.length / (v[C] as number));
      }
    } else {
      check.length = formula(a.length ?? bad(`${a.name} has no length`));
    }
    if (a.role === 'ids') {
      const m = /^(<=?)\s*(.+)$/.exec(a.range ?? bad(`ids ${a.name} has no range`)) ?? bad(`range '${a.range}' is neither '< X' nor '<= X'`);
      const bound = formula(m[2]);
      check.range = m[1] === '<' ? bound : (v) => bound(v) + 1;
      if (a.allowed !== undefined) {
        check.allowed = index.get(a.allowed) ?? bad(`allowed ${a.allowed} is not an argument`);
        if (args[check.allowed].kind !== 'int32') bad(`allowed ${a.allowed} must be an int32 scalar`);
      }
    }
    return check;
  };
  const order = (pred: (a: ArgDef) => boolean) => args.flatMap((a, i) => (pred(a) ? [i] : []));
  const tableIdx = order((a) => a.role === 'table');
  const outIdx = order((a) => a.role === 'out');
  const inIdx = order((a) => a.role === 'inp' || a.role === 'ids');
  const tensors = [...tableIdx, ...outIdx, ...inIdx].map(tensorCheck);
  const isOut = (i: number) => args[i].role === 'out' || (args[i].role === 'table' && args[i].output === true);
  const checked = tensors.map((c) => c.idx);
  return {
    name,
    arity: args.length,
    argNames: args.map((a) => a.name),
    dims,
    constraints,
    scalars,
    tensors,
    outputs: checked.filter(isOut),
    inputs: checked.filter((i) => !isOut(i)),
    returnsNumber: def.returns === 'number',
  };
}

const PLANS: readonly Plan[] = KERNEL_NAMES.map((name) => compilePlan(name, KERNELS[name]));

/** Kernel methods are installed on the prototype from the registry (see the static block). */
export interface BaseBackend<S, Buf, Ids = Buf, Bf16 = Ids, I8 = Ids> extends Kernels<Tensor> {}

export abstract class BaseBackend<S, Buf, Ids = Buf, Bf16 = Ids, I8 = Ids> implements Backend {
  abstract readonly name: BackendName;
  abstract info(): BackendInfo;

  /** Zero-filled storage of `length` elements. */
  protected abstract allocStorage(length: number, dtype: DType): S;
  protected abstract freeStorage(storage: S): void;
  /** The kernels' name for elements [offset, offset + length) of storage. */
  protected abstract resolve(storage: S, dtype: DType, offset: number, length: number): Buf | Ids | Bf16 | I8;
  protected abstract writeStorage(storage: S, dtype: DType, offset: number, data: TypedData): void;
  protected abstract readStorage(storage: S, dtype: DType, offset: number, length: number): TypedData;
  protected abstract zeroStorage(storage: S, dtype: DType, offset: number, length: number): void;
  /** A zero-copy, short-lived view of i32 storage, used to check token ids before a kernel runs. */
  protected abstract intView(storage: S, offset: number, length: number): Int32Array;
  /** This backend's implementation of every kernel of the registry, by name. */
  protected abstract readonly kernels: Kernels<Buf, Ids, Bf16, I8>;

  private readonly tensors = new Map<number, TensorRecord<S, Buf | Ids | Bf16 | I8>>();
  /** Views whose storage was freed under them, so that using one says so. */
  private readonly orphanedViews = new WeakSet<Tensor>();
  private nextId = 1;

  // ---- storage ----

  alloc(length: number, dtype: DType = 'f32'): Tensor {
    checkCount(null, 'length', length, 0);
    if (!Object.hasOwn(DTYPE_ARRAYS, dtype)) throw new Error(`alloc: dtype must be one of ${Object.keys(DTYPE_ARRAYS).map((d) => `'${d}'`).join(', ')}, got ${String(dtype)}`);
    const owner: StorageRecord<S> = { storage: this.allocStorage(length, dtype), dtype, length, views: new Set(), epoch: 0 };
    return this.register(owner, 0, length, false);
  }

  view(base: Tensor, offset: number, length: number): Tensor {
    const rec = this.record('view', 'base', base);
    checkCount('view', 'offset', offset, 0);
    checkCount('view', 'length', length, 0);
    if (offset + length > base.length) {
      throw new Error(`view: offset ${offset} + length ${length} exceeds base length ${base.length}`);
    }
    return this.register(rec.owner, rec.offset + offset, length, true);
  }

  free(t: Tensor): void {
    const rec = this.record('free', 't', t);
    this.tensors.delete(t.id);
    if (rec.isView) {
      rec.owner.views.delete(t.id);
      return;
    }
    for (const id of rec.owner.views) {
      this.orphanedViews.add(this.tensors.get(id)!.tensor);
      this.tensors.delete(id);
    }
    rec.owner.views.clear();
    this.freeStorage(rec.owner.storage);
  }

  write(t: Tensor, data: TypedData, offset = 0): void {
    const rec = this.record('write', 't', t);
    const want = DTYPE_ARRAYS[t.dtype];
    if (!(data instanceof want)) {
      throw new Error(`write: data must be a ${want.name} for a ${t.dtype} tensor, got ${describe(data)}`);
    }
    checkCount('write', 'offset', offset, 0);
    if (offset + data.length > t.length) {
      throw new Error(`write: data length ${data.length} at offset ${offset} exceeds tensor length ${t.length}`);
    }
    rec.owner.epoch++;
    this.writeStorage(rec.owner.storage, t.dtype, rec.offset + offset, data);
  }

  writeTokens(t: Tensor, data: Int32Array, V: number, caller: string, name = 'ids', allowed?: number, offset = 0): void {
    const rec = this.record('writeTokens', 't', t);
    if (t.dtype !== 'i32') throw new Error(`writeTokens: t must be a i32 tensor, got ${t.dtype}`);
    if (!(data instanceof Int32Array)) throw new Error(`writeTokens: data must be a Int32Array, got ${describe(data)}`);
    checkCount('writeTokens', 'V', V, 1);
    if (allowed !== undefined) checkInt32('writeTokens', 'allowed', allowed);
    checkCount('writeTokens', 'offset', offset, 0);
    if (offset + data.length > t.length) {
      throw new Error(`writeTokens: data length ${data.length} at offset ${offset} exceeds tensor length ${t.length}`);
    }
    checkTokens(caller, name, data, V, allowed);
    const owner = rec.owner;
    // A partial write keeps the mark only if the rest of the tensor was marked (by this
    // record, with nothing written to the storage since): the union of the two ranges.
    let markV = V;
    let markAllowed = allowed;
    let mark = offset === 0 && data.length === t.length;
    if (!mark && rec.tokEpoch === owner.epoch) {
      mark = rec.tokAllowed === undefined || allowed === undefined || rec.tokAllowed === allowed;
      markV = Math.max(V, rec.tokV);
      markAllowed = rec.tokAllowed ?? allowed;
    }
    owner.epoch++;
    this.writeStorage(owner.storage, 'i32', rec.offset + offset, data);
    if (mark) {
      rec.tokEpoch = owner.epoch;
      rec.tokV = markV;
      rec.tokAllowed = markAllowed;
    }
  }

  read(t: Tensor, offset = 0, length?: number): TypedData {
    const rec = this.record('read', 't', t);
    checkCount('read', 'offset', offset, 0);
    const len = length ?? t.length - offset;
    checkCount('read', 'length', len, 0);
    if (offset + len > t.length) throw new Error(`read: offset ${offset} + length ${len} exceeds tensor length ${t.length}`);
    return this.readStorage(rec.owner.storage, t.dtype, rec.offset + offset, len);
  }

  zero(t: Tensor): void {
    const rec = this.record('zero', 't', t);
    rec.owner.epoch++;
    this.zeroStorage(rec.owner.storage, t.dtype, rec.offset, t.length);
  }

  version(t: Tensor): number {
    return this.record('version', 't', t).owner.epoch;
  }

  // ---- kernels: one method per registry entry, each checking, then calling the raw kernel ----

  static {
    for (const plan of PLANS) {
      const method = function (this: BaseBackend<unknown, unknown>, ...args: unknown[]): unknown {
        return this.runKernel(plan, args);
      };
      Object.defineProperty(method, 'name', { value: plan.name });
      Object.defineProperty(BaseBackend.prototype, plan.name, { value: method, writable: true, configurable: true });
    }
  }

  /**
   * Checks one call against its plan, then runs this backend's kernel. `args` is the call's
   * own rest array: checked tensors are replaced in it by their records, then by their
   * resolved buffers, and defaults are filled in, so that it is passed on as it is.
   */
  private runKernel(plan: Plan, args: unknown[]): unknown {
    const fn = plan.name;
    if (args.length > plan.arity) args.length = plan.arity;
    const dims = plan.dims;
    for (let i = 0; i < dims.length; i++) checkCount(fn, dims[i].name, args[dims[i].idx] as number, 1);
    const constraints = plan.constraints;
    for (let i = 0; i < constraints.length; i++) constraints[i](fn, args);
    const scalars = plan.scalars;
    for (let i = 0; i < scalars.length; i++) checkScalar(fn, scalars[i], args);

    const tensors = plan.tensors;
    for (let i = 0; i < tensors.length; i++) {
      const c = tensors[i];
      const t = args[c.idx] as Tensor;
      if (c.nullable && t === null) continue;
      const rec = this.record(fn, c.name, t);
      if (t.dtype !== c.dtype) throw new Error(`${fn}: ${c.name} must be a ${c.dtype} tensor, got ${t.dtype}`);
      if (c.length !== null) {
        const length = c.length(args);
        if (t.length !== length) throw new Error(`${fn}: ${c.name} has length ${t.length}, expected ${length}`);
      } else {
        // A table of rows of `of`, at least minRows of them.
        const C = args[c.of] as number;
        const minRows = c.minRows === null ? 1 : c.minRows(args);
        if (t.length % C !== 0 || t.length / C < minRows) {
          throw new Error(`${fn}: ${c.name} must hold at least ${minRows} rows of ${c.ofName} = ${C} (length a multiple of ${C}), got length ${t.length}`);
        }
      }
      if (c.range !== null) {
        const V = c.range(args);
        const allowed = c.allowed < 0 ? undefined : (args[c.allowed] as number);
        // Skipped when writeTokens validated these ids for a V' <= V (and no other write since).
        if (!(rec.tokEpoch === rec.owner.epoch && rec.tokV <= V && (rec.tokAllowed === undefined || rec.tokAllowed === allowed))) {
          const ids = this.intView(rec.owner.storage, rec.offset, t.length);
          for (let j = 0; j < ids.length; j++) {
            const id = ids[j];
            if ((id < 0 || id >= V) && id !== allowed) throw new Error(outOfRange(fn, c.name, j, id, V, allowed));
          }
        }
      }
      args[c.idx] = rec;
    }

    // No output may overlap a later output or any input (views that do not overlap are fine).
    const outs = plan.outputs;
    const ins = plan.inputs;
    const all = outs.length + ins.length;
    for (let i = 0; i < outs.length; i++) {
      const a = args[outs[i]] as TensorRecord<S, Buf | Ids | Bf16 | I8> | null;
      if (a === null) continue;
      for (let j = i + 1; j < all; j++) {
        const k = j < outs.length ? outs[j] : ins[j - outs.length];
        const b = args[k] as TensorRecord<S, Buf | Ids | Bf16 | I8> | null;
        if (b !== null && a.owner === b.owner && a.offset < b.offset + b.tensor.length && b.offset < a.offset + a.tensor.length) {
          throw new Error(`${fn}: output ${plan.argNames[outs[i]]} overlaps ${plan.argNames[k]}; outputs must not share memory with other arguments`);
        }
      }
    }

    for (let i = 0; i < tensors.length; i++) {
      const idx = tensors[i].idx;
      const rec = args[idx] as TensorRecord<S, Buf | Ids | Bf16 | I8> | null;
      if (rec === null) continue;
      if (tensors[i].output) rec.owner.epoch++;
      rec.buf ??= this.resolve(rec.owner.storage, rec.tensor.dtype, rec.offset, rec.tensor.length);
      args[idx] = rec.buf;
    }
    const kernels = this.kernels;
    const result = (kernels[fn] as unknown as (...a: unknown[]) => unknown).apply(kernels, args);
    return plan.returnsNumber ? result : undefined;
  }

  // ---- internals ----

  private register(owner: StorageRecord<S>, offset: number, length: number, isView: boolean): Tensor {
    const tensor: Tensor = Object.freeze({ id: this.nextId++, dtype: owner.dtype, length });
    if (isView) owner.views.add(tensor.id);
    this.tensors.set(tensor.id, { tensor, owner, offset, isView, buf: undefined, tokEpoch: -1, tokV: 0, tokAllowed: undefined });
    return tensor;
  }

  private record(fn: string, arg: string, t: Tensor): TensorRecord<S, Buf | Ids | Bf16 | I8> {
    const rec = t !== null && typeof t === 'object' ? this.tensors.get(t.id) : undefined;
    if (!rec || rec.tensor !== t) {
      if (this.orphanedViews.has(t)) throw new Error(`${fn}: ${arg} is a view of a freed tensor`);
      throw new Error(`${fn}: ${arg} is not a live tensor of the ${this.name} backend (freed, or from another backend)`);
    }
    return rec;
  }
}

function checkScalar(fn: string, s: ScalarCheck, args: unknown[]): void {
  let x = args[s.idx];
  switch (s.kind) {
    case 'flag':
      if (x === undefined) args[s.idx] = x = false;
      if (typeof x !== 'boolean') throw new Error(`${fn}: ${s.name} must be a boolean, got ${String(x)}`);
      return;
    case 'dropout': {
      if (x === undefined && s.optional) args[s.idx] = x = NO_DROPOUT;
      const d = x as DropoutSpec;
      if (d === null || typeof d !== 'object') throw new Error(`${fn}: dropout must be { p, seed, stream }`);
      if (typeof d.p !== 'number' || !(d.p >= 0 && Math.fround(d.p) < 1)) throw new Error(`${fn}: dropout.p must be in [0, 1), got ${d.p}`);
      checkU32(fn, 'seed', d.seed);
      checkU32(fn, 'stream', d.stream);
      return;
    }
    case 'finite':
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${fn}: ${s.name} must be a finite number, got ${x}`);
      return;
    case 'unit':
      if (typeof x !== 'number' || !(x >= 0 && Math.fround(x) < 1)) throw new Error(`${fn}: ${s.name} must be in [0, 1), got ${x}`);
      return;
    case 'int32':
      checkInt32(fn, s.name, x as number);
      return;
    case 'step':
      if (!Number.isInteger(x) || (x as number) < 1 || (x as number) > MAX_U32) throw new Error(`${fn}: ${s.name} must be an integer >= 1, got ${x}`);
      return;
  }
}

function checkU32(fn: string, k: 'seed' | 'stream', x: number): void {
  if (!Number.isInteger(x) || x < 0 || x > MAX_U32) throw new Error(`${fn}: dropout.${k} must be an integer in [0, 2^32), got ${x}`);
}

function checkInt32(fn: string, name: string, x: number): void {
  if (!Number.isInteger(x) || x < -0x80000000 || x > 0x7fffffff) throw new Error(`${fn}: ${name} must be a 32-bit integer, got ${x}`);
}

/**
 * Every entry of `ids` is a token id in 0..V-1 (or `allowed`, e.g. an ignore index), or an
 * Error naming `fn` and `name[i]`: writeTokens' check, and the model's for the plain arrays
 * its KV-cached decoder takes.
 */
export function checkTokens(fn: string, name: string, ids: ArrayLike<number>, V: number, allowed?: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (Number.isInteger(id) && id >= 0 && id < V) continue;
    if (allowed !== undefined && id === allowed) continue;
    throw new Error(`${fn}: ${name}[${i}] = ${id} is out of range (must be in 0..${V - 1}${allowed === undefined ? '' : `, or ${allowed} to skip`})`);
  }
}

/** The message for an id out of range in a kernel's own scan (writeTokens words it as checkTokens does). */
function outOfRange(fn: string, name: string, i: number, id: number, V: number, allowed: number | undefined): string {
  return `${fn}: ${name}[${i}] = ${id} is out of range (must be in 0..${V - 1}${allowed === undefined ? '' : ` or ${allowed}`})`;
}

/** Checks a count argument; the error names `where: name` (or just `name`). */
function checkCount(where: string | null, name: string, value: number, min: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > MAX_U32) {
    throw new Error(`${where === null ? '' : `${where}: `}${name} must be an integer >= ${min}, got ${typeof value === 'number' ? value : typeof value}`);
  }
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}
