// Labeled tasks made from held-out text of data/corpus.txt, for the fine-tuning benchmark:
// sentence endings, SWAG's construction (Zellers et al. 2018) on plain prose. Nobody on this
// project wrote the text; the labels come from where each piece of it stands in the book.
//
//   splitCorpus(text)          the pre-training part (the first 70%) and the held-out part
//                              (the rest), cut at a paragraph boundary: pre-training never
//                              sees a held-out sentence
//   endingTasks(heldOut)       from each held-out sentence of 8+ words, cut at 40-60% of its
//                              words into a beginning and its ending:
//     choice      { context: beginning, choices: [4 endings], label }   the true ending and
//                 the endings of three other held-out sentences, in random order (4-way)
//     entailment  { premise: beginning, hypothesis: ending, label: '1' | '0' }   the true
//                 ending or another sentence's, with equal probability (2-way)
//   Train and validation come from different stretches of the held-out text (its first 75%
//   of paragraphs, then the rest), so no sentence is in both.
//
// Everything is drawn from seeded generators (bench/lib/rng.js): the same text gives the
// same examples.

import { corpusSentences } from './corpus-tasks.js';
import { mulberry32 } from './rng.js';

/** Cuts `text` at the paragraph boundary nearest before `fraction` of it. */
function cutAt(text, fraction) {
  const at = text.lastIndexOf('\n\n', Math.floor(text.length * fraction));
  if (at <= 0) throw new Error(`the text has no paragraph boundary before ${fraction * 100}% of it`);
  return [text.slice(0, at), text.slice(at)];
}

export function splitCorpus(text, preTrainFraction = 0.7) {
  const [preTrain, heldOut] = cutAt(text, preTrainFraction);
  return { preTrain, heldOut };
}

function endingsOf(text, seed) {
  const rng = mulberry32(seed);
  const halves = [];
  for (const s of corpusSentences(text, { minChars: 20, maxChars: 240 }).sentences) {
    const words = s.split(' ');
    if (words.length < 8) continue;
    const k = Math.floor(words.length * (0.4 + 0.2 * rng()));
    halves.push([words.slice(0, k).join(' '), words.slice(k).join(' ')]);
  }
  const otherEnding = (i) => {
    for (;;) {
      const j = Math.floor(rng() * halves.length);
      if (j !== i && halves[j][1] !== halves[i][1]) return halves[j][1];
    }
  };
  const choice = halves.map(([beginning, ending], i) => {
    const label = Math.floor(rng() * 4);
    const choices = [];
    for (let k = 0; k < 4; k++) choices.push(k === label ? ending : otherEnding(i));
    return { context: beginning, choices, label };
  });
  const entailment = halves.map(([beginning, ending], i) =>
    rng() < 0.5 ? { premise: beginning, hypothesis: ending, label: '1' } : { premise: beginning, hypothesis: otherEnding(i), label: '0' },
  );
  return { choice, entailment };
}

/** The two ending tasks, train and validation, from the held-out text. */
export function endingTasks(heldOut, trainFraction = 0.75) {
  const [trainText, validText] = cutAt(heldOut, trainFraction);
  const train = endingsOf(trainText, 1);
  const valid = endingsOf(validText, 2);
  return {
    choice: { train: train.choice, validation: valid.choice },
    entailment: { train: train.entailment, validation: valid.entailment },
  };
}
