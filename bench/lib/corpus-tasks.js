// Labeled tasks made from unlabeled text (data/corpus.txt), for benchmarks that need a
// real-text pair task without downloading one.
//
// Next-sentence prediction (BERT's NSP, here as GPT-1 task inputs): the text is split into
// sentences, in order; an example pairs sentence i with sentence i + 1 (label 1) or with a
// random sentence of the same split that is not i + 1 (label 0), with equal probability.
// Train and validation come from different parts of the text (the first trainFraction of
// the sentences, then the rest), so no validation sentence is seen in training.
//
//   entailment  { premise: s_i, hypothesis: s_i+1 or random, label: 1 | 0 }
//   choice      { context: s_i, choices: [s_i+1, random] in random order, label: index of s_i+1 }
//
// Same-sentence (a control): the positive hypothesis is s_i itself. Any fine-tuning that works
// learns it within an epoch, even on a small model; next-sentence needs far more of one.
//
// Everything is drawn from one seeded generator (bench/lib/rng.js): the same arguments give
// the same examples.

import { mulberry32 } from './rng.js';

/**
 * The sentences of a text, in order: paragraphs (split at blank lines) with whitespace
 * collapsed, cut after . ! ? (and a closing quote) before an upper-case letter or a quote, but not after
 * Mr. Mrs. Dr. St. Ms.
 * Headings ("Chapter 12") and sentences outside [minChars, maxChars] are dropped, but they
 * still break adjacency: `next[i]` says whether sentence i + 1 really follows sentence i.
 */
export function corpusSentences(text, { minChars = 20, maxChars = 160 } = {}) {
  const sentences = [];
  const next = [];
  let prevKept = false; // whether the last sentence seen (kept or not) was kept
  for (const para of text.split(/\n\s*\n/)) {
    const p = para.replace(/\s+/g, ' ').trim();
    if (p === '' || /^chapter\b/i.test(p)) {
      prevKept = false;
      continue;
    }
    for (const raw of p.split(/(?<!\b(?:Mr|Mrs|Dr|St|Ms)\.)(?<=[.!?]["'’”]?)\s+(?=["'“‘A-Z])/)) {
      const s = raw.trim();
      const keep = s.length >= minChars && s.length <= maxChars;
      if (keep) {
        if (sentences.length > 0) next[sentences.length - 1] = prevKept;
        sentences.push(s);
      }
      prevKept = keep;
    }
  }
  next[sentences.length - 1] = false;
  return { sentences, next };
}

/**
 * The next-sentence task described at the top: { train, validation } examples of `type`
 * 'entailment' (default) or 'choice'. maxTrain / maxValidation cap the counts (the first
 * ones of each split, after shuffling).
 */
export function nextSentenceTask(text, options = {}) {
  return pairTask(text, options, 'next');
}

/**
 * A control that any working fine-tuning learns quickly: as nextSentenceTask, but the
 * positive hypothesis (choice) is sentence i itself, so the model only has to notice that
 * the two segments are the same text.
 */
export function sameSentenceTask(text, options = {}) {
  return pairTask(text, options, 'same');
}

function pairTask(text, options, pair) {
  const { type = 'entailment', seed = 1337, trainFraction = 0.9, maxTrain = Infinity, maxValidation = Infinity, minChars, maxChars } = options;
  if (type !== 'entailment' && type !== 'choice') throw new Error(`sentence-pair task: type must be 'entailment' or 'choice', got ${JSON.stringify(type)}`);
  const { sentences, next } = corpusSentences(text, { minChars, maxChars });
  const cut = Math.floor(sentences.length * trainFraction);
  const rng = mulberry32(seed);
  const build = (lo, hi, cap) => {
    const out = [];
    for (let i = lo; i < hi - 1; i++) {
      if (!next[i]) continue;
      let j;
      do j = lo + Math.floor(rng() * (hi - lo));
      while (j === i || j === i + 1);
      const positive = rng() < 0.5;
      const right = sentences[pair === 'next' ? i + 1 : i];
      if (type === 'entailment') {
        out.push({ premise: sentences[i], hypothesis: positive ? right : sentences[j], label: positive ? 1 : 0 });
      } else {
        // `positive` here: whether the right sentence is choice 0.
        out.push({ context: sentences[i], choices: positive ? [right, sentences[j]] : [sentences[j], right], label: positive ? 0 : 1 });
      }
    }
    for (let k = out.length - 1; k > 0; k--) {
      const r = Math.floor(rng() * (k + 1));
      [out[k], out[r]] = [out[r], out[k]];
    }
    return out.slice(0, Math.min(out.length, cap));
  };
  return { train: build(0, cut, maxTrain), validation: build(cut, sentences.length, maxValidation), sentences: sentences.length };
}
