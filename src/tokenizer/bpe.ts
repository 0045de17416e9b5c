// Applying BPE merges to one pre-token ("word"): the encoding half of BPE.
//
// A word starts as a list of symbol ids (one per byte, or per character). Merges are ranked
// by the order in which they were learned; we repeatedly take the adjacent pair with the
// lowest rank and merge every occurrence of it, left to right, until no adjacent pair has a
// merge. This is exactly the loop of OpenAI's GPT-2 encoder, and gives the same result as
// Hugging Face's priority-queue implementation for vocabularies learned by BPE training.

/** Pack a pair of ids (< 2^21 each) into one number that can key a Map. */
export function pairKey(a: number, b: number): number {
  return a * 0x200000 + b;
}

/** A merge as the encoder needs it: its priority and the id of the merged token. */
export interface RankedMerge {
  rank: number;
  id: number;
}

export class BpeMerger {
  private readonly merges = new Map<number, RankedMerge>();

  /**
   * @param merges in rank order: [left id, right id, merged id]
   */
  constructor(merges: Iterable<readonly [number, number, number]>) {
    let rank = 0;
    for (const [a, b, id] of merges) {
      const key = pairKey(a, b);
      // A duplicated merge keeps its first (better) rank, as in Hugging Face.
      if (!this.merges.has(key)) this.merges.set(key, { rank, id });
      rank++;
    }
  }

  get size(): number {
    return this.merges.size;
  }

  /** Merge the symbols of one word; returns the word's token ids. */
  mergeWord(symbols: number[]): number[] {
    let word = symbols;
    while (word.length > 1 && this.merges.size > 0) {
      // Find the adjacent pair with the lowest rank.
      let best: RankedMerge | undefined;
      let bestLeft = -1;
      let bestRight = -1;
      for (let i = 0; i + 1 < word.length; i++) {
        const m = this.merges.get(pairKey(word[i]!, word[i + 1]!));
        if (m !== undefined && (best === undefined || m.rank < best.rank)) {
          best = m;
          bestLeft = word[i]!;
          bestRight = word[i + 1]!;
        }
      }
      if (best === undefined) break;
      // Merge every occurrence of that pair, left to right.
      const next: number[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === bestLeft && word[i + 1] === bestRight) {
          next.push(best.id);
          i++;
        } else {
          next.push(word[i]!);
        }
      }
      word = next;
    }
    return word;
  }
}
