// Activation planning: every buffer the forward pass writes (and, for training, its
// gradient) is a view into one backend tensor, laid out once per (B, T). The base tensor is
// re-allocated only when B·T grows; a new (B, T) with B·T within capacity only re-cuts the
// views (kernels check exact lengths, so views must have exactly the current size).
// ActivationPlan owns those tensors for a model (llm.c style: planned per (B, T), reused
// by every pass of that size), and counts the passes that write them, so that a training
// pass can tell whether its activations are still its own.

import type { Backend, DType, Tensor } from '../backend/backend.js';
import type { GPTConfig } from './config.js';
import { siteFeatures, type LoraShape, type LoraSite } from './lora.js';

/** A LoRA branch's buffers at one site (lora.ts): forward activations, or their gradients. */
export interface LoraActs<T> {
  u: T; // (B, T, r)  s · drop(x) Aᵀ
  xDrop: T | null; // (B, T, C_in)  drop(x), only when the adapter has dropout
}

export interface LayerActs<T> {
  ln1: T; // (B, T, C)
  ln1Mean: T; // (B, T)
  ln1Rstd: T; // (B, T)
  qkv: T; // (B, T, 3C)
  atty: T; // (B, T, C)  attention output, before c_proj
  lse: T; // (B, NH, T) log-sum-exp of each attention row, saved for backward
  attproj: T; // (B, T, C)
  attprojDrop: T | null; // (B, T, C)  dropout(attproj), only when dropout > 0
  res2: T; // (B, T, C)  x + attention branch
  ln2: T; // (B, T, C)
  ln2Mean: T; // (B, T)
  ln2Rstd: T; // (B, T)
  fch: T; // (B, T, 4C)
  fchGelu: T; // (B, T, 4C)
  fcproj: T; // (B, T, C)
  fcprojDrop: T | null; // (B, T, C)
  res3: T; // (B, T, C)  block output (pre-LN) / input of ln_2 (post-LN)
  /** The LoRA branches' buffers by site, when an adapter is attached (every site any layer adapts). */
  lora: Partial<Record<LoraSite, LoraActs<T>>> | null;
}

export interface Acts<T> {
  encoded: T; // (B, T, C)  wte[ids] + wpe
  encodedDrop: T | null; // (B, T, C)
  layers: Array<LayerActs<T>>;
  lnf: T | null; // (B, T, C)  final LayerNorm (pre-LN models only)
  lnfMean: T | null; // (B, T)
  lnfRstd: T | null; // (B, T)
  logits: T; // (B, T, V)
  losses: T; // (B, T)
}

/** Lays out the activations for (B, T) (and an attached adapter's branches); `take(n)` hands out the next n floats. */
export function layoutActivations<T>(cfg: GPTConfig, B: number, T: number, take: (n: number) => T, lora: LoraShape | null = null): Acts<T> {
  const { nLayer: L } = cfg;
  const N = B * T;
  const C = cfg.nEmbd;
  const drop = cfg.dropout > 0;
  const encoded = take(N * C);
  const encodedDrop = drop ? take(N * C) : null;
  const layers: Array<LayerActs<T>> = [];
  for (let l = 0; l < L; l++) layers.push(layoutLayerActs(cfg, B, T, take, lora));
  return { encoded, encodedDrop, layers, ...layoutTail(cfg, B, T, take) };
}

/** The buffers of one block for (B, T), with an attached adapter's branches. */
export function layoutLayerActs<T>(cfg: GPTConfig, B: number, T: number, take: (n: number) => T, lora: LoraShape | null = null): LayerActs<T> {
  const { nEmbd: C, nHead: NH } = cfg;
  const N = B * T;
  const drop = cfg.dropout > 0;
  return {
    ln1: take(N * C), ln1Mean: take(N), ln1Rstd: take(N),
    qkv: take(N * 3 * C), atty: take(N * C), lse: take(B * NH * T),
    attproj: take(N * C), attprojDrop: drop ? take(N * C) : null,
    res2: take(N * C),
    ln2: take(N * C), ln2Mean: take(N), ln2Rstd: take(N),
    fch: take(N * 4 * C), fchGelu: take(N * 4 * C),
    fcproj: take(N * C), fcprojDrop: drop ? take(N * C) : null,
    res3: take(N * C),
    lora: lora === null ? null : layoutLoraActs(lora, C, N, take),
  };
}

function layoutLoraActs<T>(lora: LoraShape, C: number, N: number, take: (n: number) => T): Partial<Record<LoraSite, LoraActs<T>>> {
  const out: Partial<Record<LoraSite, LoraActs<T>>> = {};
  for (const site of lora.sites) out[site] = { u: take(N * lora.rank), xDrop: lora.dropout ? take(N * siteFeatures(site, C).inF) : null };
  return out;
}

/**
 * The GRADIENT activations, llm.c style: gradients inside a block are needed only while
 * that block is backpropagated, so every block shares `shared` (one block's buffers) and
 * only the embeddings, the head and, in post-LN models, the residual stream between
 * blocks (each block's output, ln2) get buffers of their own, from `take`. Pre-LN models keep the
 * stream's gradient in the first block's input gradient (Blocks.preLNBackward, blocks.ts).
 * L times less memory than layoutActivations, and the shared set stays warm in cache from
 * one block to the next.
 */
export function layoutGradActivations<T>(cfg: GPTConfig, B: number, T: number, shared: LayerActs<T>, dlogits: T, take: (n: number) => T): Acts<T> {
  const N = B * T;
  const C = cfg.nEmbd;
  const drop = cfg.dropout > 0;
  const encoded = take(N * C);
  const encodedDrop = drop ? take(N * C) : null;
  const layers: Array<LayerActs<T>> = [];
  for (let l = 0; l < cfg.nLayer; l++) layers.push(cfg.postLN ? { ...shared, ln2: take(N * C) } : shared);
  return { encoded, encodedDrop, layers, ...layoutTail(cfg, B, T, take, dlogits) };
}

function layoutTail<T>(cfg: GPTConfig, B: number, T: number, take: (n: number) => T, logits?: T): Pick<Acts<T>, 'lnf' | 'lnfMean' | 'lnfRstd' | 'logits' | 'losses'> {
  const N = B * T;
  const { nEmbd: C, vocabSize: V } = cfg;
  const pre = !cfg.postLN;
  return {
    lnf: pre ? take(N * C) : null, lnfMean: pre ? take(N) : null, lnfRstd: pre ? take(N) : null,
    logits: logits ?? take(N * V), losses: take(N),
  };
}

/**
 * The activation memory of one model (or of its KV-cached decoder): the forward
 * activations and the (B, T) i32 ids / targets, and for training passes the gradient
 * activations, each set planned for the current (B, T) and re-cut only when it changes.
 */
export class ActivationPlan {
  private readonly actArena: Arena;
  // ids and targets apart: a write to one must not clear the other's writeTokens mark.
  private readonly idsArena: Arena;
  private readonly targetsArena: Arena;
  private readonly gradArena: Arena; // gradients of the residual stream, embeddings, head
  private readonly gradLayerArena: Arena; // gradients inside a block, shared by all blocks
  // dlogits (206 MB at GPT-2 small) apart, as the loss writes it whole: never zeroed.
  private readonly dlogitsArena: Arena;
  private fwd: { key: string; acts: Acts<Tensor>; ids: Tensor; targets: Tensor } | null = null;
  private bwd: { key: string; grads: Acts<Tensor> } | null = null;
  private passes = 0;
  private lora: LoraShape | null = null;

  constructor(private readonly backend: Backend, private readonly config: Readonly<GPTConfig>) {
    this.actArena = new Arena(backend);
    this.idsArena = new Arena(backend, 'i32');
    this.targetsArena = new Arena(backend, 'i32');
    this.gradArena = new Arena(backend);
    this.gradLayerArena = new Arena(backend);
    this.dlogitsArena = new Arena(backend);
  }

  /**
   * Plans the buffers of an attached adapter's branches from now on (null: none). The
   * memory is cut anew at the next pass, so a pass in progress is over (`generation`).
   */
  setLora(shape: LoraShape | null): void {
    this.lora = shape;
    this.fwd = null;
    this.bwd = null;
    this.passes++;
  }

  /**
   * The ids (B, T) and targets (B, T) tensors of a pass at (B, T), for the model to write
   * (and check) its inputs into before the pass starts. Re-planning for a new (B, T) ends
   * the current pass (`generation` changes): its memory is cut anew.
   */
  tokens(B: number, T: number): { ids: Tensor; targets: Tensor } {
    const key = `${B}x${T}`;
    if (this.fwd === null || this.fwd.key !== key) {
      const acts = this.actArena.cut((take) => layoutActivations(this.config, B, T, take, this.lora));
      const [ids] = this.idsArena.cut((take) => [take(B * T)]);
      const [targets] = this.targetsArena.cut((take) => [take(B * T)]);
      this.fwd = { key, acts, ids, targets };
      this.passes++;
    }
    return this.fwd;
  }

  /**
   * The forward activations for a pass at (B, T), with its ids and targets tensors (see
   * tokens). Each call starts a new pass over them: `generation` changes.
   */
  forward(B: number, T: number): { acts: Acts<Tensor>; ids: Tensor; targets: Tensor } {
    this.tokens(B, T);
    this.passes++;
    return this.fwd!;
  }

  /** Counts the passes started by forward(): an activation is the latest pass's while this is unchanged. */
  get generation(): number {
    return this.passes;
  }

  /** The gradient activations for (B, T), zeroed but for dlogits (see layoutGradActivations). */
  zeroedGrads(B: number, T: number): Acts<Tensor> {
    const key = `${B}x${T}`;
    if (this.bwd === null || this.bwd.key !== key) {
      const shared = this.gradLayerArena.cut((take) => layoutLayerActs(this.config, B, T, take, this.lora));
      const [dlogits] = this.dlogitsArena.cut((take) => [take(B * T * this.config.vocabSize)]);
      this.bwd = { key, grads: this.gradArena.cut((take) => layoutGradActivations(this.config, B, T, shared, dlogits, take)) };
    }
    this.backend.zero(this.gradArena.tensor!);
    return this.bwd.grads;
  }

  dispose(): void {
    for (const a of [this.actArena, this.gradArena, this.gradLayerArena, this.dlogitsArena, this.idsArena, this.targetsArena]) a.dispose();
    this.fwd = null;
    this.bwd = null;
  }
}

/**
 * One backend tensor cut into views. `cut(sizes)` returns views of exactly those lengths,
 * back to back; the base grows (and is re-allocated) only when the total exceeds capacity.
 */
export class Arena {
  private base: Tensor | null = null;
  private capacity = 0;
  private views: Tensor[] = [];

  constructor(private readonly backend: Backend, private readonly dtype: DType = 'f32') {}

  /** The whole base tensor (for zeroing); null before the first cut. */
  get tensor(): Tensor | null {
    return this.base;
  }

  /** Calls `layout` with a `take` that hands out consecutive views. */
  cut<R>(layout: (take: (n: number) => Tensor) => R): R {
    // Pass 1: size only (take returns a placeholder that is never used).
    let total = 0;
    layout((n) => {
      total += n;
      return null as unknown as Tensor;
    });
    this.release();
    if (this.base === null || total > this.capacity) {
      if (this.base !== null) this.backend.free(this.base);
      this.base = this.backend.alloc(Math.max(total, 1), this.dtype);
      this.capacity = Math.max(total, 1);
    }
    const base = this.base;
    let offset = 0;
    return layout((n) => {
      const v = this.backend.view(base, offset, n);
      offset += n;
      this.views.push(v);
      return v;
    });
  }

  dispose(): void {
    this.release();
    if (this.base !== null) this.backend.free(this.base);
    this.base = null;
    this.capacity = 0;
  }

  private release(): void {
    for (const v of this.views) this.backend.free(v);
    this.views = [];
  }
}
