// Parameter layout: every weight of the model lives in ONE contiguous f32 buffer (and its
// gradient in a second buffer with the same layout; AdamW's m and v likewise), so that
// zeroGrad, gradient clipping and checkpointing are single calls over one tensor. Each
// parameter is a named (offset, length) range; names follow Hugging Face GPT-2.
//
// Matmul weights are stored (OC, C), the llm.c / nn.Linear layout our kernels take. HF's
// GPT-2 Conv1D stores the same weights transposed, (C, OC); see src/io/hf-gpt2.ts for the conversion.

import type { Backend, Tensor } from '../backend/backend.js';
import type { GPTConfig } from './config.js';

export interface ParamSpec {
  /** Hugging Face GPT-2 name, e.g. transformer.h.0.attn.c_attn.weight. */
  name: string;
  /** Our layout: (OC, C) for matmul weights. */
  shape: number[];
  offset: number;
  length: number;
  /** How init.ts fills it. */
  init: 'normal' | 'normal-proj' | 'ones' | 'zeros';
}

/** One block's parameters; W is the type of the matmul weights, which a model may hold in a compact dtype (weights.ts). */
export interface BlockParams<T, W = T> {
  ln1w: T; ln1b: T | null;
  qkvw: W; qkvb: T | null; // (3C, C), (3C)
  attprojw: W; attprojb: T | null; // (C, C), (C)
  ln2w: T; ln2b: T | null;
  fcw: W; fcb: T | null; // (4C, C), (4C)
  fcprojw: W; fcprojb: T | null; // (C, 4C), (C)
}

export interface ModelParams<T, W = T> {
  wte: W; // (V, C)
  wpe: T; // (maxT, C)
  blocks: Array<BlockParams<T, W>>;
  lnfw: T | null; lnfb: T | null; // (C); absent in post-LN (GPT-1) models
}

/** The layout of the parameter buffer for a config, in Hugging Face's order. */
export function paramLayout(cfg: GPTConfig): { specs: ParamSpec[]; total: number } {
  const { vocabSize: V, blockSize: maxT, nEmbd: C, nLayer: L, bias, postLN } = cfg;
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], init: ParamSpec['init']): void => {
    const length = shape.reduce((a, b) => a * b, 1);
    specs.push({ name, shape, offset, length, init });
    offset += length;
  };
  add('transformer.wte.weight', [V, C], 'normal');
  add('transformer.wpe.weight', [maxT, C], 'normal');
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}.`;
    add(p + 'ln_1.weight', [C], 'ones');
    if (bias) add(p + 'ln_1.bias', [C], 'zeros');
    add(p + 'attn.c_attn.weight', [3 * C, C], 'normal');
    if (bias) add(p + 'attn.c_attn.bias', [3 * C], 'zeros');
    add(p + 'attn.c_proj.weight', [C, C], 'normal-proj');
    if (bias) add(p + 'attn.c_proj.bias', [C], 'zeros');
    add(p + 'ln_2.weight', [C], 'ones');
    if (bias) add(p + 'ln_2.bias', [C], 'zeros');
    add(p + 'mlp.c_fc.weight', [4 * C, C], 'normal');
    if (bias) add(p + 'mlp.c_fc.bias', [4 * C], 'zeros');
    add(p + 'mlp.c_proj.weight', [C, 4 * C], 'normal-proj');
    if (bias) add(p + 'mlp.c_proj.bias', [C], 'zeros');
  }
  if (!postLN) {
    add('transformer.ln_f.weight', [C], 'ones');
    if (bias) add('transformer.ln_f.bias', [C], 'zeros');
  }
  return { specs, total: offset };
}

/**
 * Groups per-parameter handles (views) into the structure the forward pass walks. W: the
 * handles of the matmul weights and wte, when they differ (a compact model's, weights.ts).
 */
export function structure<T, W = T>(cfg: GPTConfig, byName: Map<string, T | W>): ModelParams<T, W> {
  const get = <X>(name: string): X => {
    const t = byName.get(name);
    if (t === undefined) throw new Error(`internal: parameter ${name} missing from layout`);
    return t as X;
  };
  const opt = (name: string): T | null => (byName.get(name) as T | undefined) ?? null;
  const blocks: Array<BlockParams<T, W>> = [];
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `transformer.h.${l}.`;
    blocks.push({
      ln1w: get<T>(p + 'ln_1.weight'), ln1b: opt(p + 'ln_1.bias'),
      qkvw: get<W>(p + 'attn.c_attn.weight'), qkvb: opt(p + 'attn.c_attn.bias'),
      attprojw: get<W>(p + 'attn.c_proj.weight'), attprojb: opt(p + 'attn.c_proj.bias'),
      ln2w: get<T>(p + 'ln_2.weight'), ln2b: opt(p + 'ln_2.bias'),
      fcw: get<W>(p + 'mlp.c_fc.weight'), fcb: opt(p + 'mlp.c_fc.bias'),
      fcprojw: get<W>(p + 'mlp.c_proj.weight'), fcprojb: opt(p + 'mlp.c_proj.bias'),
    });
  }
  return {
    wte: get<W>('transformer.wte.weight'),
    wpe: get<T>('transformer.wpe.weight'),
    blocks,
    lnfw: opt('transformer.ln_f.weight'),
    lnfb: opt('transformer.ln_f.bias'),
  };
}

/**
 * One contiguous f32 tensor holding every parameter (or every gradient) in paramLayout's
 * order, with a view per parameter, by name and in the structure the passes walk.
 */
export class ParamTensors {
  readonly views = new Map<string, Tensor>();
  readonly tree: ModelParams<Tensor>;

  constructor(backend: Backend, cfg: GPTConfig, specs: readonly ParamSpec[], readonly buffer: Tensor) {
    for (const s of specs) this.views.set(s.name, backend.view(buffer, s.offset, s.length));
    this.tree = structure(cfg, this.views);
  }
}
