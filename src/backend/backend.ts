// The Backend interface: the one boundary between TypeScript and the kernels.
//
// A backend owns tensor storage. TypeScript holds handles (Tensor: id, dtype, length);
// data crosses the boundary only through write(), writeTokens() and read(). Kernel methods
// mirror the Rust kernels in crates/kernels one to one (same argument order: outputs,
// inputs, dims), so the three implementations — native (napi addon), wasm (linear memory)
// and reference (plain TypeScript, the executable specification) — are interchangeable.
// The kernels are declared once, in the registry (kernels.ts): names, arguments, shapes;
// the Backend's kernel methods, their checks and the adapters are derived from it.
//
// Conventions shared with the Rust kernels:
// - Dimension letters: B batch, T time, C channels, NH heads, V vocab, OC output
//   channels, N rows (usually B*T).
// - Backward methods ACCUMULATE (+=) into every gradient tensor; callers zero them. Where an
//   activation gradient often has a single contribution, an optional trailing `overwrite`
//   flag (matmulBackward's overwriteDinp, attentionBackward, geluBackward,
//   crossentropyBackward) writes it instead:
//   the same bits as zeroing it first, without the zeroing pass or the read-back.
// - Every method validates its arguments (base.ts, from the registry's argument roles) and
//   throws an Error naming the offending argument; no input can crash the process or write
//   out of bounds.
// - Token ids (an i32 argument with a range, e.g. ids < V) are scanned on every call,
//   unless the tensor was filled by writeTokens() with the same or a tighter range and
//   nothing has written to its storage since (see writeTokens).
// - Output tensors must not overlap input tensors (views of one buffer that do not
//   overlap are fine).

import type { Kernels } from './kernels.js';

/**
 * Element types of tensors: f32 (activations, parameters), i32 (token ids), and the compact
 * weights: bf16 (stored as its 16 bits, Uint16Array) and i8 (int8 blocks, with an f32 tensor
 * of scales beside them; see crates/kernels/src/compact.rs).
 */
export type DType = 'f32' | 'i32' | 'bf16' | 'i8';

/** The typed array that holds each dtype's elements (what write takes and read returns). */
export const DTYPE_ARRAYS = Object.freeze({ f32: Float32Array, i32: Int32Array, bf16: Uint16Array, i8: Int8Array });

/** Data of any dtype, as a typed array. */
export type TypedData = Float32Array | Int32Array | Uint16Array | Int8Array;
export type BackendName = 'native' | 'wasm' | 'reference';

/** A handle to backend-owned storage. Views share storage with their base tensor. */
export interface Tensor {
  readonly id: number;
  readonly dtype: DType;
  readonly length: number;
}

export interface BackendInfo {
  name: BackendName;
  /** Instruction set the kernels run with: 'avx512', 'avx2', 'neon', 'relaxed-simd' (wasm with fused multiply-add), 'simd128', 'scalar', or 'none' (reference). */
  simd: string;
  /**
   * CPU extensions beyond `simd` that kernels use here (native x86: 'avx512bw', and
   * 'avx512bf16' for the bf16 kernels' vdpbf16ps, 'avx512vnni' for the int8 GEMV's
   * vpdpbusd); empty where only `simd` is used.
   */
  extensions: string[];
  threads: number;
  version: string;
}

/** Dropout settings; p = 0 disables dropout. seed and stream are u32 (see crates/kernels/src/rng.rs). */
export interface DropoutSpec {
  p: number;
  seed: number;
  stream: number;
}

export const NO_DROPOUT: DropoutSpec = Object.freeze({ p: 0, seed: 0, stream: 0 });

// Kernels<Buf>: the kernels, generic over how a buffer is named (Tensor handles on the
// Backend, typed arrays or wasm pointers inside the implementations). Derived from the
// registry (kernels.ts), where each kernel's arguments and shapes are declared.
export type { Kernels, KernelName } from './kernels.js';

export interface Backend extends Kernels<Tensor> {
  readonly name: BackendName;
  info(): BackendInfo;

  // ---- storage ----
  /** New zero-filled tensor of `length` elements. */
  alloc(length: number, dtype?: DType): Tensor;
  /** A tensor sharing storage with `base`, elements [offset, offset + length). */
  view(base: Tensor, offset: number, length: number): Tensor;
  /** Frees a tensor allocated with alloc (freeing it invalidates its views). Freeing a view only forgets the view. */
  free(t: Tensor): void;
  /** Copies `data` into t starting at element `offset` (default 0). Its array type must be t's dtype's (DTYPE_ARRAYS). */
  write(t: Tensor, data: TypedData, offset?: number): void;
  /**
   * Copies token ids into the i32 tensor t (at element `offset`, default 0) after checking
   * that each is in 0..V-1 or equals `allowed` (e.g. an ignore index); otherwise throws
   * `${caller}: ${name}[i] = id is out of range (must be in 0..V-1[, or allowed to skip])`, i the
   * index in `data`, and writes nothing.
   *
   * The tensor is then marked as holding validated ids: a later kernel call that takes t
   * as its ids (targets, pos) argument skips its O(N) scan when its own range is at least
   * as wide (V' >= V) and it allows the same value (or the mark allows none). The mark is on
   * this exact handle (a view or its base is scanned as before) and is cleared by anything
   * else that writes to t's storage, through any view: write(), zero(), a kernel output,
   * another writeTokens. A partial writeTokens (offset, or shorter data) keeps a mark only
   * where the rest of t was already marked; otherwise the next kernel call scans.
   */
  writeTokens(t: Tensor, data: Int32Array, V: number, caller: string, name?: string, allowed?: number, offset?: number): void;
  /** Copies elements [offset, offset + length) out of t (defaults: the whole tensor). */
  read(t: Tensor, offset?: number, length?: number): TypedData;
  /** Sets every element of t to 0. */
  zero(t: Tensor): void;
  /**
   * A number that changes whenever anything writes to t's storage (write, writeTokens,
   * zero, a kernel output, through any view): what a copy derived from t compares to know
   * it is stale (the bf16 weights of mixed-precision training).
   */
  version(t: Tensor): number;
}
