// score(): the log-likelihood of candidate continuations of a context, the way GPT-2 and
// GPT-3 evaluate multiple-choice tasks.
//
//   const r = await score(model, tokenizer, 'The capital of France is', [' Paris', ' London']);
//   r.best; r.candidates[0].logProb;
//
// The context and each candidate are encoded separately and concatenated as token ids (put
// the separating space at the start of the candidate, as GPT-2's tokenizer attaches it to the
// following word). log P(candidate | context) = Σ_j log softmax(logits)[token_j], each token
// scored given the context and the candidate's earlier tokens.
//
// The context is encoded once: one prefill over a KV cache, whose last logits score every
// candidate's first token; the cache is then copied into one slot per candidate and all
// candidates run as one batch over it (in batches of `batchSize`). An empty context starts
// from the end-of-text token. When context + the longest candidate exceed the model's
// blockSize, the context is cut from the left (`contextTokens` says how many were kept).

import type { GPT } from '../model/gpt.js';
import type { PromptTokenizer } from './generate.js';

export type ScoreNormalization = 'none' | 'token' | 'char';

export interface ScoreOptions {
  /**
   * How scores compare candidates of different lengths: 'none' = the total log-likelihood
   * (default), 'token' = per token, 'char' = per character of the candidate text.
   */
  normalize?: ScoreNormalization;
  /** Candidates run together per batch. Default 16. */
  batchSize?: number;
}

export interface CandidateScore {
  text: string;
  tokens: number[];
  /** log P(candidate | context), natural log. */
  logProb: number;
  /** logProb normalised as asked (what `best` compares). */
  score: number;
}

export interface ScoreResult {
  candidates: CandidateScore[];
  /** Per candidate, the normalised score (= candidates[i].score). */
  scores: number[];
  /** Index of the highest score (the first on ties). */
  best: number;
  /** Context tokens the candidates were scored after (fewer than encoded if it was cut). */
  contextTokens: number;
}

export async function score(
  model: GPT,
  tokenizer: PromptTokenizer,
  context: string | readonly number[],
  candidates: ReadonlyArray<string | readonly number[]>,
  options: ScoreOptions = {},
): Promise<ScoreResult> {
  return scoreSync(model, tokenizer, context, candidates, options);
}

/** score(), synchronously (the work is synchronous; the async form matches the other verbs). */
export function scoreSync(
  model: GPT,
  tokenizer: PromptTokenizer,
  context: string | readonly number[],
  candidates: ReadonlyArray<string | readonly number[]>,
  options: ScoreOptions = {},
): ScoreResult {
  const fn = 'score';
  const { normalize = 'none', batchSize = 16 } = options;
  if (normalize !== 'none' && normalize !== 'token' && normalize !== 'char') throw new Error(`${fn}: normalize must be 'none', 'token' or 'char', got ${String(normalize)}`);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`${fn}: batchSize must be a positive integer, got ${batchSize}`);
  if (!Array.isArray(candidates) || candidates.length === 0) throw new Error(`${fn}: candidates must be a non-empty array`);
  const { blockSize, vocabSize: V } = model.config;
  const ids = (x: string | readonly number[], what: string): number[] => {
    const out = typeof x === 'string' ? tokenizer.encode(x) : Array.isArray(x) ? [...x] : null;
    if (out === null) throw new Error(`${fn}: ${what} must be a string or an array of token ids`);
    for (const id of out) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${fn}: ${what} has token id ${id} outside the model's vocabulary (${V})`);
    return out;
  };
  const cands = candidates.map((c, i) => {
    const t = ids(c, `candidate ${i}`);
    if (t.length === 0) throw new Error(`${fn}: candidate ${i} encodes to no tokens`);
    return t;
  });
  const longest = Math.max(...cands.map((c) => c.length));
  if (longest >= blockSize) throw new Error(`${fn}: a candidate of ${longest} tokens leaves no room for context in the model's blockSize ${blockSize}`);
  let ctx = ids(context, 'context');
  if (ctx.length === 0) ctx = [tokenizer.eosId];
  if (ctx.length + longest > blockSize) ctx = ctx.slice(ctx.length - (blockSize - longest));
  const maxT = ctx.length + longest;

  const logProbs = new Array<number>(cands.length).fill(0);
  const base = model.createCache(1, maxT);
  try {
    const last = model.forwardCached([ctx], base); // (V): predicts each candidate's first token
    const first = logSoftmax(last);
    cands.forEach((c, i) => (logProbs[i] = first[c[0]]));
    const rest = cands.map((c, i) => i).filter((i) => cands[i].length > 1);
    for (let s = 0; s < rest.length; s += batchSize) {
      const group = rest.slice(s, s + batchSize);
      const cache = model.createCache(group.length, maxT);
      try {
        group.forEach((_, j) => cache.copySequence(base, 0, j));
        // Feed each candidate but its last token; row t then predicts token t + 1.
        const feed = group.map((i) => cands[i].slice(0, -1));
        const Tn = Math.max(...feed.map((f) => f.length));
        const all = model.forwardCached(feed, cache, { logits: 'all' }); // (G, Tn, V)
        group.forEach((i, j) => {
          const c = cands[i];
          for (let t = 0; t + 1 < c.length; t++) {
            const row = all.subarray((j * Tn + t) * V, (j * Tn + t + 1) * V);
            logProbs[i] += logSoftmaxAt(row, c[t + 1]);
          }
        });
      } finally {
        cache.dispose();
      }
    }
  } finally {
    base.dispose();
  }
  const results: CandidateScore[] = cands.map((tokens, i) => {
    const text = typeof candidates[i] === 'string' ? (candidates[i] as string) : new TextDecoder().decode(tokenizer.decodeBytes(tokens));
    const denom = normalize === 'token' ? tokens.length : normalize === 'char' ? Math.max(1, [...text].length) : 1;
    return { text, tokens, logProb: logProbs[i], score: logProbs[i] / denom };
  });
  let best = 0;
  results.forEach((r, i) => {
    if (r.score > results[best].score) best = i;
  });
  return { candidates: results, scores: results.map((r) => r.score), best, contextTokens: ctx.length };
}

/** log softmax of one row of logits, in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

function logSoftmaxAt(row: Float32Array, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return row[id] - max - Math.log(sum);
}
