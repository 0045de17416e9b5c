// The start, delimiter and extract tokens (GPT-1 section 3.3) added to a tokenizer and to a
// model's token embedding.
//
// In the tokenizer they are added tokens (tokenizer.json `added_tokens`, special: true) with
// the next free ids, so the file still loads in Hugging Face tokenizers. In the model they are
// new rows of wte, initialised N(0, 0.02) and tied to the output projection like every row.
// A tokenizer that already has them (a model fine-tuned before, or prepared by hand) keeps
// their ids, and the model keeps their rows.

import type { GPT } from '../model/gpt.js';
import { rebuildGPT } from '../model/resize.js';
import { specialToken } from '../tokenizer/tokenizer-json.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import type { SpecialIds } from './transform.js';

/** Their spellings (in the style of GPT-2's <|endoftext|>). */
export const TASK_TOKENS = Object.freeze({ start: '<|start|>', delim: '<|delim|>', extract: '<|extract|>' });

/**
 * The tokenizer with the three task tokens (a new Tokenizer when any was missing, with ids
 * after its last one), their ids, and the spellings that were added.
 */
export function addTaskTokens(tokenizer: Tokenizer): { tokenizer: Tokenizer; ids: SpecialIds; added: string[] } {
  const added: string[] = [];
  let next = tokenizer.vocabSize;
  const json = tokenizer.toJSON();
  const extra = [];
  const ids = {} as SpecialIds;
  for (const key of ['start', 'delim', 'extract'] as const) {
    const content = TASK_TOKENS[key];
    const have = tokenizer.specialTokens.get(content);
    if (have !== undefined) {
      ids[key] = have;
    } else {
      ids[key] = next;
      extra.push(specialToken(next++, content));
      added.push(content);
    }
  }
  if (extra.length === 0) return { tokenizer, ids, added };
  // toJSON() is shared: build a new object rather than touching it.
  const out = Tokenizer.fromJSON({ ...json, added_tokens: [...json.added_tokens, ...extra] });
  return { tokenizer: out, ids, added };
}

export interface PreparedModel {
  /** The model to fine-tune: `model` itself, or a rebuilt copy (see prepareForTask). */
  model: GPT;
  tokenizer: Tokenizer;
  ids: SpecialIds;
  /** Task tokens that were new (and got fresh embedding rows). */
  added: string[];
  /** Whether `model` is a new GPT (the caller owns both then). */
  rebuilt: boolean;
}

/**
 * Makes `model` and `tokenizer` ready for a task: the task tokens in the tokenizer, a wte row
 * for every id the tokenizer has (new rows N(0, 0.02), and the rows of the newly added tokens
 * re-drawn when they fall inside the model's old vocabulary, e.g. GPT-2's padded 50304), and
 * the dropout asked for. Returns `model` itself when nothing had to change, else a new GPT
 * built from it (the one passed in is left as it was).
 */
export function prepareForTask(model: GPT, tokenizer: Tokenizer, options: { dropout?: number } = {}): PreparedModel {
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new Error(
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocabSize} embedding rows: ` +
        'they do not belong together (pass the tokenizer the model was trained with)',
    );
  }
  const t = addTaskTokens(tokenizer);
  const V = Math.max(model.config.vocabSize, t.tokenizer.vocabSize);
  const newIds = t.added.map((s) => t.tokenizer.specialTokens.get(s)!);
  const reinitRows = newIds.filter((id) => id < model.config.vocabSize);
  const dropout = options.dropout ?? model.config.dropout;
  if (V === model.config.vocabSize && reinitRows.length === 0 && dropout === model.config.dropout) {
    return { model, tokenizer: t.tokenizer, ids: t.ids, added: t.added, rebuilt: false };
  }
  const rebuilt = rebuildGPT(model, { vocabSize: V, dropout, reinitRows });
  return { model: rebuilt, tokenizer: t.tokenizer, ids: t.ids, added: t.added, rebuilt: true };
}
