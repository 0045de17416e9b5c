// A minimal, correct sampler: the `ferrogpt sample` command and the demo use it.
//
//   sampleText(model, tokenizer, 'It is a truth', { maxNewTokens: 200, temperature: 0.8, topK: 40, seed: 1 })
//
// Each new token recomputes the whole forward pass over the last blockSize tokens (no KV
// cache): O(T²) per token, fine for the small models the CLI trains. A later issue adds the
// KV cache and the full `generate` API; this file stays small so it can be replaced.
//
// Randomness is the counter RNG of src/model/init.ts on its own stream: token k's draw is a
// pure function of (seed, k), so a seed reproduces a sample exactly on a given backend.

import type { GPT } from '../model/gpt.js';
import { randomU32 } from '../model/init.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export interface SampleOptions {
  /** Tokens to generate after the prompt. Default 100. */
  maxNewTokens?: number;
  /** Softmax temperature; 0 picks the most likely token (greedy). Default 1. */
  temperature?: number;
  /** Sample only among the k most likely tokens; 0 (default) means all. */
  topK?: number;
  /** Seed of the draws (u32). Default 0. */
  seed?: number;
  /** Stop (without emitting it) when the end-of-text token is drawn. Default true. */
  stopAtEos?: boolean;
  /** Called with each piece of complete text as it is produced (for streaming to a terminal). */
  onText?: (text: string) => void;
}

// Keeps the sampler's draws apart from the init, dropout and window-sampler streams.
const SAMPLE_STREAM = 0x5a4e0000;

/** Uniform in [0, 1): draw k of `seed` on the sampling stream. */
function uniform(seed: number, k: number): number {
  return randomU32(seed >>> 0, SAMPLE_STREAM, k >>> 0) / 2 ** 32;
}

/**
 * The next token from one row of logits (V): argmax when temperature is 0, otherwise a draw
 * from softmax(logits / temperature) restricted to the topK largest logits (ties with the
 * k-th are kept, as nanoGPT does). `u` is a uniform number in [0, 1).
 */
export function pickToken(logits: Float32Array, temperature: number, topK: number, u: number): number {
  const V = logits.length;
  if (temperature === 0) {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
    return best;
  }
  let threshold = -Infinity;
  if (topK > 0 && topK < V) threshold = Float32Array.from(logits).sort()[V - topK];
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (logits[v] >= threshold && logits[v] > max) max = logits[v];
  // float64 softmax weights; masked tokens get 0.
  const w = new Float64Array(V);
  let sum = 0;
  for (let v = 0; v < V; v++) {
    if (logits[v] >= threshold) {
      w[v] = Math.exp((logits[v] - max) / temperature);
      sum += w[v];
    }
  }
  let target = u * sum;
  let last = 0;
  for (let v = 0; v < V; v++) {
    if (w[v] === 0) continue;
    last = v;
    target -= w[v];
    if (target < 0) return v;
  }
  return last; // rounding left a sliver at the end: the last candidate
}

/**
 * Continues `ids` by up to maxNewTokens tokens; returns only the new ones. `onToken` sees
 * each one as it is drawn. An empty prompt starts from the end-of-text token, as GPT-2's
 * unconditional samples do.
 */
export function sampleIds(model: GPT, ids: readonly number[], eosId: number, options: SampleOptions & { onToken?: (id: number) => void } = {}): number[] {
  const { maxNewTokens = 100, temperature = 1, topK = 0, seed = 0, stopAtEos = true, onToken } = options;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`sample: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) throw new Error(`sample: temperature must be a finite number >= 0, got ${temperature}`);
  if (!Number.isSafeInteger(topK) || topK < 0) throw new Error(`sample: topK must be an integer >= 0, got ${topK}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`sample: seed must be an integer in [0, 2^32), got ${seed}`);
  const { blockSize, vocabSize: V } = model.config;
  const context = ids.length > 0 ? [...ids] : [eosId];
  const out: number[] = [];
  for (let k = 0; k < maxNewTokens; k++) {
    const window = Int32Array.from(context.slice(-blockSize));
    const T = window.length;
    const logits = model.forward(window, 1, T).subarray((T - 1) * V, T * V); // last position's (V)
    const next = pickToken(logits, temperature, topK, uniform(seed, k));
    if (stopAtEos && next === eosId) break;
    context.push(next);
    out.push(next);
    onToken?.(next);
  }
  return out;
}

/**
 * Samples a continuation of `prompt` and returns it as text (the prompt not included).
 * Tokens may end inside a multi-byte character, so bytes go through a streaming UTF-8
 * decoder: onText only ever sees complete characters, and an incomplete tail at the end
 * becomes U+FFFD.
 */
export function sampleText(model: GPT, tokenizer: Tokenizer, prompt: string, options: SampleOptions = {}): string {
  const decoder = new TextDecoder('utf-8');
  let text = '';
  const emit = (piece: string): void => {
    if (piece === '') return;
    text += piece;
    options.onText?.(piece);
  };
  sampleIds(model, tokenizer.encode(prompt), tokenizer.eosId, {
    ...options,
    onToken: (id) => emit(decoder.decode(tokenizer.decodeBytes([id]), { stream: true })),
  });
  emit(decoder.decode());
  return text;
}
