// Small synthetic tasks of each GPT-1 type, learnable by a tiny model from scratch in a few
// hundred updates. Texts are random letters from 'abcdefgh'; the signal is the letter 'x'
// (and, for entailment, on which side of the delimiter it is).

import type { ChoiceExample, ClassificationExample, EntailmentExample, SimilarityExample } from '../../src/tasks/transform.js';
import { mulberry32, type Rng } from './random.js';

const LETTERS = 'abcdefgh';

/** `n` random letters, with an 'x' at a random place when `withX`. */
export function letters(rng: Rng, min: number, max: number, withX = false): string {
  const n = min + Math.floor(rng() * (max - min + 1));
  const chars = Array.from({ length: n }, () => LETTERS[Math.floor(rng() * LETTERS.length)]);
  if (withX) chars[Math.floor(rng() * n)] = 'x';
  return chars.join('');
}

/** label 'pos' when the text has an 'x'. */
export function classificationTask(n: number, seed: number): ClassificationExample[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const x = rng() < 0.5;
    return { text: letters(rng, 4, 10, x), label: x ? 'pos' : 'neg' };
  });
}

/**
 * Three classes that depend on which side of the delimiter the 'x' is on: entailment when
 * both premise and hypothesis have one, neutral when only the premise has, contradiction
 * otherwise (only the hypothesis, or neither).
 */
export function entailmentTask(n: number, seed: number): EntailmentExample[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const p = rng() < 0.5;
    const h = rng() < 0.5;
    const label = p && h ? 'entailment' : p ? 'neutral' : 'contradiction';
    return { premise: letters(rng, 3, 7, p), hypothesis: letters(rng, 3, 7, h), label };
  });
}

/** label 1 when both texts have an 'x' (a symmetric relation); score = how many texts have one. */
export function similarityTask(n: number, seed: number): SimilarityExample[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const a = rng() < 0.6;
    const b = rng() < 0.6;
    return { text1: letters(rng, 3, 7, a), text2: letters(rng, 3, 7, b), label: a && b ? 1 : 0, score: Number(a) + Number(b) };
  });
}

/** Three answers; the right one is the one with an 'x'. */
export function choiceTask(n: number, seed: number): ChoiceExample[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const right = Math.floor(rng() * 3);
    const choices = [0, 1, 2].map((k) => letters(rng, 3, 6, k === right));
    return { context: letters(rng, 3, 8), choices, label: right };
  });
}
