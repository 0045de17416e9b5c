// GPT configuration: the hyper-parameters of GPT.create, their defaults and validation.
//
// The mapping to and from a Hugging Face GPT-2 config.json is not here but in
// src/io/hf-gpt2.ts, next to the tensor mapping of model.safetensors: config.json and
// model.safetensors are one format (a folder), and which HF field stands for which of ours
// (n_positions for blockSize, resid_pdrop for dropout, the `ferrogpt` section for what HF
// has no name for) is knowledge of that format, like Conv1D's transposed weights. This file
// knows no file format; its resolveConfig is what every reader ends in.

export interface GPTConfig {
  /** Number of token ids (V). */
  vocabSize: number;
  /** Longest sequence the learned position table covers (maxT). */
  blockSize: number;
  nLayer: number;
  nHead: number;
  /** Channels (C); must be divisible by nHead. */
  nEmbd: number;
  /** Dropout probability on embeddings, attention weights and residual branches (training only). */
  dropout: number;
  /** Biases in the linear layers and LayerNorms (nanoGPT's `bias`); GPT-2 checkpoints have them. */
  bias: boolean;
  /** GPT-1 post-LayerNorm blocks (x = ln(x + f(x)), no final ln_f) instead of GPT-2 pre-LN. */
  postLN: boolean;
  /** Seed of the weight initialisation and of the dropout masks (u32). */
  seed: number;
}

export type GPTConfigInput = Pick<GPTConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nHead' | 'nEmbd'> &
  Partial<Pick<GPTConfig, 'dropout' | 'bias' | 'postLN' | 'seed'>>;

/** Fills defaults and checks every field; throws an Error naming the bad one. */
export function resolveConfig(input: GPTConfigInput): GPTConfig {
  if (input === null || typeof input !== 'object') throw new Error('GPT config must be an object');
  const cfg: GPTConfig = {
    vocabSize: input.vocabSize,
    blockSize: input.blockSize,
    nLayer: input.nLayer,
    nHead: input.nHead,
    nEmbd: input.nEmbd,
    dropout: input.dropout ?? 0,
    bias: input.bias ?? true,
    postLN: input.postLN ?? false,
    seed: input.seed ?? 1337,
  };
  for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new Error(`GPT config: ${k} must be a positive integer, got ${String(v)}`);
    }
  }
  if (cfg.nEmbd % cfg.nHead !== 0) {
    throw new Error(`GPT config: nEmbd (${cfg.nEmbd}) must be divisible by nHead (${cfg.nHead})`);
  }
  if (typeof cfg.dropout !== 'number' || !(cfg.dropout >= 0 && cfg.dropout < 1)) {
    throw new Error(`GPT config: dropout must be in [0, 1), got ${String(cfg.dropout)}`);
  }
  if (typeof cfg.bias !== 'boolean') throw new Error(`GPT config: bias must be a boolean, got ${String(cfg.bias)}`);
  if (typeof cfg.postLN !== 'boolean') throw new Error(`GPT config: postLN must be a boolean, got ${String(cfg.postLN)}`);
  if (!Number.isInteger(cfg.seed) || cfg.seed < 0 || cfg.seed > 0xffffffff) {
    throw new Error(`GPT config: seed must be an integer in [0, 2^32), got ${String(cfg.seed)}`);
  }
  return cfg;
}
