// zeroShot(): GPT-2 style task prompting: the task is described in the prompt, with no
// demonstrations and no gradient updates.
//
//   await zeroShot({ model, tokenizer, instruction: 'Is this review positive or negative?',
//                    input: 'A delight from start to finish.', labels: ['positive', 'negative'] });
//
// With `labels`, it classifies: each label is scored as a continuation of the prompt
// (score(), the label's log-likelihood) and the most likely wins. Without, the answer is
// generated (greedy, up to the end of the line, by default). The prompt is the template of
// few-shot.ts with no demonstrations: instruction, separator, 'Input: …\nOutput:'.
// `normalize` and `answerContext` are fewShot's (with 'unconditional', the labels are also
// scored after the template's answer cue, 'Output:' by default).

import { promptTask, type FewShotOptions, type PromptResult, type PromptTemplate } from './few-shot.js';

export interface ZeroShotOptions extends Pick<FewShotOptions, 'model' | 'tokenizer' | 'labels' | 'normalize' | 'answerContext' | 'generate' | 'kvDtype'> {
  instruction: string;
  input: string;
  template?: PromptTemplate;
}

export async function zeroShot(o: ZeroShotOptions): Promise<PromptResult> {
  if (o === null || typeof o !== 'object') throw new Error('zeroShot: expected an options object');
  if (typeof o.instruction !== 'string') throw new Error('zeroShot: instruction must be a string');
  if (typeof o.input !== 'string') throw new Error('zeroShot: input must be a string');
  return promptTask('zeroShot', { ...o, examples: [], query: o.input });
}
