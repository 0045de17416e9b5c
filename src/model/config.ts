// GPT configuration: the hyper-parameters of GPT.create, their defaults and validation,
// and the mapping to / from a Hugging Face GPT-2 config.json.

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

/** Hugging Face GPT-2 config.json (the fields we read and write). */
export interface HFGPT2Config {
  model_type?: string;
  vocab_size: number;
  n_positions: number;
  n_ctx?: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  activation_function?: string;
  layer_norm_epsilon?: number;
  resid_pdrop?: number;
  embd_pdrop?: number;
  attn_pdrop?: number;
  [key: string]: unknown;
}

/**
 * Reads a Hugging Face GPT-2 config (or one written by GPT.save, which adds a `ferrogpt`
 * section for the fields HF has no name for: bias, postLN, seed).
 */
export function configFromHF(hf: HFGPT2Config): GPTConfig {
  if (hf === null || typeof hf !== 'object') throw new Error('config.json must hold a JSON object');
  for (const k of ['vocab_size', 'n_embd', 'n_layer', 'n_head'] as const) {
    if (typeof hf[k] !== 'number') throw new Error(`config.json: missing or non-numeric ${k}`);
  }
  const blockSize = typeof hf.n_positions === 'number' ? hf.n_positions : hf.n_ctx;
  if (typeof blockSize !== 'number') throw new Error('config.json: missing n_positions');
  const act = hf.activation_function;
  if (act !== undefined && act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new Error(`config.json: activation_function ${String(act)} is not supported (only tanh GELU, "gelu_new")`);
  }
  const eps = hf.layer_norm_epsilon;
  if (eps !== undefined && Math.abs(eps - 1e-5) > 1e-12) {
    throw new Error(`config.json: layer_norm_epsilon ${eps} is not supported (the kernels use 1e-5)`);
  }
  const extra = (hf.ferrogpt ?? {}) as Partial<GPTConfig>;
  // HF has one dropout per site; our kernels take one p for all, so use the residual one.
  const dropout = extra.dropout ?? hf.resid_pdrop ?? 0;
  return resolveConfig({
    vocabSize: hf.vocab_size,
    blockSize,
    nLayer: hf.n_layer,
    nHead: hf.n_head,
    nEmbd: hf.n_embd,
    dropout,
    bias: extra.bias,
    postLN: extra.postLN,
    seed: extra.seed,
  });
}

/** The config.json GPT.save writes: HF GPT-2 fields, plus our own under `ferrogpt`. */
export function configToHF(cfg: GPTConfig): HFGPT2Config {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: cfg.vocabSize,
    n_positions: cfg.blockSize,
    n_ctx: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    resid_pdrop: cfg.dropout,
    embd_pdrop: cfg.dropout,
    attn_pdrop: cfg.dropout,
    tie_word_embeddings: true,
    ferrogpt: { bias: cfg.bias, postLN: cfg.postLN, seed: cfg.seed, dropout: cfg.dropout },
  };
}
