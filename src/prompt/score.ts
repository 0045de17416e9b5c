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
//
// Unconditional normalisation (GPT-3, Brown et al. 2020, section 2.4): on ARC, OpenBookQA
// and RACE, GPT-3 ranks candidates by log P(c | context) − log P(c | answer_context), where
// answer_context is a short neutral cue ("Answer: ", "A: "). The second term is how likely
// the candidate is as an answer to anything at all; subtracting it stops a short or common
// candidate from winning on its prior likelihood alone. `normalize: 'unconditional'` scores
// the candidates a second time after `answerContext` (default 'Answer:', with no trailing
// space: our candidates carry their leading space, so 'Answer:' + ' Paris' reads
// 'Answer: Paris', just as ' Paris' follows the real context; a trailing space would put a
// lone space token before ' Paris', a pair GPT-2's tokenizer never produces). Both passes
// are the same function, candidateLogProbs, over the same KV-cache path. The answer context
// is never cut: with the longest candidate it must fit blockSize.

import type { GPT } from '../model/gpt.js';
import type { PromptTokenizer } from './generate.js';
import { resolveKvDtype, type KVCacheOptions, type KVDType } from '../model/kv-cache.js';

export type ScoreNormalization = 'none' | 'token' | 'char' | 'unconditional';

const NORMALIZATIONS: readonly ScoreNormalization[] = ['none', 'token', 'char', 'unconditional'];

/** The neutral prompt of `normalize: 'unconditional'` (see the header for the space). */
export const DEFAULT_ANSWER_CONTEXT = 'Answer:';

export interface ScoreOptions extends KVCacheOptions {
  /**
   * How scores compare candidates: 'none' = the total log-likelihood (default), 'token' =
   * per token, 'char' = per character of the candidate text, 'unconditional' = minus the
   * log-likelihood after `answerContext` (GPT-3's scoring of ARC, OpenBookQA and RACE).
   */
  normalize?: ScoreNormalization;
  /**
   * With normalize 'unconditional': the neutral prompt the candidates' prior likelihood is
   * measured after, as text or token ids. Default 'Answer:' (no trailing space: candidates
   * bring their own). Empty: the end-of-text token, as for an empty context.
   */
  answerContext?: string | readonly number[];
  /** Candidates run together per batch. Default 16. */
  batchSize?: number;
  // kvDtype (KVCacheOptions): the element type of the KV caches the context is prefilled
  // into and forked from, 'f32' (default) or 'bf16'.
}

export interface CandidateScore {
  text: string;
  tokens: number[];
  /** log P(candidate | context), natural log. */
  logProb: number;
  /** log P(candidate | answerContext), natural log; with normalize 'unconditional' only. */
  unconditionalLogProb?: number;
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
  const { normalize = 'none', batchSize = 16, answerContext } = options;
  const kvDtype = resolveKvDtype(fn, options.kvDtype);
  if (!NORMALIZATIONS.includes(normalize)) throw new Error(`${fn}: normalize must be 'none', 'token', 'char' or 'unconditional', got ${String(normalize)}`);
  if (answerContext !== undefined && normalize !== 'unconditional') throw new Error(`${fn}: answerContext is used only with normalize 'unconditional', got normalize '${normalize}'`);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`${fn}: batchSize must be a positive integer, got ${batchSize}`);
  if (!Array.isArray(candidates) || candidates.length === 0) throw new Error(`${fn}: candidates must be a non-empty array`);
  const { blockSize, vocabSize: V } = model.config;
  const ids = (x: string | readonly number[], what: string): number[] => {
    const out = typeof x === 'string' ? tokenizer.encode(x) : Array.isArray(x) ? [...x] : null;
    if (out === null) throw new Error(`${fn}: ${what} must be a string or an array of token ids`);
    for (const id of out) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${fn}: ${what} has token id ${id} outside the model's vocabulary (${V})`);
    return out;
  };
  // A prefix the candidates follow: an empty one starts from the end-of-text token.
  const prefix = (x: string | readonly number[], what: string): number[] => {
    const out = ids(x, what);
    return out.length === 0 ? [tokenizer.eosId] : out;
  };
  const cands = candidates.map((c, i) => {
    const t = ids(c, `candidate ${i}`);
    if (t.length === 0) throw new Error(`${fn}: candidate ${i} encodes to no tokens`);
    return t;
  });
  const longest = Math.max(...cands.map((c) => c.length));
  if (longest >= blockSize) throw new Error(`${fn}: a candidate of ${longest} tokens leaves no room for context in the model's blockSize ${blockSize}`);
  let ctx = prefix(context, 'context');
  if (ctx.length + longest > blockSize) ctx = ctx.slice(ctx.length - (blockSize - longest));
  let answer: number[] | null = null;
  if (normalize === 'unconditional') {
    answer = prefix(answerContext ?? DEFAULT_ANSWER_CONTEXT, 'answerContext');
    if (answer.length + longest > blockSize) {
      throw new Error(`${fn}: answerContext (${answer.length} tokens) and the longest candidate (${longest} tokens) do not fit the model's blockSize ${blockSize}`);
    }
  }

  const logProbs = candidateLogProbs(model, ctx, cands, batchSize, kvDtype);
  const unconditional = answer === null ? null : candidateLogProbs(model, answer, cands, batchSize, kvDtype);
  const results: CandidateScore[] = cands.map((tokens, i) => {
    const text = typeof candidates[i] === 'string' ? (candidates[i] as string) : new TextDecoder().decode(tokenizer.decodeBytes(tokens));
    const logProb = logProbs[i];
    if (unconditional !== null) return { text, tokens, logProb, unconditionalLogProb: unconditional[i], score: logProb - unconditional[i] };
    const denom = normalize === 'token' ? tokens.length : normalize === 'char' ? Math.max(1, [...text].length) : 1;
    return { text, tokens, logProb, score: logProb / denom };
  });
  let best = 0;
  results.forEach((r, i) => {
    if (r.score > results[best].score) best = i;
  });
  return { candidates: results, scores: results.map((r) => r.score), best, contextTokens: ctx.length };
}

/**
 * log P(candidate | prefix) for each candidate, natural log: the one scoring pass, for the
 * context and for the answer context alike. The prefix is prefilled once over a KV cache,
 * whose last logits score every candidate's first token; the cache is then copied into one
 * slot per candidate and the candidates' other tokens run as batches of `batchSize` over it.
 * The prefix plus the longest candidate must fit the model's blockSize (the caller sees to it).
 */
function candidateLogProbs(model: GPT, prefix: readonly number[], cands: readonly (readonly number[])[], batchSize: number, kvDtype: KVDType): number[] {
  const V = model.config.vocabSize;
  const maxT = prefix.length + Math.max(...cands.map((c) => c.length));
  const logProbs = new Array<number>(cands.length).fill(0);
  const base = model.createCache(1, maxT, { kvDtype });
  try {
    const last = model.forwardCached([prefix], base); // (V): predicts each candidate's first token
    const lse = logSumExp(last);
    cands.forEach((c, i) => (logProbs[i] = last[c[0]] - lse));
    const rest = cands.map((c, i) => i).filter((i) => cands[i].length > 1);
    for (let s = 0; s < rest.length; s += batchSize) {
      const group = rest.slice(s, s + batchSize);
      const cache = model.createCache(group.length, maxT, { kvDtype });
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
            logProbs[i] += row[c[t + 1]] - logSumExp(row);
          }
        });
      } finally {
        cache.dispose();
      }
    }
  } finally {
    base.dispose();
  }
  return logProbs;
}

/** log softmax of one row of logits, in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  const lse = logSumExp(row);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

/**
 * log Σ exp(row), in float64, the maximum taken out first so no exp overflows: what every
 * log-softmax entry subtracts, so scoring one token costs this and no row of V outputs.
 */
function logSumExp(row: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return max + Math.log(sum);
}
