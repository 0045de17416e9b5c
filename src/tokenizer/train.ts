// Learning a tokenizer's vocabulary from text: byte-level BPE and character vocabularies.
//
// Why our own trainer rather than Hugging Face's: the `tokenizers` npm package can train,
// but its Node API exposes no trainer options, so the vocabulary size cannot be chosen.
// The algorithm is short, and owning it keeps training identical in Node and browsers.
//
// Byte-level BPE training (Sennrich et al. 2016, as in GPT-2):
//   1. split the text into GPT-2 pre-tokens and count how often each distinct word occurs;
//   2. spell every word as UTF-8 bytes (ids 0..255);
//   3. repeatedly find the adjacent pair of tokens that occurs most often (weighted by word
//      counts), make it a new token, and rewrite the words that contain it.
// Only the words containing the merged pair are touched, and pair counts are updated
// incrementally; a max-heap with lazy deletion finds the most frequent pair.

import { pairKey } from './bpe.js';
import { preTokenize } from './byte-level.js';

/** Split text around occurrences of special tokens, dropping them: a special token in the
 * training text (e.g. documents joined by <|endoftext|>) is a boundary, not text to learn. */
export function splitOnSpecials(text: string, specials: readonly string[]): string[] {
  let parts = [text];
  for (const s of specials) parts = parts.flatMap((p) => p.split(s));
  return parts;
}

/** Count the distinct GPT-2 pre-tokens of `texts`. */
export function countWords(texts: Iterable<string>, specials: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const part of splitOnSpecials(text, specials)) {
      for (const w of preTokenize(part)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  return counts;
}

/** A max-heap of [count, key] ordered by count, then by smaller key (for determinism). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get length(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [count: number, key: number] | undefined {
    if (this.counts.length === 0) return undefined;
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.counts.length && this.above(l, m)) m = l;
        if (r < this.counts.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

export interface LearnedMerges {
  /** In learning order: [left id, right id, merged id]. */
  merges: [number, number, number][];
  /** The bytes of every token: tokens[id]; ids 0..255 are the single bytes. */
  tokens: Uint8Array[];
}

/**
 * Learn byte-level BPE merges from word counts until there are `numTokens` tokens (256
 * bytes + learned ones). Token ids 0..255 are the bytes; learned tokens follow in order.
 * Throws when the text runs out of pairs to merge first.
 *
 * Two different merges can spell the same bytes ("ab"+"c" and "a"+"bc"); the second then
 * reuses the first one's id (as Hugging Face's trainer does) and adds no token, so merges
 * can outnumber learned tokens by a few.
 */
export function learnByteLevelMerges(wordCounts: Map<string, number>, numTokens: number): LearnedMerges {
  const utf8 = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(utf8.encode(w)));
    freqs.push(c);
  }
  const tokens: Uint8Array[] = [];
  const idOfBytes = new Map<string, number>(); // key: the bytes as a latin1 string
  for (let b = 0; b < 256; b++) {
    tokens.push(Uint8Array.of(b));
    idOfBytes.set(String.fromCharCode(b), b);
  }

  // pairCounts: how often each adjacent pair occurs (weighted); where: which words have it.
  // `where` may keep words that no longer contain the pair; they are skipped when merging.
  const pairCounts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1, touched: Set<number>) => {
    const w = words[wi]!;
    const f = freqs[wi]! * sign;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = pairKey(w[i]!, w[i + 1]!);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      touched.add(key);
      if (sign > 0) {
        let set = where.get(key);
        if (set === undefined) where.set(key, (set = new Set()));
        set.add(wi);
      }
    }
  };
  const initial = new Set<number>();
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1, initial);

  const heap = new PairHeap();
  for (const key of initial) heap.push(pairCounts.get(key)!, key);

  const merges: [number, number, number][] = [];
  while (tokens.length < numTokens) {
    // Pop until an entry is current (its count is the pair's count now) and non-zero.
    let best: number | undefined;
    for (;;) {
      const top = heap.pop();
      if (top === undefined) break;
      const [count, key] = top;
      if (count > 0 && pairCounts.get(key) === count) {
        best = key;
        break;
      }
    }
    if (best === undefined) {
      throw new Error(
        `tokenizer training: the text has no pairs left to merge after learning ${tokens.length - 256} ` +
          `tokens; use more text or a vocabSize of at most ${tokens.length + 1}`,
      );
    }
    const left = Math.floor(best / 0x200000);
    const right = best % 0x200000;
    const bytes = new Uint8Array(tokens[left]!.length + tokens[right]!.length);
    bytes.set(tokens[left]!, 0);
    bytes.set(tokens[right]!, tokens[left]!.length);
    const spelled = String.fromCharCode(...bytes);
    let newId = idOfBytes.get(spelled);
    if (newId === undefined) {
      newId = tokens.length;
      tokens.push(bytes);
      idOfBytes.set(spelled, newId);
    }
    merges.push([left, right, newId]);

    const touched = new Set<number>();
    for (const wi of where.get(best) ?? []) {
      const w = words[wi]!;
      let present = false;
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === left && w[i + 1] === right) {
          present = true;
          break;
        }
      }
      if (!present) continue;
      addPairs(wi, -1, touched);
      const merged: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === left && w[i + 1] === right) {
          merged.push(newId);
          i++;
        } else {
          merged.push(w[i]!);
        }
      }
      words[wi] = merged;
      addPairs(wi, 1, touched);
    }
    where.delete(best);
    for (const key of touched) {
      const c = pairCounts.get(key)!;
      if (c > 0) heap.push(c, key);
      else pairCounts.delete(key);
    }
  }
  return { merges, tokens };
}

/**
 * The characters of a char tokenizer: every distinct code point in `texts`, or, when
 * `limit` is given and smaller, the `limit` most frequent ones. Returned sorted by code
 * point so the vocabulary reads in a natural order.
 */
export function learnCharacters(texts: Iterable<string>, specials: readonly string[], limit?: number): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const part of splitOnSpecials(text, specials)) {
      for (const ch of part) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    }
  }
  const byCodePoint = (a: string, b: string) => a.codePointAt(0)! - b.codePointAt(0)!;
  let chars = [...counts.keys()];
  if (limit !== undefined && chars.length > limit) {
    chars.sort((a, b) => counts.get(b)! - counts.get(a)! || byCodePoint(a, b));
    chars = chars.slice(0, limit);
  }
  return chars.sort(byCodePoint);
}
