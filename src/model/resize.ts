// Growing a model's vocabulary (for fine-tuning's start / delimiter / extract tokens) and
// rebuilding it with another dropout. GPT's config is frozen and its parameters live in one
// buffer sized by the config, so both make a NEW model on the same backend and copy the
// weights over; the model passed in is left as it was (dispose it if it is no longer needed).
//
// The lm head is tied to wte, so a new embedding row is also a new output row: the new
// token can be predicted (L1 during fine-tuning learns to) as well as read.

import { GPT } from './gpt.js';
import { normal } from './init.js';

export interface RebuildOptions {
  /** New vocabulary size (>= the current one); rows past the old size are new tokens. */
  vocabSize?: number;
  /** Dropout of the rebuilt model (default: the model's). */
  dropout?: number;
  /**
   * Token ids (inside the old vocabulary) whose rows are re-initialised as if new: e.g.
   * GPT-2's padding rows 50257..50303 when special tokens are given those ids.
   */
  reinitRows?: Iterable<number>;
}

// Draws for new rows come from their own stream of the model seed, apart from the init
// (0x10000 + k) and dropout (small numbers) streams, so they never repeat those numbers.
const NEW_ROWS_STREAM = 0x7e5e0000;

/**
 * A copy of `model` with a larger token embedding (new rows N(0, 0.02), as GPT-1 initialises
 * its added tokens) and/or another dropout. Everything else is copied bit for bit.
 */
export function rebuildGPT(model: GPT, options: RebuildOptions = {}): GPT {
  if (model.adapter !== null) throw new Error('rebuildGPT: the model has a LoRA adapter attached; merge or detach it first');
  const cfg = model.config;
  const V0 = cfg.vocabSize;
  const V = options.vocabSize ?? V0;
  if (!Number.isSafeInteger(V) || V < V0) throw new Error(`rebuildGPT: vocabSize must be an integer >= the current ${V0}, got ${String(options.vocabSize)}`);
  const C = cfg.nEmbd;
  const reinit = [...(options.reinitRows ?? [])];
  for (const id of reinit) {
    if (!Number.isSafeInteger(id) || id < 0 || id >= V) throw new Error(`rebuildGPT: reinitRows has ${id}, outside 0..${V - 1}`);
  }
  const out = GPT.create({ ...cfg, vocabSize: V, dropout: options.dropout ?? cfg.dropout }, model.backend);
  try {
    const params = model.namedParameters().map(([name, p]) => {
      const data = p.data();
      if (name !== 'transformer.wte.weight') return [name, data] as const;
      const wte = new Float32Array(V * C); // (V, C)
      wte.set(data); // rows 0..V0-1
      const fresh = new Set(reinit);
      for (let id = V0; id < V; id++) fresh.add(id);
      for (const id of fresh) {
        for (let c = 0; c < C; c++) wte[id * C + c] = 0.02 * normal(cfg.seed, NEW_ROWS_STREAM, id * C + c);
      }
      return [name, wte] as const;
    });
    out.loadParameters(params);
    out.trainingSteps = model.trainingSteps;
    out.nameOrPath = model.nameOrPath;
    return out;
  } catch (err) {
    out.dispose();
    throw err;
  }
}

/** `rebuildGPT(model, { vocabSize })`: the token embedding (and tied lm head) grown to `vocabSize` rows. */
export function resizeTokenEmbeddings(model: GPT, vocabSize: number): GPT {
  return rebuildGPT(model, { vocabSize });
}
