// The dtype a model holds its weights in: f32 (training, and the default), or one of the
// compact dtypes for inference: bf16 (half the bytes) and int8 (llama.cpp's Q8_0: blocks of
// 32 int8 values with one f32 scale, about 1.06 bytes a weight). The formats are defined in
// src/backend/compact.ts (and crates/kernels/src/compact.rs); this file is what the model
// does with them.
//
// Which parameters are compact: the rank-2 ones that are read as matmul weights, that is the
// four linear layers of each block and the token embedding wte (which is also the tied lm
// head). The position table wpe, the LayerNorms and the biases stay f32: they are under 1%
// of GPT-2's bytes, and wpe is added, not multiplied.
//
// A compact weight reaches the kernels as a `Weight`: a bf16 Tensor (its dtype says so) or
// an int8 pair { q, scales }. `linearForward` and `embedForward` pick the kernel by it, so
// the blocks, the lm head and the KV-cached decoder have one code path for every dtype.
// Training needs f32 master weights (gradients, AdamW): a compact model refuses it. bf16
// mixed-precision training keeps the f32 master and gives the GEMMs a bf16 copy (WeightCopy),
// re-rounded once per update; `linearBackward` picks the f32 or the bf16 backward.

import type { Backend, Tensor } from '../backend/backend.js';
import { Q8_BLOCK, Q8_GROUP, deinterleaveQ8, dequantizeQ8, fromBf16, interleaveQ8, quantizeQ8, toBf16 } from '../backend/compact.js';
import { packedRows } from '../backend/kernels.js';
import type { GPTConfig } from './config.js';
import { structure, type ModelParams, type ParamSpec } from './params.js';

/** The dtypes a model's weights can be held in. */
export const WEIGHT_DTYPES = ['f32', 'bf16', 'int8'] as const;
export type WeightDType = (typeof WEIGHT_DTYPES)[number];

/** An int8 weight: (rows, C) int8 values and (rows, C/32) f32 scales. */
export interface Q8Weight {
  readonly q: Tensor;
  readonly scales: Tensor;
}

/**
 * An f32 weight (OC, C) with its packed copy (P, C) beside it (packWeight's, P = packedRows(OC)):
 * what matmulForwardPacked reads, so that a many-row product does not repack the weight.
 */
export interface PackedWeight {
  readonly weight: Tensor;
  readonly packed: Tensor;
  readonly P: number;
}

/** A matmul weight or embedding table as the kernels take it: an f32 or bf16 Tensor, an int8 pair, or an f32 one with its packed copy. */
export type Weight = Tensor | Q8Weight | PackedWeight;

/** One parameter's values as a model holds them and a file stores them, in our layout. */
export type StoredParam =
  | { readonly dtype: 'f32'; readonly data: Float32Array }
  | { readonly dtype: 'bf16'; readonly data: Uint16Array }
  | { readonly dtype: 'int8'; readonly data: Int8Array; readonly scales: Float32Array };

/** Whether a parameter is held in the model's compact dtype (see the top of the file). */
export function isCompactParam(spec: Pick<ParamSpec, 'name' | 'shape'>): boolean {
  return spec.shape.length === 2 && spec.name !== 'transformer.wpe.weight';
}

/** `dtype` if it is a weight dtype, else an Error naming `fn` and the choices. */
export function checkWeightDType(fn: string, dtype: unknown): WeightDType {
  if (typeof dtype === 'string' && (WEIGHT_DTYPES as readonly string[]).includes(dtype)) return dtype as WeightDType;
  throw new Error(`${fn}: dtype must be one of ${WEIGHT_DTYPES.map((d) => `'${d}'`).join(', ')}, got ${JSON.stringify(dtype)}`);
}

/** An Error unless the config can hold `dtype` weights (int8 blocks need rows of a multiple of 32). */
export function checkFitsDType(fn: string, config: Pick<GPTConfig, 'nEmbd'>, dtype: WeightDType): void {
  if (dtype === 'int8' && config.nEmbd % Q8_BLOCK !== 0) {
    throw new Error(`${fn}: int8 weights need nEmbd to be a multiple of ${Q8_BLOCK} (the int8 block), got ${config.nEmbd}; use 'bf16' or 'f32'`);
  }
}

/** The values of a stored parameter as f32 (bf16 widened exactly, int8 dequantized). */
export function storedToF32(p: StoredParam): Float32Array {
  switch (p.dtype) {
    case 'f32':
      return p.data;
    case 'bf16':
      return fromBf16(p.data);
    case 'int8':
      return dequantizeQ8(p.data, p.scales);
  }
}

/** A stored parameter converted to `dtype` (itself when it is already that dtype). int8 needs a length that is a multiple of 32. */
export function convertStored(p: StoredParam, dtype: WeightDType): StoredParam {
  if (p.dtype === dtype) return p;
  const f32 = storedToF32(p);
  switch (dtype) {
    case 'f32':
      return { dtype, data: f32 };
    case 'bf16':
      return { dtype, data: toBf16(f32) };
    case 'int8': {
      const { q, scales } = quantizeQ8(f32);
      return { dtype, data: q, scales };
    }
  }
}

/** out (N, OC) = inp (N, C) · wᵀ + b (accumulate: out += it), by the kernel for w's dtype. */
export function linearForward(be: Backend, out: Tensor, inp: Tensor, w: Weight, b: Tensor | null, N: number, C: number, OC: number, accumulate = false): void {
  if ('packed' in w) be.matmulForwardPacked(out, inp, w.weight, w.packed, b, N, C, OC, w.P, accumulate);
  else if ('q' in w) be.matmulForwardQ8(out, inp, w.q, w.scales, b, N, C, OC, accumulate);
  else if (w.dtype === 'bf16') be.matmulForwardBf16(out, inp, w, b, N, C, OC, accumulate);
  else be.matmulForward(out, inp, w, b, N, C, OC, accumulate);
}

/** out (B, T, C) = wte[ids] + wpe[t], by the kernel for wte's dtype. */
export function embedForward(be: Backend, out: Tensor, ids: Tensor, wte: Weight, wpe: Tensor, B: number, T: number, C: number): void {
  if ('packed' in wte) be.encoderForward(out, ids, wte.weight, wpe, B, T, C);
  else if ('q' in wte) be.encoderForwardQ8(out, ids, wte.q, wte.scales, wpe, B, T, C, wte.scales.length / (C / Q8_BLOCK));
  else if (wte.dtype === 'bf16') be.encoderForwardBf16(out, ids, wte, wpe, B, T, C);
  else be.encoderForward(out, ids, wte, wpe, B, T, C);
}

/**
 * The backward of linearForward: dinp (+)= dout · w, dw += doutᵀ · inp, db += Σ dout, by
 * the kernel for w's dtype: f32, or bf16 (mixed-precision training, mixed.rs). An int8
 * weight here is a caller's bug: training refuses an int8 model first.
 */
export function linearBackward(be: Backend, dinp: Tensor, dw: Tensor | null, db: Tensor | null, dout: Tensor, inp: Tensor, w: Weight, N: number, C: number, OC: number, overwriteDinp = false): void {
  if ('packed' in w) w = w.weight;
  if ('q' in w) throw new Error('internal: a training path reached an int8 weight');
  if (w.dtype === 'bf16') be.matmulBackwardBf16(dinp, dw, db, dout, inp, w, N, C, OC, overwriteDinp);
  else be.matmulBackward(dinp, dw, db, dout, inp, w, N, C, OC, overwriteDinp);
}

/** Training precisions: f32, or bf16 mixed precision (bf16 GEMM operands, f32 master weights, gradients and optimizer state). */
export const PRECISIONS = ['f32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** What a WeightCopy derives from each f32 master weight (see WeightCopy). */
export type CopyKind = 'bf16' | 'packed';

/**
 * A copy of a model's f32 master weights that its forward GEMMs read instead, one per
 * compact parameter (weights.ts's: the matmul weights and wte) in one buffer, and the
 * structure the passes walk (those copies, and the master's views for the rest):
 * - 'bf16', bf16 mixed-precision training: each weight rounded to bf16 (roundBf16);
 * - 'packed', the model's packWeights: each weight packed as the forward GEMM packs it
 *   (packWeight), which a prompt or a scoring batch then reads instead of repacking the
 *   weight in every call, at the cost of a second f32 copy of the weights.
 * `sync` redoes the copy when the master buffer has been written since (an optimizer step,
 * a load): once per update, however many passes an update has.
 */
export class WeightCopy {
  readonly tree: ModelParams<Tensor, Weight>;
  private readonly buffer: Tensor;
  private readonly pairs: Array<{ master: Tensor; copy: Tensor; rows: number; cols: number; P: number }> = [];
  private synced = -1;

  constructor(private readonly backend: Backend, config: GPTConfig, specs: readonly ParamSpec[], private readonly master: { buffer: Tensor; views: Map<string, Tensor> }, readonly kind: CopyKind) {
    const compact = specs.filter(isCompactParam);
    const copyRows = (s: ParamSpec) => (kind === 'packed' ? packedRows(s.shape[0]) : s.shape[0]);
    this.buffer = backend.alloc(compact.reduce((n, s) => n + copyRows(s) * s.shape[1], 0), kind === 'bf16' ? 'bf16' : 'f32');
    const byName = new Map<string, Tensor | Weight>(master.views);
    let at = 0;
    for (const spec of compact) {
      const [rows, cols] = spec.shape;
      const P = copyRows(spec);
      const copy = backend.view(this.buffer, at, P * cols);
      const weight = master.views.get(spec.name)!;
      this.pairs.push({ master: weight, copy, rows, cols, P });
      byName.set(spec.name, kind === 'bf16' ? copy : { weight, packed: copy, P });
      at += P * cols;
    }
    this.tree = structure<Tensor, Weight>(config, byName);
  }

  /** Redoes the copy if the master weights changed since the last time. */
  sync(): void {
    const version = this.backend.version(this.master.buffer);
    if (version === this.synced) return;
    for (const { master, copy, rows, cols, P } of this.pairs) {
      if (this.kind === 'bf16') this.backend.roundBf16(copy, master, master.length);
      else this.backend.packWeight(copy, master, cols, rows, P);
    }
    this.synced = version;
  }

  dispose(): void {
    this.backend.free(this.buffer);
  }
}

/**
 * The weights of a model held in a compact dtype: the compact parameters in one bf16 buffer
 * (or one int8 buffer and one f32 buffer of scales), the others in one f32 buffer, each
 * parameter a view, and the structure the passes walk.
 */
export class CompactWeights {
  readonly tree: ModelParams<Tensor, Weight>;
  private readonly byName = new Map<string, { spec: ParamSpec; f32?: Tensor; bf16?: Tensor; q8?: Q8Weight }>();
  private readonly buffers: Tensor[] = [];

  /** Allocates the buffers for `specs` and fills every parameter from `values(spec)` (converted to the dtype). */
  constructor(private readonly backend: Backend, config: GPTConfig, specs: readonly ParamSpec[], readonly dtype: 'bf16' | 'int8', values: (spec: ParamSpec) => StoredParam) {
    const compact = specs.filter(isCompactParam);
    const plain = specs.filter((s) => !isCompactParam(s));
    const total = (list: readonly ParamSpec[]) => list.reduce((n, s) => n + s.length, 0);
    const alloc = (length: number, dtype: 'f32' | 'bf16' | 'i8') => {
      const t = backend.alloc(length, dtype);
      this.buffers.push(t);
      return t;
    };
    try {
      const f32 = alloc(total(plain), 'f32');
      let at = 0;
      for (const spec of plain) {
        this.byName.set(spec.name, { spec, f32: backend.view(f32, at, spec.length) });
        at += spec.length;
      }
      const n = total(compact);
      const main = alloc(n, dtype === 'bf16' ? 'bf16' : 'i8');
      const scales = dtype === 'int8' ? alloc(n / Q8_BLOCK, 'f32') : null;
      at = 0;
      for (const spec of compact) {
        const t = backend.view(main, at, spec.length);
        if (scales === null) this.byName.set(spec.name, { spec, bf16: t });
        else this.byName.set(spec.name, { spec, q8: { q: t, scales: backend.view(scales, at / Q8_BLOCK, spec.length / Q8_BLOCK) } });
        at += spec.length;
      }
      for (const spec of specs) this.write(spec.name, values(spec));
    } catch (err) {
      this.dispose();
      throw err;
    }
    const weights = new Map<string, Tensor | Weight>();
    for (const [name, e] of this.byName) weights.set(name, e.f32 ?? e.bf16 ?? e.q8!);
    this.tree = structure<Tensor, Weight>(config, weights);
  }

  /** Parameter `name` as this model stores it (a copy). */
  stored(name: string): StoredParam {
    const e = this.entry(name);
    if (e.f32 !== undefined) return { dtype: 'f32', data: this.backend.read(e.f32) as Float32Array };
    if (e.bf16 !== undefined) return { dtype: 'bf16', data: this.backend.read(e.bf16) as Uint16Array };
    const [rows, cols] = e.spec.shape;
    const { q, scales } = deinterleaveQ8({ q: this.backend.read(e.q8!.q) as Int8Array, scales: this.backend.read(e.q8!.scales) as Float32Array }, rows, cols);
    return { dtype: 'int8', data: q, scales };
  }

  /** Rows r of parameter `name` (rows of `C`) as f32 values. */
  rows(name: string, r: number, count: number, C: number): Float32Array {
    const e = this.entry(name);
    const be = this.backend;
    if (e.f32 !== undefined) return be.read(e.f32, r * C, count * C) as Float32Array;
    if (e.bf16 !== undefined) return fromBf16(be.read(e.bf16, r * C, count * C) as Uint16Array);
    // In memory the rows are interleaved in groups of Q8_GROUP: read the groups that hold
    // rows r..r+count, put them back in order, and dequantize the rows asked for.
    const { q, scales } = e.q8!;
    const rowsAll = e.spec.shape[0];
    const g0 = r - (r % Q8_GROUP);
    const g1 = Math.min(rowsAll, Math.ceil((r + count) / Q8_GROUP) * Q8_GROUP);
    const part = this.q8Groups(q, scales, g0, g1, C);
    const skip = (r - g0) * C;
    return dequantizeQ8(part.q.subarray(skip, skip + count * C), part.scales.subarray(skip / Q8_BLOCK, (skip + count * C) / Q8_BLOCK));
  }

  /** Overwrites parameter `name` with `value`, converted to how this model stores it. */
  write(name: string, value: StoredParam): void {
    const e = this.entry(name);
    const be = this.backend;
    if (e.f32 !== undefined) be.write(e.f32, storedToF32(value));
    else if (e.bf16 !== undefined) be.write(e.bf16, (convertStored(value, 'bf16') as { data: Uint16Array }).data);
    else {
      const q = convertStored(value, 'int8') as Extract<StoredParam, { dtype: 'int8' }>;
      const [rows, cols] = e.spec.shape;
      const laid = interleaveQ8({ q: q.data, scales: q.scales }, rows, cols);
      be.write(e.q8!.q, laid.q);
      be.write(e.q8!.scales, laid.scales);
    }
  }

  /** Rows g0..g1 (whole groups of Q8_GROUP, or up to the matrix's last row) of an int8 matrix, back in row-major order. */
  private q8Groups(q: Tensor, scales: Tensor, g0: number, g1: number, C: number): { q: Int8Array; scales: Float32Array } {
    const be = this.backend;
    const n = g1 - g0;
    // A group's bytes are contiguous (q8At), so rows g0..g1 are one range; as its own
    // matrix of n rows it has the same groups, except that its last group is partial
    // only where the whole matrix's is.
    const part = { q: be.read(q, g0 * C, n * C) as Int8Array, scales: be.read(scales, (g0 * C) / Q8_BLOCK, (n * C) / Q8_BLOCK) as Float32Array };
    return deinterleaveQ8(part, n, C);
  }

  dispose(): void {
    for (const t of this.buffers.splice(0)) this.backend.free(t);
  }

  private entry(name: string) {
    const e = this.byName.get(name);
    if (e === undefined) throw new Error(`internal: parameter ${name} missing from layout`);
    return e;
  }
}
