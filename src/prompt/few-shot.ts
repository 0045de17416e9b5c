// fewShot(): GPT-3 style in-context learning: an instruction, k demonstrations, then the
// query, and the model's continuation is the answer. No gradient updates.
//
//   const r = await fewShot({ model, tokenizer, instruction: 'Translate English to French.',
//     examples: [{ input: 'cheese', output: 'fromage' }, ...], query: 'house', labels? });
//   r.answer; r.demonstrations;  // how many examples fit in the context
//
// With `labels`, the answer is the label whose text is the most likely continuation
// (score(), GPT-2/GPT-3 multiple-choice style); without, it is generated (greedy by default,
// stopping at the end of the line).
//
// Templates are data (PromptTemplate): the instruction line, one demonstration with {input}
// and {output}, and the separator between blocks. The query is the demonstration cut just
// before {output}, and the whitespace in front of {output} starts the answer (so the default
// 'Input: {input}\nOutput: {output}' asks 'Input: …\nOutput:' and scores ' ' + label).
// The template's answer cue is the query after its input, without the whitespace before it
// ('Output:' for the default): normalize 'unconditional' scores the answers after it by
// default (see promptTask).
//
// Fitting the context: the prompt plus room for the answer (the longest label, or
// maxNewTokens) must fit the model's blockSize. Demonstrations are dropped, the earliest
// first (the ones farthest from the query), until it fits; `demonstrations` says how many
// were used. If the instruction and the query alone do not fit, fewShot throws.

import type { GPT } from '../model/gpt.js';
import { resolveKvDtype, type KVDType } from '../model/kv-cache.js';
import { generate, type FinishReason, type GenerateOptions, type PromptTokenizer } from './generate.js';
import { scoreSync, type ScoreNormalization } from './score.js';

export interface PromptTemplate {
  /** The instruction block; {instruction} is replaced. Left out when there is no instruction. */
  instruction: string;
  /** One demonstration, with {input} and {output}. */
  example: string;
  /** Between blocks (instruction, demonstrations, query). */
  separator: string;
}

export const DEFAULT_TEMPLATE: Readonly<PromptTemplate> = Object.freeze({
  instruction: '{instruction}',
  example: 'Input: {input}\nOutput: {output}',
  separator: '\n\n',
});

export interface Example {
  input: string;
  output: string;
}

export interface FewShotOptions {
  model: GPT;
  tokenizer: PromptTokenizer;
  instruction?: string;
  examples: readonly Example[];
  query: string;
  /** Use at most the first k examples. Default: all. */
  k?: number;
  template?: PromptTemplate;
  /** Classify: the answer is the most likely of these. */
  labels?: readonly string[];
  /** How label scores are compared (see score()). Default 'none' (total log-likelihood). */
  normalize?: ScoreNormalization;
  /**
   * With normalize 'unconditional': what the labels' prior likelihood is measured after.
   * Default: the template's answer cue ('Output:' for the default template).
   */
  answerContext?: string | readonly number[];
  /** Generation options when there are no labels (default: greedy, stop at '\n', maxNewTokens 32). */
  generate?: GenerateOptions;
  /**
   * The KV cache's element type, for scoring the labels and for generating: 'f32' (default)
   * or 'bf16' (half the cache memory). `generate.kvDtype`, if given, wins for generation.
   */
  kvDtype?: KVDType;
}

export interface PromptResult {
  /** The prompt the model saw. */
  prompt: string;
  /** Demonstrations used (after dropping those that did not fit). */
  demonstrations: number;
  /** The predicted label, or the generated text (trimmed). */
  answer: string;
  /** With labels: the index of the answer and every label's score. */
  index?: number;
  scores?: number[];
  /** Without labels: why generation ended. */
  finishReason?: FinishReason;
}

/** The pieces a template gives: how to write the instruction, a demonstration, the query. */
export function compileTemplate(t: PromptTemplate): {
  instruction: (text: string) => string;
  example: (e: Example) => string;
  query: (input: string) => string;
  answerPrefix: string;
  answerCue: string;
  separator: string;
} {
  if (t === null || typeof t !== 'object' || typeof t.instruction !== 'string' || typeof t.example !== 'string' || typeof t.separator !== 'string') {
    throw new Error('template must be { instruction: string, example: string, separator: string }');
  }
  const at = t.example.indexOf('{output}');
  if (at < 0 || !t.example.includes('{input}')) throw new Error('template.example must contain {input} and {output}');
  const before = t.example.slice(0, at);
  const answerPrefix = /\s*$/.exec(before)![0];
  const queryTpl = before.slice(0, before.length - answerPrefix.length);
  // The cue is what the query asks with once the input is given ('\nOutput:' → 'Output:');
  // a template with no {input} before {output} has only its query text as the cue.
  const inputAt = queryTpl.lastIndexOf('{input}');
  const answerCue = (inputAt < 0 ? queryTpl : queryTpl.slice(inputAt + '{input}'.length)).trimStart();
  const fill = (s: string, vars: Record<string, string>): string => s.replace(/\{(instruction|input|output)\}/g, (m, k: string) => vars[k] ?? m);
  return {
    instruction: (text) => fill(t.instruction, { instruction: text }),
    example: (e) => fill(t.example, { input: e.input, output: e.output }),
    query: (input) => fill(queryTpl, { input }),
    answerPrefix,
    answerCue,
    separator: t.separator,
  };
}

export async function fewShot(o: FewShotOptions): Promise<PromptResult> {
  const fn = o.examples.length === 0 && o.k === undefined ? 'zeroShot' : 'fewShot';
  return promptTask(fn, o);
}

/** The shared core of zeroShot and fewShot. */
export async function promptTask(fn: string, o: FewShotOptions): Promise<PromptResult> {
  const { model, tokenizer, instruction, query, labels } = o;
  if (!Array.isArray(o.examples)) throw new Error(`${fn}: examples must be an array of { input, output }`);
  for (const e of o.examples) {
    if (e === null || typeof e !== 'object' || typeof e.input !== 'string' || typeof e.output !== 'string') throw new Error(`${fn}: each example must be { input: string, output: string }`);
  }
  if (typeof query !== 'string') throw new Error(`${fn}: query must be a string`);
  if (labels !== undefined && (!Array.isArray(labels) || labels.length === 0 || labels.some((l) => typeof l !== 'string' || l === ''))) {
    throw new Error(`${fn}: labels must be a non-empty array of non-empty strings`);
  }
  const k = o.k ?? o.examples.length;
  if (!Number.isSafeInteger(k) || k < 0) throw new Error(`${fn}: k must be an integer >= 0, got ${k}`);
  const tpl = compileTemplate(o.template ?? DEFAULT_TEMPLATE);
  const kvDtype = resolveKvDtype(fn, o.kvDtype);
  const gen: GenerateOptions = { temperature: 0, stop: ['\n'], maxNewTokens: 32, kvDtype, ...o.generate };
  const { blockSize } = model.config;

  // Room for the answer.
  const answers = labels?.map((l) => tpl.answerPrefix + l) ?? [];
  const room = labels ? Math.max(...answers.map((a) => tokenizer.encode(a).length)) : Math.min(gen.maxNewTokens ?? 32, blockSize - 1);
  const build = (n: number): string => {
    const demos = o.examples.slice(0, k);
    const blocks: string[] = [];
    if (instruction !== undefined && instruction !== '') blocks.push(tpl.instruction(instruction));
    for (const e of demos.slice(demos.length - n)) blocks.push(tpl.example(e));
    blocks.push(tpl.query(query));
    return blocks.join(tpl.separator);
  };
  const fits = (p: string): boolean => tokenizer.encode(p).length + room <= blockSize;
  const available = Math.min(k, o.examples.length);
  let n = available;
  let prompt = build(n);
  if (!fits(prompt)) {
    const alone = build(0);
    const need = tokenizer.encode(alone).length + room;
    if (need > blockSize) {
      throw new Error(`${fn}: the query does not fit the model's context: the instruction and query need ${need - room} tokens, plus ${room} for the answer, more than blockSize ${blockSize}`);
    }
    // The most demonstrations that fit (fewer demonstrations, fewer tokens: binary search).
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (fits(build(mid))) lo = mid;
      else hi = mid - 1;
    }
    n = lo;
    prompt = build(n);
  }

  if (labels) {
    // The unconditional pass defaults to the template's own cue rather than score()'s
    // 'Answer:': the labels then follow the very tokens they follow in the prompt, so the
    // difference of the two passes is what the instruction, demonstrations and query add.
    // That is the role "Answer: " and "A: " play in GPT-3, whose templates ask with them.
    const normalize = o.normalize ?? 'none';
    const answerContext = normalize === 'unconditional' ? (o.answerContext ?? tpl.answerCue) : o.answerContext;
    const r = scoreSync(model, tokenizer, prompt, answers, { normalize, answerContext, kvDtype });
    return { prompt, demonstrations: n, answer: labels[r.best], index: r.best, scores: r.scores };
  }
  const r = await generate(model, tokenizer, prompt, gen).result;
  return { prompt, demonstrations: n, answer: r.text.trim(), finishReason: r.finishReason };
}
