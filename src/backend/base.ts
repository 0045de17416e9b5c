// The part every backend shares: tensor handles (with views and frees) and the argument
// checks. A concrete backend supplies storage (allocStorage & co.) and the raw kernels
// over its own resolved buffers (`Kernels<Buf>`); it never sees an unchecked argument.
//
// Checks are done here once for all three backends, so every backend rejects the same
// inputs with the same message. The native addon checks lengths again on its side, so
// that calling it directly cannot crash the process either.

import {
  NO_DROPOUT,
  type Backend,
  type BackendInfo,
  type BackendName,
  type DType,
  type DropoutSpec,
  type Kernels,
  type Tensor,
} from './backend.js';

interface StorageRecord<S> {
  storage: S;
  dtype: DType;
  length: number;
  freed: boolean;
}

interface TensorRecord<S, Buf> {
  tensor: Tensor;
  owner: StorageRecord<S>;
  offset: number;
  isView: boolean;
  buf?: Buf; // resolved lazily, then reused for every kernel call
}

const MAX_U32 = 0xffffffff;

export abstract class BaseBackend<S, Buf> implements Backend {
  abstract readonly name: BackendName;
  abstract info(): BackendInfo;

  /** Zero-filled storage of `length` elements. */
  protected abstract allocStorage(length: number, dtype: DType): S;
  protected abstract freeStorage(storage: S): void;
  /** The kernels' name for elements [offset, offset + length) of storage. */
  protected abstract resolve(storage: S, dtype: DType, offset: number, length: number): Buf;
  protected abstract writeStorage(storage: S, dtype: DType, offset: number, data: Float32Array | Int32Array): void;
  protected abstract readStorage(storage: S, dtype: DType, offset: number, length: number): Float32Array | Int32Array;
  protected abstract zeroStorage(storage: S, dtype: DType, offset: number, length: number): void;
  /** A zero-copy, short-lived view of i32 storage, used to check token ids before a kernel runs. */
  protected abstract intView(storage: S, offset: number, length: number): Int32Array;
  protected abstract readonly kernels: Kernels<Buf>;

  private readonly tensors = new Map<number, TensorRecord<S, Buf>>();
  private nextId = 1;

  // ---- storage ----

  alloc(length: number, dtype: DType = 'f32'): Tensor {
    checkCount(null, 'length', length, 0);
    if (dtype !== 'f32' && dtype !== 'i32') throw new Error(`alloc: dtype must be 'f32' or 'i32', got ${String(dtype)}`);
    const owner: StorageRecord<S> = { storage: this.allocStorage(length, dtype), dtype, length, freed: false };
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
    if (rec.isView) return;
    rec.owner.freed = true;
    this.freeStorage(rec.owner.storage);
  }

  write(t: Tensor, data: Float32Array | Int32Array, offset = 0): void {
    const rec = this.record('write', 't', t);
    const want = t.dtype === 'f32' ? Float32Array : Int32Array;
    if (!(data instanceof want)) {
      throw new Error(`write: data must be a ${want.name} for a ${t.dtype} tensor, got ${describe(data)}`);
    }
    checkCount('write', 'offset', offset, 0);
    if (offset + data.length > t.length) {
      throw new Error(`write: data length ${data.length} at offset ${offset} exceeds tensor length ${t.length}`);
    }
    this.writeStorage(rec.owner.storage, t.dtype, rec.offset + offset, data);
  }

  read(t: Tensor, offset = 0, length?: number): Float32Array | Int32Array {
    const rec = this.record('read', 't', t);
    checkCount('read', 'offset', offset, 0);
    const len = length ?? t.length - offset;
    checkCount('read', 'length', len, 0);
    if (offset + len > t.length) throw new Error(`read: offset ${offset} + length ${len} exceeds tensor length ${t.length}`);
    return this.readStorage(rec.owner.storage, t.dtype, rec.offset + offset, len);
  }

  zero(t: Tensor): void {
    const rec = this.record('zero', 't', t);
    this.zeroStorage(rec.owner.storage, t.dtype, rec.offset, t.length);
  }

  // ---- kernels: check, then call the raw kernel ----

  encoderForward(out: Tensor, ids: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number): void {
    const c = this.call('encoderForward').dims({ B, T, C });
    const V = c.rows('wte', wte, C);
    c.rows('wpe', wpe, C, T);
    c.out('out', out, B * T * C).ints('ids', ids, B * T, V);
    this.kernels.encoderForward(c.buf(out), c.buf(ids), c.buf(wte), c.buf(wpe), B, T, C);
  }

  encoderBackward(dwte: Tensor, dwpe: Tensor, dout: Tensor, ids: Tensor, B: number, T: number, C: number): void {
    const c = this.call('encoderBackward').dims({ B, T, C });
    const V = c.rows('dwte', dwte, C, 1, true);
    c.rows('dwpe', dwpe, C, T, true);
    c.in('dout', dout, B * T * C).ints('ids', ids, B * T, V);
    this.kernels.encoderBackward(c.buf(dwte), c.buf(dwpe), c.buf(dout), c.buf(ids), B, T, C);
  }

  layernormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void {
    const c = this.call('layernormForward').dims({ N, C });
    c.out('out', out, N * C).out('mean', mean, N).out('rstd', rstd, N);
    c.in('inp', inp, N * C).in('weight', weight, C).in('bias', bias, C);
    this.kernels.layernormForward(c.buf(out), c.buf(mean), c.buf(rstd), c.buf(inp), c.buf(weight), c.buf(bias), N, C);
  }

  layernormBackward(dinp: Tensor, dweight: Tensor, dbias: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, N: number, C: number): void {
    const c = this.call('layernormBackward').dims({ N, C });
    c.out('dinp', dinp, N * C).out('dweight', dweight, C).out('dbias', dbias, C);
    c.in('dout', dout, N * C).in('inp', inp, N * C).in('weight', weight, C).in('mean', mean, N).in('rstd', rstd, N);
    this.kernels.layernormBackward(c.buf(dinp), c.buf(dweight), c.buf(dbias), c.buf(dout), c.buf(inp), c.buf(weight), c.buf(mean), c.buf(rstd), N, C);
  }

  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, N: number, C: number, OC: number): void {
    const c = this.call('matmulForward').dims({ N, C, OC });
    c.out('out', out, N * OC).in('inp', inp, N * C).in('weight', weight, OC * C);
    if (bias !== null) c.in('bias', bias, OC);
    this.kernels.matmulForward(c.buf(out), c.buf(inp), c.buf(weight), bias === null ? null : c.buf(bias), N, C, OC);
  }

  matmulBackward(dinp: Tensor, dweight: Tensor, dbias: Tensor | null, dout: Tensor, inp: Tensor, weight: Tensor, N: number, C: number, OC: number, overwriteDinp = false): void {
    const c = this.call('matmulBackward').dims({ N, C, OC }).flag('overwriteDinp', overwriteDinp);
    c.out('dinp', dinp, N * C).out('dweight', dweight, OC * C);
    if (dbias !== null) c.out('dbias', dbias, OC);
    c.in('dout', dout, N * OC).in('inp', inp, N * C).in('weight', weight, OC * C);
    this.kernels.matmulBackward(c.buf(dinp), c.buf(dweight), dbias === null ? null : c.buf(dbias), c.buf(dout), c.buf(inp), c.buf(weight), N, C, OC, overwriteDinp);
  }

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number, dropout: DropoutSpec = NO_DROPOUT): void {
    const c = this.call('attentionForward').dims({ B, T, C, NH }).heads(C, NH).dropout(dropout);
    c.out('out', out, B * T * C).out('lse', lse, B * NH * T).in('qkv', qkv, B * T * 3 * C);
    this.kernels.attentionForward(c.buf(out), c.buf(lse), c.buf(qkv), B, T, C, NH, dropout);
  }

  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number, dropout: DropoutSpec = NO_DROPOUT, overwrite = false): void {
    const c = this.call('attentionBackward').dims({ B, T, C, NH }).heads(C, NH).dropout(dropout).flag('overwrite', overwrite);
    c.out('dqkv', dqkv, B * T * 3 * C);
    c.in('dout', dout, B * T * C).in('qkv', qkv, B * T * 3 * C).in('out', out, B * T * C).in('lse', lse, B * NH * T);
    this.kernels.attentionBackward(c.buf(dqkv), c.buf(dout), c.buf(qkv), c.buf(out), c.buf(lse), B, T, C, NH, dropout, overwrite);
  }

  attentionDecode(out: Tensor, kcache: Tensor, vcache: Tensor, qkv: Tensor, pos: Tensor, B: number, Tq: number, C: number, NH: number, maxT: number): void {
    const c = this.call('attentionDecode').dims({ B, Tq, C, NH, maxT }).heads(C, NH);
    if (Tq > maxT) throw new Error(`attentionDecode: Tq (${Tq}) exceeds maxT (${maxT})`);
    c.out('out', out, B * Tq * C).out('kcache', kcache, B * maxT * C).out('vcache', vcache, B * maxT * C);
    // Each position in 0..maxT; rows that would land past the cache are padding (skipped).
    c.in('qkv', qkv, B * Tq * 3 * C).ints('pos', pos, B, maxT + 1);
    this.kernels.attentionDecode(c.buf(out), c.buf(kcache), c.buf(vcache), c.buf(qkv), c.buf(pos), B, Tq, C, NH, maxT);
  }

  geluForward(out: Tensor, inp: Tensor, N: number): void {
    const c = this.call('geluForward').dims({ N });
    c.out('out', out, N).in('inp', inp, N);
    this.kernels.geluForward(c.buf(out), c.buf(inp), N);
  }

  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number, overwrite = false): void {
    const c = this.call('geluBackward').dims({ N }).flag('overwrite', overwrite);
    c.out('dinp', dinp, N).in('inp', inp, N).in('dout', dout, N);
    this.kernels.geluBackward(c.buf(dinp), c.buf(inp), c.buf(dout), N, overwrite);
  }

  residualForward(out: Tensor, inp1: Tensor, inp2: Tensor, N: number): void {
    const c = this.call('residualForward').dims({ N });
    c.out('out', out, N).in('inp1', inp1, N).in('inp2', inp2, N);
    this.kernels.residualForward(c.buf(out), c.buf(inp1), c.buf(inp2), N);
  }

  residualBackward(dinp1: Tensor, dinp2: Tensor, dout: Tensor, N: number): void {
    const c = this.call('residualBackward').dims({ N });
    c.out('dinp1', dinp1, N).out('dinp2', dinp2, N).in('dout', dout, N);
    this.kernels.residualBackward(c.buf(dinp1), c.buf(dinp2), c.buf(dout), N);
  }

  crossentropyForward(losses: Tensor, logits: Tensor, targets: Tensor, N: number, V: number, ignoreIndex: number): void {
    const c = this.call('crossentropyForward').dims({ N, V }).int32('ignoreIndex', ignoreIndex);
    c.out('losses', losses, N).in('logits', logits, N * V).ints('targets', targets, N, V, ignoreIndex);
    this.kernels.crossentropyForward(c.buf(losses), c.buf(logits), c.buf(targets), N, V, ignoreIndex);
  }

  crossentropyBackward(dlogits: Tensor, dlosses: Tensor, logits: Tensor, targets: Tensor, N: number, V: number, ignoreIndex: number, overwrite = false): void {
    const c = this.call('crossentropyBackward').dims({ N, V }).int32('ignoreIndex', ignoreIndex).flag('overwrite', overwrite);
    c.out('dlogits', dlogits, N * V).in('dlosses', dlosses, N).in('logits', logits, N * V).ints('targets', targets, N, V, ignoreIndex);
    this.kernels.crossentropyBackward(c.buf(dlogits), c.buf(dlosses), c.buf(logits), c.buf(targets), N, V, ignoreIndex, overwrite);
  }

  dropoutForward(out: Tensor, inp: Tensor, N: number, dropout: DropoutSpec): void {
    const c = this.call('dropoutForward').dims({ N }).dropout(dropout);
    c.out('out', out, N).in('inp', inp, N);
    this.kernels.dropoutForward(c.buf(out), c.buf(inp), N, dropout);
  }

  dropoutBackward(dinp: Tensor, dout: Tensor, N: number, dropout: DropoutSpec): void {
    const c = this.call('dropoutBackward').dims({ N }).dropout(dropout);
    c.out('dinp', dinp, N).in('dout', dout, N);
    this.kernels.dropoutBackward(c.buf(dinp), c.buf(dout), N, dropout);
  }

  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, N: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
    const c = this.call('adamwUpdate').dims({ N });
    c.finite('lr', lr).unit('beta1', beta1).unit('beta2', beta2).finite('eps', eps).finite('weightDecay', weightDecay);
    if (!Number.isInteger(step) || step < 1 || step > MAX_U32) throw new Error(`adamwUpdate: step must be an integer >= 1, got ${step}`);
    c.out('params', params, N).out('m', m, N).out('v', v, N).in('grads', grads, N);
    this.kernels.adamwUpdate(c.buf(params), c.buf(grads), c.buf(m), c.buf(v), N, lr, beta1, beta2, eps, weightDecay, step);
  }

  sumSquares(x: Tensor, N: number): number {
    const c = this.call('sumSquares').dims({ N });
    c.in('x', x, N);
    return this.kernels.sumSquares(c.buf(x), N);
  }

  scale(x: Tensor, N: number, s: number): void {
    const c = this.call('scale').dims({ N }).finite('s', s);
    c.out('x', x, N);
    this.kernels.scale(c.buf(x), N, s);
  }

  // ---- internals ----

  private register(owner: StorageRecord<S>, offset: number, length: number, isView: boolean): Tensor {
    const tensor: Tensor = Object.freeze({ id: this.nextId++, dtype: owner.dtype, length });
    this.tensors.set(tensor.id, { tensor, owner, offset, isView });
    return tensor;
  }

  private record(fn: string, arg: string, t: Tensor): TensorRecord<S, Buf> {
    const rec = t !== null && typeof t === 'object' ? this.tensors.get(t.id) : undefined;
    if (!rec || rec.tensor !== t) {
      throw new Error(`${fn}: ${arg} is not a live tensor of the ${this.name} backend (freed, or from another backend)`);
    }
    if (rec.owner.freed) throw new Error(`${fn}: ${arg} is a view of a freed tensor`);
    return rec;
  }

  private call(fn: string): CallCheck<S, Buf> {
    return new CallCheck(fn, (arg, t) => this.record(fn, arg, t), (rec) => {
      rec.buf ??= this.resolve(rec.owner.storage, rec.tensor.dtype, rec.offset, rec.tensor.length);
      return rec.buf;
    }, (rec) => this.intView(rec.owner.storage, rec.offset, rec.tensor.length));
  }
}

/** Checks for one kernel call; every error names the function and the argument. */
class CallCheck<S, Buf> {
  private readonly outputs: Array<[string, TensorRecord<S, Buf>]> = [];
  private readonly inputs: Array<[string, TensorRecord<S, Buf>]> = [];
  private readonly seen = new Map<number, TensorRecord<S, Buf>>();

  constructor(
    private readonly fn: string,
    private readonly lookup: (arg: string, t: Tensor) => TensorRecord<S, Buf>,
    private readonly resolve: (rec: TensorRecord<S, Buf>) => Buf,
    private readonly intView: (rec: TensorRecord<S, Buf>) => Int32Array,
  ) {}

  dims(dims: Record<string, number>): this {
    // Messages are built only on failure: this runs on every kernel call.
    for (const name in dims) checkCount(this.fn, name, dims[name], 1);
    return this;
  }

  heads(C: number, NH: number): this {
    if (C % NH !== 0) throw new Error(`${this.fn}: C (${C}) must be divisible by NH (${NH})`);
    return this;
  }

  dropout(d: DropoutSpec): this {
    if (d === null || typeof d !== 'object') throw new Error(`${this.fn}: dropout must be { p, seed, stream }`);
    if (typeof d.p !== 'number' || !(d.p >= 0 && Math.fround(d.p) < 1)) throw new Error(`${this.fn}: dropout.p must be in [0, 1), got ${d.p}`);
    for (const k of ['seed', 'stream'] as const) {
      if (!Number.isInteger(d[k]) || d[k] < 0 || d[k] > MAX_U32) throw new Error(`${this.fn}: dropout.${k} must be an integer in [0, 2^32), got ${d[k]}`);
    }
    return this;
  }

  flag(name: string, x: boolean): this {
    if (typeof x !== 'boolean') throw new Error(`${this.fn}: ${name} must be a boolean, got ${String(x)}`);
    return this;
  }

  finite(name: string, x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${this.fn}: ${name} must be a finite number, got ${x}`);
    return this;
  }

  unit(name: string, x: number): this {
    if (typeof x !== 'number' || !(x >= 0 && Math.fround(x) < 1)) throw new Error(`${this.fn}: ${name} must be in [0, 1), got ${x}`);
    return this;
  }

  int32(name: string, x: number): this {
    if (!Number.isInteger(x) || x < -0x80000000 || x > 0x7fffffff) throw new Error(`${this.fn}: ${name} must be a 32-bit integer, got ${x}`);
    return this;
  }

  /** An f32 output of exactly `length` elements. */
  out(name: string, t: Tensor, length: number): this {
    this.outputs.push([name, this.tensor(name, t, 'f32', length)]);
    return this;
  }

  /** An f32 input of exactly `length` elements. */
  in(name: string, t: Tensor, length: number): this {
    this.inputs.push([name, this.tensor(name, t, 'f32', length)]);
    return this;
  }

  /**
   * An f32 table of rows of `C` (an embedding), at least `minRows` rows; returns the row
   * count. Tables are outputs when `isOutput` (the gradients of embeddings).
   */
  rows(name: string, t: Tensor, C: number, minRows = 1, isOutput = false): number {
    const rec = this.tensor(name, t, 'f32', null);
    if (t.length % C !== 0 || t.length / C < minRows) {
      throw new Error(`${this.fn}: ${name} must hold at least ${minRows} rows of C = ${C} (length a multiple of ${C}), got length ${t.length}`);
    }
    (isOutput ? this.outputs : this.inputs).push([name, rec]);
    return t.length / C;
  }

  /** An i32 input of exactly `length` token ids, each in 0..V (or equal to `allowed`). */
  ints(name: string, t: Tensor, length: number, V: number, allowed?: number): this {
    const rec = this.tensor(name, t, 'i32', length);
    const ids = this.intView(rec);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if ((id < 0 || id >= V) && id !== allowed) {
        const extra = allowed === undefined ? '' : ` or ${allowed}`;
        throw new Error(`${this.fn}: ${name}[${i}] = ${id} is out of range (must be in 0..${V - 1}${extra})`);
      }
    }
    this.inputs.push([name, rec]);
    return this;
  }

  /** The resolved buffer; first checks that no output overlaps another argument. */
  buf(t: Tensor): Buf {
    if (this.outputs.length > 0) this.checkOverlaps();
    return this.resolve(this.seen.get(t.id)!);
  }

  private tensor(name: string, t: Tensor, dtype: DType, length: number | null): TensorRecord<S, Buf> {
    const rec = this.lookup(name, t);
    if (t.dtype !== dtype) throw new Error(`${this.fn}: ${name} must be a ${dtype} tensor, got ${t.dtype}`);
    if (length !== null && t.length !== length) {
      throw new Error(`${this.fn}: ${name} has length ${t.length}, expected ${length}`);
    }
    this.seen.set(t.id, rec);
    return rec;
  }

  private checked = false;
  private checkOverlaps(): void {
    if (this.checked) return;
    this.checked = true;
    const all = this.outputs.length + this.inputs.length;
    for (let i = 0; i < this.outputs.length; i++) {
      const [name, a] = this.outputs[i];
      // Every later output, then every input (no arrays built: this runs on every call).
      for (let j = i + 1; j < all; j++) {
        const [other, b] = j < this.outputs.length ? this.outputs[j] : this.inputs[j - this.outputs.length];
        if (a.owner === b.owner && a.offset < b.offset + b.tensor.length && b.offset < a.offset + a.tensor.length) {
          throw new Error(`${this.fn}: output ${name} overlaps ${other}; outputs must not share memory with other arguments`);
        }
      }
    }
  }
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
