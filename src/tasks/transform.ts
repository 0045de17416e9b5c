// GPT-1's task input transformations (figure 1 of the paper): every task becomes one or more
// token sequences the pre-trained model reads unchanged, framed by three added tokens —
// start (S), delimiter (D) and extract (X) — whose final hidden state the head reads.
//
//   classification   S text X
//   entailment       S premise D hypothesis X
//   similarity       S text1 D text2 X   and   S text2 D text1 X   (no natural order: both,
//                    their states at X added before the head)
//   multiple choice  S context D answer_k X   for every answer k (one score each, softmax
//                    over the k)
//
// Truncation. A sequence longer than maxLength (default: the model's blockSize) is cut
// inside its text segments, never at the added tokens, so X is always the last token:
// while the segments are too long, the longest one (the first of equals) loses one token —
// from its END, except a multiple-choice context, which loses tokens from its START (what
// the answer continues is the context's end). This is BERT's "longest first" rule. Each
// example that lost tokens is counted as truncated.
//
// Texts are encoded with allowSpecial: false, so a text that happens to contain a special
// token's spelling is read as plain text and cannot forge a delimiter.

import { IGNORE_INDEX } from '../objectives/lm.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Pool } from '../model/head.js';

export const TASK_TYPES = ['classification', 'entailment', 'similarity', 'choice'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export type Label = string | number;
export interface ClassificationExample { text: string; label?: Label }
export interface EntailmentExample { premise: string; hypothesis: string; label?: Label }
/** `label` for classes (e.g. paraphrase or not), `score` for a regression (e.g. STS 0..5). */
export interface SimilarityExample { text1: string; text2: string; label?: Label; score?: number }
/** `label` is the index of the right choice (0-based). */
export interface ChoiceExample { context: string; choices: string[]; label?: number }
export type TaskExample = ClassificationExample | EntailmentExample | SimilarityExample | ChoiceExample;

/** Ids of the three added tokens. */
export interface SpecialIds {
  start: number;
  delim: number;
  extract: number;
}

/** One example as token sequences: 1 (classification, entailment), 2 (similarity), k (choice). */
export interface EncodedExample {
  seqs: Int32Array[];
  /** Whether any of its sequences was cut to fit maxLength. */
  truncated: boolean;
}

/** The smallest maxLength: S, D, X and one token for each of two segments... or none. */
export const MIN_MAX_LENGTH = 3;

/**
 * Cuts `segs` (in place) until their lengths sum to at most `budget`, by the rule at the top
 * of this file; `fromStart[i]` says segment i loses tokens from its start. Returns whether
 * anything was cut.
 */
export function truncateSegments(segs: number[][], budget: number, fromStart: readonly boolean[] = []): boolean {
  const len = segs.map((s) => s.length);
  let total = len.reduce((a, b) => a + b, 0);
  if (total <= budget) return false;
  // Work on lengths, then cut each segment once (an over-long text costs O(excess), not
  // O(excess · length) of repeated array shifts).
  while (total > budget) {
    let longest = 0;
    for (let i = 1; i < len.length; i++) if (len[i] > len[longest]) longest = i;
    len[longest]--;
    total--;
  }
  segs.forEach((s, i) => {
    const cut = s.length - len[i];
    if (cut > 0) s.splice(fromStart[i] ? 0 : len[i], cut);
  });
  return true;
}

/** Builds S a (D b)* X from segments (already truncated). */
function frame(ids: SpecialIds, segs: readonly number[][]): Int32Array {
  const n = segs.reduce((a, s) => a + s.length, 0) + segs.length + 1; // S, (segs-1) D, X
  const out = new Int32Array(n);
  let at = 0;
  out[at++] = ids.start;
  segs.forEach((s, i) => {
    if (i > 0) out[at++] = ids.delim;
    out.set(s, at);
    at += s.length;
  });
  out[at++] = ids.extract;
  return out;
}

/**
 * The transformation itself over already-tokenized segments: `segments` are [text],
 * [premise, hypothesis], [text1, text2] or [context, answer_0, answer_1, ...].
 */
export function transformTokens(type: TaskType, segments: readonly number[][], ids: SpecialIds, maxLength: number): EncodedExample {
  if (!Number.isSafeInteger(maxLength) || maxLength < MIN_MAX_LENGTH) throw new Error(`maxLength must be an integer >= ${MIN_MAX_LENGTH}, got ${maxLength}`);
  const copy = segments.map((s) => [...s]);
  switch (type) {
    case 'classification': {
      if (copy.length !== 1) throw new Error(`classification takes 1 segment, got ${copy.length}`);
      const truncated = truncateSegments(copy, maxLength - 2);
      return { seqs: [frame(ids, copy)], truncated };
    }
    case 'entailment':
    case 'similarity': {
      if (copy.length !== 2) throw new Error(`${type} takes 2 segments, got ${copy.length}`);
      const truncated = truncateSegments(copy, maxLength - 3);
      const [a, b] = copy;
      return { seqs: type === 'entailment' ? [frame(ids, [a, b])] : [frame(ids, [a, b]), frame(ids, [b, a])], truncated };
    }
    case 'choice': {
      if (copy.length < 2) throw new Error(`choice takes a context and at least one answer, got ${copy.length} segments`);
      let truncated = false;
      const seqs = copy.slice(1).map((answer) => {
        const pair = [[...copy[0]], [...answer]];
        truncated = truncateSegments(pair, maxLength - 3, [true, false]) || truncated;
        return frame(ids, pair);
      });
      return { seqs, truncated };
    }
  }
  throw new Error(`unknown task type ${JSON.stringify(type)} (use ${TASK_TYPES.join(', ')})`);
}

/** The text segments of an example, in the order transformTokens takes them. */
export function exampleSegments(type: TaskType, ex: TaskExample): string[] {
  switch (type) {
    case 'classification':
      return [(ex as ClassificationExample).text];
    case 'entailment':
      return [(ex as EntailmentExample).premise, (ex as EntailmentExample).hypothesis];
    case 'similarity':
      return [(ex as SimilarityExample).text1, (ex as SimilarityExample).text2];
    case 'choice':
      return [(ex as ChoiceExample).context, ...(ex as ChoiceExample).choices];
  }
  throw new Error(`unknown task type ${JSON.stringify(type)} (use ${TASK_TYPES.join(', ')})`);
}

/** Tokenizes an example (special spellings read as text) and transforms it. */
export function encodeExample(type: TaskType, ex: TaskExample, tokenizer: Tokenizer, ids: SpecialIds, maxLength: number): EncodedExample {
  const segments = exampleSegments(type, ex).map((text) => tokenizer.encode(text, { allowSpecial: false }));
  return transformTokens(type, segments, ids, maxLength);
}

/** A padded batch of sequences (S = examples · sequences per example). */
export interface TaskBatch {
  /** Examples (E). */
  E: number;
  /** Sequences per example (1, 2 for similarity, k for choice). */
  perExample: number;
  /** Sequences (S = E · perExample) and padded length (T = the longest). */
  S: number;
  T: number;
  ids: Int32Array; // (S, T), right-padded with padId
  /** L1 targets: ids shifted left inside each sequence, -1 at its last token and the padding. */
  targets: Int32Array; // (S, T)
  /** Position of each sequence's extract token (its last real token). */
  extract: Int32Array; // (S)
}

/**
 * Pads a list of encoded examples into one batch. Padding goes on the right, after X: with
 * causal attention the positions up to X never see it, and it carries no L1 target, so its
 * token (padId) does not matter.
 */
export function collate(examples: readonly EncodedExample[], padId = 0): TaskBatch {
  const E = examples.length;
  if (E < 1) throw new Error('collate: no examples');
  const perExample = examples[0].seqs.length;
  for (const ex of examples) {
    if (ex.seqs.length !== perExample) throw new Error(`collate: examples have ${perExample} and ${ex.seqs.length} sequences; a batch needs the same number (e.g. of choices)`);
  }
  const S = E * perExample;
  let T = 1;
  for (const ex of examples) for (const s of ex.seqs) T = Math.max(T, s.length);
  const ids = new Int32Array(S * T).fill(padId);
  const targets = new Int32Array(S * T).fill(IGNORE_INDEX);
  const extract = new Int32Array(S);
  let row = 0;
  for (const ex of examples) {
    for (const s of ex.seqs) {
      ids.set(s, row * T);
      // GPT-1 (its mask M) counts every predicted token of the sequence, added ones included.
      for (let t = 0; t + 1 < s.length; t++) targets[row * T + t] = s[t + 1];
      extract[row] = s.length - 1;
      row++;
    }
  }
  return { E, perExample, S, T, ids, targets, extract };
}

/**
 * Which hidden rows the head reads: each sequence's extract position, and for similarity the
 * two orders of one example added (so F = E); otherwise F = S (for multiple choice, the
 * caller views the S scores as (E, k)).
 */
export function poolFor(type: TaskType, batch: TaskBatch): Pool {
  const { S, T, E, extract } = batch;
  if (type === 'similarity') {
    if (batch.perExample !== 2) throw new Error(`poolFor: a similarity batch has 2 sequences per example, got ${batch.perExample}`);
    const rowA = new Int32Array(E);
    const rowB = new Int32Array(E);
    for (let e = 0; e < E; e++) {
      rowA[e] = 2 * e * T + extract[2 * e];
      rowB[e] = (2 * e + 1) * T + extract[2 * e + 1];
    }
    return { F: E, rowA, rowB };
  }
  const rowA = new Int32Array(S);
  for (let s = 0; s < S; s++) rowA[s] = s * T + extract[s];
  return { F: S, rowA, rowB: null };
}
