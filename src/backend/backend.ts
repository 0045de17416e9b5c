// The Backend interface: the one boundary between TypeScript and the kernels.
//
// A backend owns tensor storage. TypeScript holds handles (Tensor: id, dtype, length);
// data crosses the boundary only through write() and read(). Kernel methods mirror the
// Rust kernels in crates/kernels one to one (same argument order: outputs, inputs, dims),
// so the three implementations — native (napi addon), wasm (linear memory) and reference
// (plain TypeScript, the executable specification) — are interchangeable.
//
// Conventions shared with the Rust kernels:
// - Dimension letters: B batch, T time, C channels, NH heads, V vocab, OC output
//   channels, N rows (usually B*T).
// - Backward methods ACCUMULATE (+=) into every gradient tensor; callers zero them. Where an
//   activation gradient often has a single contribution, an optional trailing `overwrite`
//   flag (matmulBackward's overwriteDinp, attentionBackward, geluBackward,
//   crossentropyBackward) writes it instead:
//   the same bits as zeroing it first, without the zeroing pass or the read-back.
// - Every method validates its arguments (see base.ts) and throws an Error naming the
//   offending argument; no input can crash the process or write out of bounds.
// - Output tensors must not overlap input tensors (views of one buffer that do not
//   overlap are fine).

export type DType = 'f32' | 'i32';
export type BackendName = 'native' | 'wasm' | 'reference';

/** A handle to backend-owned storage. Views share storage with their base tensor. */
export interface Tensor {
  readonly id: number;
  readonly dtype: DType;
  readonly length: number;
}

export interface BackendInfo {
  name: BackendName;
  /** Instruction set the kernels run with: 'avx512', 'avx2', 'neon', 'simd128', 'scalar', or 'none' (reference). */
  simd: string;
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

/**
 * The kernels, generic over how a buffer is named: `Tensor` handles on the public Backend,
 * resolved storage (a typed-array view or a wasm pointer) inside each implementation, and
 * plain arrays in the reference kernels (which also run in float64 for gradient checks).
 * Shapes are in the comments; the maths is in crates/kernels.
 */
export interface Kernels<Buf> {
  /** out (B,T,C) = wte[ids] + wpe[t]; ids (B,T) i32 in 0..V where V = wte.length / C. */
  encoderForward(out: Buf, ids: Buf, wte: Buf, wpe: Buf, B: number, T: number, C: number): void;
  encoderBackward(dwte: Buf, dwpe: Buf, dout: Buf, ids: Buf, B: number, T: number, C: number): void;

  /** out (N,C), mean (N), rstd (N) from inp (N,C), weight (C), bias (C). eps 1e-5. */
  layernormForward(out: Buf, mean: Buf, rstd: Buf, inp: Buf, weight: Buf, bias: Buf, N: number, C: number): void;
  layernormBackward(dinp: Buf, dweight: Buf, dbias: Buf, dout: Buf, inp: Buf, weight: Buf, mean: Buf, rstd: Buf, N: number, C: number): void;

  /** out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); bias may be null. */
  matmulForward(out: Buf, inp: Buf, weight: Buf, bias: Buf | null, N: number, C: number, OC: number): void;
  matmulBackward(dinp: Buf, dweight: Buf, dbias: Buf | null, dout: Buf, inp: Buf, weight: Buf, N: number, C: number, OC: number, overwriteDinp?: boolean): void;

  /** Causal self-attention: out (B,T,C), lse (B,NH,T) from qkv (B,T,3C). */
  attentionForward(out: Buf, lse: Buf, qkv: Buf, B: number, T: number, C: number, NH: number, dropout?: DropoutSpec): void;
  attentionBackward(dqkv: Buf, dout: Buf, qkv: Buf, out: Buf, lse: Buf, B: number, T: number, C: number, NH: number, dropout?: DropoutSpec, overwrite?: boolean): void;

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
  attentionDecode(out: Buf, kcache: Buf, vcache: Buf, qkv: Buf, pos: Buf, B: number, Tq: number, C: number, NH: number, maxT: number): void;

  /** out (N) = gelu(inp (N)), tanh approximation. */
  geluForward(out: Buf, inp: Buf, N: number): void;
  geluBackward(dinp: Buf, inp: Buf, dout: Buf, N: number, overwrite?: boolean): void;

  /** out (N) = inp1 (N) + inp2 (N). */
  residualForward(out: Buf, inp1: Buf, inp2: Buf, N: number): void;
  residualBackward(dinp1: Buf, dinp2: Buf, dout: Buf, N: number): void;

  /** losses (N) = cross-entropy of softmax(logits (N,V)) at targets (N, i32); 0 where target == ignoreIndex. */
  crossentropyForward(losses: Buf, logits: Buf, targets: Buf, N: number, V: number, ignoreIndex: number): void;
  crossentropyBackward(dlogits: Buf, dlosses: Buf, logits: Buf, targets: Buf, N: number, V: number, ignoreIndex: number, overwrite?: boolean): void;

  /** Inverted dropout, mask from the counter RNG (seed, stream, element index). */
  dropoutForward(out: Buf, inp: Buf, N: number, dropout: DropoutSpec): void;
  dropoutBackward(dinp: Buf, dout: Buf, N: number, dropout: DropoutSpec): void;

  /** One AdamW step over params/grads/m/v (each N); step counts from 1. */
  adamwUpdate(params: Buf, grads: Buf, m: Buf, v: Buf, N: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;

  /** Σ x², accumulated in float64. */
  sumSquares(x: Buf, N: number): number;
  /** x *= s. */
  scale(x: Buf, N: number, s: number): void;
}

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
  /** Copies `data` into t starting at element `offset` (default 0). dtype must match. */
  write(t: Tensor, data: Float32Array | Int32Array, offset?: number): void;
  /** Copies elements [offset, offset + length) out of t (defaults: the whole tensor). */
  read(t: Tensor, offset?: number, length?: number): Float32Array | Int32Array;
  /** Sets every element of t to 0. */
  zero(t: Tensor): void;
}
