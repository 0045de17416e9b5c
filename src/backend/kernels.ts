// The kernel registry: every kernel declared once, in KERNELS below.
//
// In the manner of tfjs-core's kernel_registry: a kernel is declared here once, by name,
// with its arguments; each backend registers an implementation against that name, and
// everything else is derived from this table:
//   - the argument checks (base.ts: one generic checker, no per-kernel code);
//   - the types: Kernels<Buf> (and so the Backend's kernel methods), the native addon's
//     kernel exports (bindings/native.ts) and the wasm module's (bindings/wasm.ts);
//   - the lists of exports the two loaders require;
//   - the native and wasm adapters (native.ts, wasm.ts: dropout specs expanded to
//     p, seed, stream; null buffers; flags as 0/1 for wasm; scratch status codes).
// Adding a kernel: an entry here, its reference implementation (reference-kernels.ts, in
// the `referenceKernels` object), and the Rust side: the kernel in crates/kernels and one
// entry, under the snake_case name, in crates/kernels/src/registry.rs. Nothing else.
//
// Arguments are listed in call order: outputs, inputs, dims, then scalars (the Rust
// kernels' order). Each has a role:
//   out / inp     an f32 tensor of exactly `length` elements (output: written; input: read);
//                 `nullable`: null is allowed (no tensor, e.g. matmul's bias); an input or
//                 a table may have a compact `dtype` instead: 'bf16' or 'i8' (a compact
//                 weight, crates/kernels/src/compact.rs); an output may be 'bf16' (a bf16
//                 KV cache)
//   ids           an i32 input of exactly `length` token ids, each in the range ('< V':
//                 0..V-1, '<= maxT': 0..maxT), or equal to the `allowed` scalar argument
//   table         an f32 table of rows of `of` (an embedding), at least `atLeast` rows (default
//                 1); `count` names its row count, which later formulas may use (V)
//   dim           a count, an integer in 1..2^32-1
//   scalar        a number: 'finite', 'unit' (in [0, 1)), 'int32', 'step' (integer in 1..2^32-1)
//   flag          an optional boolean, default false
//   dropout       a DropoutSpec { p, seed, stream }; `optional`: defaults to NO_DROPOUT
// Lengths and ranges are products of dims and integers ('B*T*3*C'), optionally divided by
// an integer that a constraint makes exact ('OC*C/32'), parsed once when a module that uses
// them loads. `constraints` relate dims ('C % NH == 0', 'Tq <= maxT', 'C % 32 == 0').
// `returns: 'number'` for a kernel with a result (sumSquares). `scratch`: the kernel
// allocates scratch memory; in wasm it returns a status (0, or 1 when memory cannot grow).
//
// The checks run in this order, so the first failing one is reported (base.ts): dims,
// constraints, scalars / flags / dropout (call order), tables, outputs, inputs (each in
// call order), then overlaps (no output may share memory with another argument).
//
// This module has no imports at run time and runs anywhere (the bindings import it too).

import type { DropoutSpec } from './backend.js';

// ---- argument roles ----

const out = <const N extends string>(name: N, length: string) => ({ role: 'out', name, length }) as const;
const outOrNull = <const N extends string>(name: N, length: string) => ({ role: 'out', name, length, nullable: true }) as const;
const inp = <const N extends string>(name: N, length: string) => ({ role: 'inp', name, length }) as const;
const inpOrNull = <const N extends string>(name: N, length: string) => ({ role: 'inp', name, length, nullable: true }) as const;
/** A compact-weight input: bf16 (Uint16Array bits) or int8 (Int8Array), see crates/kernels/src/compact.rs. */
const compactInp = <const N extends string, const D extends CompactDType>(name: N, length: string, dtype: D) => ({ role: 'inp', name, length, dtype }) as const;
/** A bf16 output (Uint16Array bits): a bf16 KV cache, see crates/kernels/src/decode.rs. */
const compactOut = <const N extends string, const D extends 'bf16'>(name: N, length: string, dtype: D) => ({ role: 'out', name, length, dtype }) as const;
const ids = <const N extends string>(name: N, length: string, range: string, allowed?: string) => ({ role: 'ids', name, length, range, allowed }) as const;
const table = <const N extends string>(name: N, of: string, opts: { count?: string; atLeast?: string; output?: boolean } = {}) =>
  ({ role: 'table', name, of, ...opts }) as const;
const compactTable = <const N extends string, const D extends CompactDType>(name: N, of: string, count: string, dtype: D) => ({ role: 'table', name, of, count, dtype }) as const;
const dim = <const N extends string>(name: N) => ({ role: 'dim', name }) as const;
const scalar = <const N extends string>(name: N, kind: ScalarKind) => ({ role: 'scalar', name, kind }) as const;
const flag = <const N extends string>(name: N) => ({ role: 'flag', name, optional: true }) as const;
const dropout = <const O extends boolean>(optional: O) => ({ role: 'dropout', name: 'dropout', optional }) as const;

export type ScalarKind = 'finite' | 'unit' | 'int32' | 'step';
/** The element types of compact weights: bf16 (stored as its 16 bits) and int8. */
export type CompactDType = 'bf16' | 'i8';

/** One argument of a kernel (see the roles above). */
export interface ArgDef {
  readonly role: 'out' | 'inp' | 'ids' | 'table' | 'dim' | 'scalar' | 'flag' | 'dropout';
  readonly name: string;
  readonly length?: string;
  readonly nullable?: boolean;
  readonly range?: string;
  readonly allowed?: string;
  readonly of?: string;
  readonly count?: string;
  readonly atLeast?: string;
  readonly output?: boolean;
  readonly kind?: ScalarKind;
  readonly optional?: boolean;
  /** An input, table or (bf16 only) output of a compact dtype instead of f32. */
  readonly dtype?: CompactDType;
}

export interface KernelDef {
  readonly args: readonly ArgDef[];
  readonly constraints?: readonly string[];
  readonly returns?: 'number';
  readonly scratch?: boolean;
}

// ---- the table ----

/**
 * Every kernel, in one place. Shapes use the dimension letters of backend.ts: B batch,
 * T time, C channels, NH heads, V vocab, OC output channels, N rows. Backward kernels
 * accumulate (+=) into their gradients unless their overwrite flag is set.
 */
export const KERNELS = {
  /** out (B,T,C) = wte[ids] + wpe[t]; ids (B,T) i32 in 0..V-1 where V = wte.length / C. */
  encoderForward: {
    args: [out('out', 'B*T*C'), ids('ids', 'B*T', '< V'), table('wte', 'C', { count: 'V' }), table('wpe', 'C', { atLeast: 'T' }), dim('B'), dim('T'), dim('C')],
  },
  /** out (B,T,C) = wte (V,C, bf16)[ids] + wpe (maxT,C)[t]. */
  encoderForwardBf16: {
    args: [out('out', 'B*T*C'), ids('ids', 'B*T', '< V'), compactTable('wte', 'C', 'V', 'bf16'), table('wpe', 'C', { atLeast: 'T' }), dim('B'), dim('T'), dim('C')],
  },
  /** out (B,T,C) = wte (V,C, int8, scales (V,C/32))[ids] dequantized + wpe (maxT,C)[t]. */
  encoderForwardQ8: {
    args: [out('out', 'B*T*C'), ids('ids', 'B*T', '< V'), compactInp('wte', 'V*C', 'i8'), inp('scales', 'V*C/32'), table('wpe', 'C', { atLeast: 'T' }), dim('B'), dim('T'), dim('C'), dim('V')],
    constraints: ['C % 32 == 0'],
  },
  /** dwte (V,C)[ids] += dout (B,T,C); dwpe (maxT,C)[t] += dout; ids (B,T) i32 in 0..V-1. */
  encoderBackward: {
    args: [table('dwte', 'C', { count: 'V', output: true }), table('dwpe', 'C', { atLeast: 'T', output: true }), inp('dout', 'B*T*C'), ids('ids', 'B*T', '< V'), dim('B'), dim('T'), dim('C')],
  },

  /** out (N,C), mean (N), rstd (N) from inp (N,C), weight (C), bias (C). eps 1e-5. */
  layernormForward: {
    args: [out('out', 'N*C'), out('mean', 'N'), out('rstd', 'N'), inp('inp', 'N*C'), inp('weight', 'C'), inp('bias', 'C'), dim('N'), dim('C')],
  },
  /** dinp (N,C), dweight (C), dbias (C) += the gradient of layernormForward from dout (N,C) and the saved mean, rstd (N). */
  layernormBackward: {
    args: [
      out('dinp', 'N*C'), out('dweight', 'C'), out('dbias', 'C'),
      inp('dout', 'N*C'), inp('inp', 'N*C'), inp('weight', 'C'), inp('mean', 'N'), inp('rstd', 'N'),
      dim('N'), dim('C'),
    ],
  },

  /** out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); bias may be null; accumulate: out += it. */
  matmulForward: {
    args: [out('out', 'N*OC'), inp('inp', 'N*C'), inp('weight', 'OC*C'), inpOrNull('bias', 'OC'), dim('N'), dim('C'), dim('OC'), flag('accumulate')],
    scratch: true,
  },
  /**
   * packed (P,C) = weight (OC,C) packed once, as matmulForward's GEMM would pack it on every
   * call; P is a multiple of 192 and at least OC (packedRows(OC)). The layout is the
   * backend's own: only packWeight writes it and only matmulForwardPacked reads it.
   */
  packWeight: {
    args: [out('packed', 'P*C'), inp('weight', 'OC*C'), dim('C'), dim('OC'), dim('P')],
    constraints: ['P % 192 == 0', 'OC <= P'],
  },
  /**
   * matmulForward, given the weight's packed copy (packWeight of this weight, not stale):
   * the same outputs, bit for bit. Many rows (a prompt, scoring) read the packed copy
   * instead of packing the weight; decoding rows read the weight in place.
   */
  matmulForwardPacked: {
    args: [out('out', 'N*OC'), inp('inp', 'N*C'), inp('weight', 'OC*C'), inp('packed', 'P*C'), inpOrNull('bias', 'OC'), dim('N'), dim('C'), dim('OC'), dim('P'), flag('accumulate')],
    constraints: ['P % 192 == 0', 'OC <= P'],
    scratch: true,
  },
  /** out (N,OC) = bf16(inp (N,C)) · weight (OC,C, bf16)ᵀ + bias (OC): inp is rounded to bf16 too; f32 accumulation; accumulate: out += it. */
  matmulForwardBf16: {
    args: [out('out', 'N*OC'), inp('inp', 'N*C'), compactInp('weight', 'OC*C', 'bf16'), inpOrNull('bias', 'OC'), dim('N'), dim('C'), dim('OC'), flag('accumulate')],
    scratch: true,
  },
  /**
   * out (N,OC) = q8(inp (N,C)) · weight (OC,C, int8, scales (OC,C/32))ᵀ + bias (OC): each block of 32
   * weights is q·d; inp is quantized the same way on the fly; accumulate: out += it.
   */
  matmulForwardQ8: {
    args: [
      out('out', 'N*OC'), inp('inp', 'N*C'), compactInp('weight', 'OC*C', 'i8'), inp('scales', 'OC*C/32'), inpOrNull('bias', 'OC'),
      dim('N'), dim('C'), dim('OC'), flag('accumulate'),
    ],
    constraints: ['C % 32 == 0'],
    scratch: true,
  },
  /**
   * dinp (N,C) += dout (N,OC) · weight; dweight (OC,C) += doutᵀ · inp; dbias (OC) += Σ dout.
   * dweight and dbias may be null (a frozen layer: no dW product). overwriteDinp writes dinp.
   */
  matmulBackward: {
    args: [
      out('dinp', 'N*C'), outOrNull('dweight', 'OC*C'), outOrNull('dbias', 'OC'),
      inp('dout', 'N*OC'), inp('inp', 'N*C'), inp('weight', 'OC*C'),
      dim('N'), dim('C'), dim('OC'), flag('overwriteDinp'),
    ],
    scratch: true,
  },

  /**
   * The backward of matmulForwardBf16 (bf16 mixed-precision training): dinp (N,C) += bf16(dout) · weight (OC,C, bf16);
   * dweight (OC,C) += bf16(dout)ᵀ · bf16(inp); dbias (OC) += Σ dout (f32). dweight and dbias may be null; overwriteDinp writes dinp.
   */
  matmulBackwardBf16: {
    args: [
      out('dinp', 'N*C'), outOrNull('dweight', 'OC*C'), outOrNull('dbias', 'OC'),
      inp('dout', 'N*OC'), inp('inp', 'N*C'), compactInp('weight', 'OC*C', 'bf16'),
      dim('N'), dim('C'), dim('OC'), flag('overwriteDinp'),
    ],
    scratch: true,
  },

  /** out (N, bf16 bits) = x (N) rounded to bf16, ties to even: the bf16 copy of the master weights in mixed-precision training. */
  roundBf16: { args: [compactOut('out', 'N', 'bf16'), inp('x', 'N'), dim('N')] },

  /** Causal self-attention: out (B,T,C), lse (B,NH,T) from qkv (B,T,3C); dropout on the weights. */
  attentionForward: {
    args: [out('out', 'B*T*C'), out('lse', 'B*NH*T'), inp('qkv', 'B*T*3*C'), dim('B'), dim('T'), dim('C'), dim('NH'), dropout(true)],
    constraints: ['C % NH == 0'],
    scratch: true,
  },
  /** dqkv (B,T,3C) += the gradient of attentionForward from dout (B,T,C), qkv, out and lse (B,NH,T). */
  attentionBackward: {
    args: [
      out('dqkv', 'B*T*3*C'), inp('dout', 'B*T*C'), inp('qkv', 'B*T*3*C'), inp('out', 'B*T*C'), inp('lse', 'B*NH*T'),
      dim('B'), dim('T'), dim('C'), dim('NH'), dropout(true), flag('overwrite'),
    ],
    constraints: ['C % NH == 0'],
    scratch: true,
  },
  /**
   * KV-cached causal attention (generation). Appends the k, v of qkv (B,Tq,3C) to kcache and
   * vcache (B,NH,maxT,HS) at rows pos[b]..pos[b]+Tq of each sequence, then out (B,Tq,C) =
   * attention of query row t of sequence b over its cache rows 0..=pos[b]+t. pos (B) i32 is
   * each sequence's current length (sequences are left-aligned in the cache), each in
   * 0..maxT; rows with pos[b]+t >= maxT are padding (not appended, output 0). The kernel
   * does not change pos. Tq = prompt length prefills, Tq = 1 decodes; prompts of different
   * lengths share a call right-padded to one Tq (padding rows write junk past each
   * sequence's length, which nothing reads before it is overwritten).
   * kcache and vcache are outputs (rows are written) that are also read.
   */
  attentionDecode: {
    args: [
      out('out', 'B*Tq*C'), out('kcache', 'B*maxT*C'), out('vcache', 'B*maxT*C'), inp('qkv', 'B*Tq*3*C'),
      // Each position in 0..maxT; rows that would land past the cache are padding (skipped).
      ids('pos', 'B', '<= maxT'),
      dim('B'), dim('Tq'), dim('C'), dim('NH'), dim('maxT'),
    ],
    constraints: ['C % NH == 0', 'Tq <= maxT'],
    scratch: true,
  },
  /**
   * attentionDecode over a bf16 cache: kcache, vcache (B,NH,maxT,HS) hold bf16 bits. The
   * appended rows are bf16(k), bf16(v) (round to nearest even), and attention reads every
   * cache row widened, the new ones included, computing in f32: the f32 kernel over
   * bf16-rounded k and v.
   */
  attentionDecodeBf16: {
    args: [
      out('out', 'B*Tq*C'), compactOut('kcache', 'B*maxT*C', 'bf16'), compactOut('vcache', 'B*maxT*C', 'bf16'), inp('qkv', 'B*Tq*3*C'),
      ids('pos', 'B', '<= maxT'),
      dim('B'), dim('Tq'), dim('C'), dim('NH'), dim('maxT'),
    ],
    constraints: ['C % NH == 0', 'Tq <= maxT'],
    scratch: true,
  },

  /** out (N) = gelu(inp (N)), tanh approximation. */
  geluForward: { args: [out('out', 'N'), inp('inp', 'N'), dim('N')] },
  /** dinp (N) += gelu'(inp (N)) · dout (N); overwrite writes dinp. */
  geluBackward: { args: [out('dinp', 'N'), inp('inp', 'N'), inp('dout', 'N'), dim('N'), flag('overwrite')] },

  /** out (N) = inp1 (N) + inp2 (N). */
  residualForward: { args: [out('out', 'N'), inp('inp1', 'N'), inp('inp2', 'N'), dim('N')] },
  /** dinp1 (N) += dout (N); dinp2 (N) += dout. */
  residualBackward: { args: [out('dinp1', 'N'), out('dinp2', 'N'), inp('dout', 'N'), dim('N')] },

  /** out (R,C) = inp (R,C): whole rows (a KV-cache slot forked into another). */
  copyRows: { args: [out('out', 'R*C'), inp('inp', 'R*C'), dim('R'), dim('C')] },
  /** The same for bf16 rows (a slot of a bf16 KV cache). */
  copyRowsBf16: { args: [compactOut('out', 'R*C', 'bf16'), compactInp('inp', 'R*C', 'bf16'), dim('R'), dim('C')] },
  /** out (F,C) = inp (N,C) at rows (F, i32), each in 0..N-1; accumulate adds them to out instead. */
  gatherRows: {
    args: [out('out', 'F*C'), table('inp', 'C', { count: 'N' }), ids('rows', 'F', '< N'), dim('F'), dim('C'), flag('accumulate')],
  },
  /** dinp (N,C) at rows (F, i32) += dout (F,C), in the order f = 0..F-1: the backward of gatherRows. */
  scatterAddRows: {
    args: [table('dinp', 'C', { count: 'N', output: true }), inp('dout', 'F*C'), ids('rows', 'F', '< N'), dim('F'), dim('C')],
  },

  /** losses (N) = cross-entropy of softmax(logits (N,V)) at targets (N, i32); 0 where target == ignoreIndex. */
  crossentropyForward: {
    args: [out('losses', 'N'), inp('logits', 'N*V'), ids('targets', 'N', '< V', 'ignoreIndex'), dim('N'), dim('V'), scalar('ignoreIndex', 'int32')],
  },
  /** dlogits (N,V) += (softmax(logits) - onehot(targets)) · dlosses (N); ignored rows get nothing; overwrite writes dlogits. */
  crossentropyBackward: {
    args: [
      out('dlogits', 'N*V'), inp('dlosses', 'N'), inp('logits', 'N*V'), ids('targets', 'N', '< V', 'ignoreIndex'),
      dim('N'), dim('V'), scalar('ignoreIndex', 'int32'), flag('overwrite'),
    ],
  },

  /** Inverted dropout of inp (N) into out (N), mask from the counter RNG (seed, stream, element index). */
  dropoutForward: { args: [out('out', 'N'), inp('inp', 'N'), dim('N'), dropout(false)] },
  /** dinp (N) += the dropout mask's gradient of dout (N). */
  dropoutBackward: { args: [out('dinp', 'N'), inp('dout', 'N'), dim('N'), dropout(false)] },

  /** One AdamW step over params/grads/m/v (each N); step counts from 1. */
  adamwUpdate: {
    args: [
      out('params', 'N'), inp('grads', 'N'), out('m', 'N'), out('v', 'N'), dim('N'),
      scalar('lr', 'finite'), scalar('beta1', 'unit'), scalar('beta2', 'unit'), scalar('eps', 'finite'), scalar('weightDecay', 'finite'), scalar('step', 'step'),
    ],
  },

  /** Σ x (N)², accumulated in float64. */
  sumSquares: { args: [inp('x', 'N'), dim('N')], returns: 'number' },
  /** x (N) *= s. */
  scale: { args: [out('x', 'N'), dim('N'), scalar('s', 'finite')] },
} as const satisfies Record<string, KernelDef>;

export type KernelName = keyof typeof KERNELS;

/** The kernels' names, in table order. */
export const KERNEL_NAMES = Object.freeze(Object.keys(KERNELS)) as readonly KernelName[];

/** Rows of a packed weight (packWeight, matmulForwardPacked) with OC rows: OC rounded up to a multiple of 192. */
export function packedRows(OC: number): number {
  return Math.ceil(OC / 192) * 192;
}

// ---- types derived from the table ----

type Returns<D> = D extends { returns: 'number' } ? number : void;

/** The TypeScript type of one argument: Buf for f32 tensors, Ids for i32 ones, Bf16 / I8 for compact weights. */
type Param<A, Buf, Ids, Bf16, I8> = A extends { dtype: 'bf16' }
  ? Bf16
  : A extends { dtype: 'i8' }
    ? I8
    : A extends { role: 'out' | 'inp' | 'table'; nullable: true }
  ? Buf | null
  : A extends { role: 'out' | 'inp' | 'table' }
    ? Buf
    : A extends { role: 'ids' }
      ? Ids
      : A extends { role: 'dim' | 'scalar' }
        ? number
        : A extends { role: 'flag' }
          ? boolean
          : A extends { role: 'dropout' }
            ? DropoutSpec
            : never;

// (Tuple element names cannot be made from the table's strings, so each parameter is named
// after its role: out, inp, table, ids, dim, scalar, flag, dropout. The doc comment of the
// table's entry says what each argument is.)
type Params<As, Buf, Ids, Bf16, I8> = As extends readonly [infer H, ...infer R]
  ? H extends { role: 'flag' }
    ? [flag?: boolean, ...rest: Params<R, Buf, Ids, Bf16, I8>]
    : H extends { role: 'dropout'; optional: true }
      ? [dropout?: DropoutSpec, ...rest: Params<R, Buf, Ids, Bf16, I8>]
      : H extends { role: 'dropout' }
        ? [dropout: DropoutSpec, ...rest: Params<R, Buf, Ids, Bf16, I8>]
        : H extends { role: 'out' }
          ? [out: Param<H, Buf, Ids, Bf16, I8>, ...rest: Params<R, Buf, Ids, Bf16, I8>]
          : H extends { role: 'inp' }
            ? [inp: Param<H, Buf, Ids, Bf16, I8>, ...rest: Params<R, Buf, Ids, Bf16, I8>]
            : H extends { role: 'table' }
              ? [table: Param<H, Buf, Ids, Bf16, I8>, ...rest: Params<R, Buf, Ids, Bf16, I8>]
              : H extends { role: 'ids' }
                ? [ids: Param<H, Buf, Ids, Bf16, I8>, ...rest: Params<R, Buf, Ids, Bf16, I8>]
                : H extends { role: 'dim' }
                  ? [dim: number, ...rest: Params<R, Buf, Ids, Bf16, I8>]
                  : [scalar: number, ...rest: Params<R, Buf, Ids, Bf16, I8>]
  : [];

/** The parameter list of kernel K, with tensors named by Buf (f32) and Ids (i32). */

/**
 * The kernels, generic over how a buffer is named: `Tensor` handles on the public Backend,
 * resolved storage (a typed-array view or a wasm pointer) inside each implementation, and
 * plain arrays in the reference kernels (which also run in float64 for gradient checks).
 * `Ids` names the i32 buffers (token ids, targets, positions) where they differ, `Bf16` and
 * `I8` the compact weights (typed arrays: Uint16Array and Int8Array).
 * Derived from KERNELS: see each entry there for the shapes.
 */
export type Kernels<Buf, Ids = Buf, Bf16 = Ids, I8 = Ids> = {
  [K in keyof typeof KERNELS]: (...args: Params<(typeof KERNELS)[K]['args'], Buf, Ids, Bf16, I8>) => Returns<(typeof KERNELS)[K]>;
};

/** Kernels over typed arrays, as the native addon and the reference backend take them. */
export type TypedKernels<F = Float32Array> = Kernels<F, Int32Array, Uint16Array, Int8Array>;

// ---- the native addon's and the wasm module's kernel exports ----

type NativeParam<A> = A extends { dtype: 'bf16' } ? Uint16Array : A extends { dtype: 'i8' } ? Int8Array : A extends { role: 'ids' } ? Int32Array : A extends { role: 'out' | 'inp' | 'table'; nullable: true } ? Float32Array | null : A extends { role: 'out' | 'inp' | 'table' } ? Float32Array : number;
/** The addon's parameters: as Kernels<Float32Array, Int32Array>, with a dropout spec as p, seed, stream. */
type NativeParams<As> = As extends readonly [infer H, ...infer R]
  ? H extends { role: 'dropout' }
    ? [p: number, seed: number, stream: number, ...rest: NativeParams<R>]
    : H extends { role: 'flag' }
      ? [flag?: boolean, ...rest: NativeParams<R>]
      : [arg: NativeParam<H>, ...rest: NativeParams<R>]
  : [];

/** The kernel exports of the native addon (crates/node): same names as KERNELS. */
export type NativeKernels = {
  [K in keyof typeof KERNELS]: (...args: NativeParams<(typeof KERNELS)[K]['args']>) => Returns<(typeof KERNELS)[K]>;
};

/** The wasm parameters: every tensor a pointer (0 for null), flags 0/1, a dropout spec as p, seed, stream. */
type WasmParams<As> = As extends readonly [infer _H, ...infer R]
  ? _H extends { role: 'dropout' }
    ? [p: number, seed: number, stream: number, ...rest: WasmParams<R>]
    : [arg: number, ...rest: WasmParams<R>]
  : [];
type WasmReturns<D> = D extends { returns: 'number' } ? number : D extends { scratch: true } ? number : void;

type Snake<S extends string> = S extends `${infer H}${infer R}` ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${Snake<R>}` : S;
/** The wasm export name of a kernel: its name in snake_case (encoderForward → encoder_forward). */
export type WasmName<K extends string> = Snake<K>;

export function wasmName<K extends string>(name: K): WasmName<K> {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) as WasmName<K>;
}

/** The kernel exports of the wasm module (crates/wasm): snake_case names, pointers for tensors. */
export type WasmKernels = {
  [K in keyof typeof KERNELS as WasmName<K>]: (...args: WasmParams<(typeof KERNELS)[K]['args']>) => WasmReturns<(typeof KERNELS)[K]>;
};
