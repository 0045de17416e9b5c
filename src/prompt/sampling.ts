// Turning one row of logits into the next token: repetition penalty, temperature, top-k,
// top-p (nucleus), then a draw. Split in two so tests (and users) can see the candidate set
// a draw is made from: samplingDistribution() returns the allowed tokens and their
// probabilities, drawToken() picks one with a uniform number.
//
// Randomness is the counter RNG of src/backend/rng.ts: draw k of sequence i under seed s is
// randomU32(s, SAMPLE_STREAM + i, k), a pure function of (seed, sequence, step), so a seed
// reproduces a generation exactly on a given backend, whatever else runs in the batch.

import { randomU32 } from '../backend/rng.js';

export interface SamplingOptions {
  /** Softmax temperature; 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th are kept); 0 = all. Default 0. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP; 1 = all. Default 1. */
  topP?: number;
  /**
   * > 1 discourages tokens already in the prompt or the output (CTRL / Hugging Face rule:
   * a positive logit is divided by it, a negative one multiplied). 1 = off. Default 1.
   */
  repetitionPenalty?: number;
}

/** The candidate set of one draw: token ids (most likely first) and their probabilities (sum 1). */
export interface Distribution {
  ids: Int32Array;
  probs: Float64Array;
}

// Keeps the sampler's draws apart from the init, dropout and window-sampler streams.
const SAMPLE_STREAM = 0x5a4f0000;

/** Uniform in [0, 1): draw `step` of sequence `seq` under `seed`. */
export function uniformDraw(seed: number, seq: number, step: number): number {
  return randomU32(seed >>> 0, (SAMPLE_STREAM + seq) >>> 0, step >>> 0) / 2 ** 32;
}

/** Checks the options and fills the defaults; throws an Error naming a bad one. */
export function resolveSampling(fn: string, o: SamplingOptions): Required<SamplingOptions> {
  const { temperature = 1, topK = 0, topP = 1, repetitionPenalty = 1 } = o;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) throw new Error(`${fn}: temperature must be a finite number >= 0, got ${temperature}`);
  if (!Number.isSafeInteger(topK) || topK < 0) throw new Error(`${fn}: topK must be an integer >= 0, got ${topK}`);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new Error(`${fn}: topP must be in (0, 1], got ${topP}`);
  if (typeof repetitionPenalty !== 'number' || !Number.isFinite(repetitionPenalty) || repetitionPenalty <= 0) {
    throw new Error(`${fn}: repetitionPenalty must be a finite number > 0, got ${repetitionPenalty}`);
  }
  return { temperature, topK, topP, repetitionPenalty };
}

/** Applies the repetition penalty in place to the ids in `seen` (logits of one position, V). */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of seen) {
    const x = logits[id];
    logits[id] = x > 0 ? x / penalty : x * penalty;
  }
}

/**
 * The distribution a draw is made from, after temperature, top-k and top-p (the penalty is
 * applied before, to the logits). temperature 0 gives the single argmax (lowest id on ties).
 * top-k keeps the tokens whose logit is at least the k-th largest (ties kept); top-p then
 * keeps, most likely first, the fewest whose probability (renormalised over the top-k set)
 * reaches topP, plus ties with the last one.
 */
export function samplingDistribution(logits: Float32Array, o: Required<SamplingOptions>): Distribution {
  const V = logits.length;
  if (o.temperature === 0) {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
    return { ids: Int32Array.of(best), probs: Float64Array.of(1) };
  }
  // A logit threshold: every token at or above it is a candidate. Found on a sorted copy of
  // the values (a native typed-array sort), so only the candidates are sorted by index.
  let threshold = -Infinity;
  const sorted = o.topK > 0 || o.topP < 1 ? Float32Array.from(logits).sort() : null; // ascending
  if (sorted !== null && o.topK > 0 && o.topK < V) threshold = sorted[V - o.topK]; // ties with the k-th stay
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (logits[v] > max) max = logits[v];
  if (sorted !== null && o.topP < 1) {
    // Total weight of the top-k set, then walk down from the top until topP of it is covered.
    let total = 0;
    for (let i = V - 1; i >= 0 && sorted[i] >= threshold; i--) total += Math.exp((sorted[i] - max) / o.temperature);
    let acc = 0;
    for (let i = V - 1; i >= 0 && sorted[i] >= threshold; i--) {
      acc += Math.exp((sorted[i] - max) / o.temperature);
      if (acc >= o.topP * total) {
        threshold = sorted[i]; // ties with the last needed token stay
        break;
      }
    }
  }
  const cand: number[] = [];
  for (let v = 0; v < V; v++) if (logits[v] >= threshold) cand.push(v);
  // Most likely first (lower id first on ties) when the set was cut; all tokens in id order otherwise.
  if (sorted !== null) cand.sort((a, b) => logits[b] - logits[a] || a - b);
  const n = cand.length;
  const ids = Int32Array.from(cand);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[cand[i]] - max) / o.temperature);
    sum += probs[i];
  }
  for (let i = 0; i < n; i++) probs[i] /= sum;
  return { ids, probs };
}

/** The token of `dist` that the uniform number u in [0, 1) falls on. */
export function drawToken(dist: Distribution, u: number): number {
  let target = u;
  for (let i = 0; i < dist.ids.length; i++) {
    target -= dist.probs[i];
    if (target < 0) return dist.ids[i];
  }
  return dist.ids[dist.ids.length - 1]; // rounding left a sliver: the last candidate
}
