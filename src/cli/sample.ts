// `ferrogpt sample`: load a model folder (config.json + model.safetensors + tokenizer.json,
// as `ferrogpt train` writes, or a Hugging Face GPT-2 folder) and print continuations of a
// prompt. Text streams to stdout as it is drawn; everything else goes to stderr, so
// `ferrogpt sample ... > out.txt` captures only the samples.

import { GPT } from '../model/gpt.js';
import type { KVDType } from '../model/kv-cache.js';
import { generate } from '../prompt/generate.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { HELP_OPTION, UsageError, intValue, numValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, DTYPE_OPTIONS, KV_DTYPE_OPTIONS, backendChoice, dtypeChoice, kvDtypeChoice, loadModelFolder, logLine } from './env.js';

export const SAMPLE_SPEC: CommandSpec = {
  name: 'sample',
  usage: 'ferrogpt sample --model <dir> [--prompt "..."] [options]',
  summary: 'Continue a prompt with a trained model (a folder written by `ferrogpt train`, or a Hugging Face GPT-2 folder).',
  options: {
    model: { type: 'string', value: 'DIR', help: 'model folder: config.json, model.safetensors, tokenizer.json' },
    prompt: { type: 'string', short: 'p', value: 'TEXT', help: 'text to continue (default: empty, i.e. start of a document)' },
    'max-new-tokens': { type: 'string', short: 'n', value: 'N', help: 'tokens to generate per sample (default 200)' },
    temperature: { type: 'string', short: 't', value: 'T', help: 'softmax temperature; 0 = greedy (default 0.8)' },
    'top-k': { type: 'string', short: 'k', value: 'K', help: 'sample among the K most likely tokens; 0 = all (default 40)' },
    seed: { type: 'string', value: 'N', help: 'seed of the draws; the same seed gives the same text (default 1)' },
    'num-samples': { type: 'string', value: 'N', help: 'samples to print, seeds seed, seed+1, … (default 1)' },
    ...BACKEND_OPTIONS,
    ...DTYPE_OPTIONS,
    ...KV_DTYPE_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: ['Examples:', '  ferrogpt sample --model ferrogpt-demo --prompt "Elizabeth" -n 300', '  ferrogpt sample --model runs/austen -p "It is a truth" -t 0      # greedy'].join('\n'),
};

export interface SampleRequest {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  /** The KV cache's element type (default f32). */
  kvDtype?: KVDType;
}

/**
 * Prints one sample: the prompt, then the continuation streamed as it is drawn. The prompt
 * is printed as typed (its tokens decode to the same text); returns the continuation.
 */
export async function printSample(model: GPT, tokenizer: Tokenizer, r: SampleRequest, write: (s: string) => void): Promise<string> {
  write(r.prompt);
  let text = '';
  for await (const piece of generate(model, tokenizer, r.prompt, { maxNewTokens: r.maxNewTokens, temperature: r.temperature, topK: r.topK, seed: r.seed, kvDtype: r.kvDtype })) {
    write(piece);
    text += piece;
  }
  write('\n');
  return text;
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(SAMPLE_SPEC, argv);
  if (values === null) return 0;
  const modelDir = stringValue(values, 'model');
  if (modelDir === undefined) throw new UsageError('--model is required (a folder written by `ferrogpt train`)');
  const req: SampleRequest = {
    prompt: values.prompt === undefined ? '' : String(values.prompt),
    maxNewTokens: intValue(values, 'max-new-tokens', 200, 0),
    temperature: numValue(values, 'temperature', 0.8, 0),
    topK: intValue(values, 'top-k', 40, 0),
    seed: intValue(values, 'seed', 1, 0),
    kvDtype: kvDtypeChoice(values),
  };
  if (req.seed > 0xffffffff) throw new UsageError(`--seed must be below 2^32, got ${req.seed}`);
  const count = intValue(values, 'num-samples', 1, 1);
  const choice = backendChoice(values);

  const { model, tokenizer } = await loadModelFolder(modelDir, choice, logLine, dtypeChoice(values));
  try {
    const write = (s: string) => void process.stdout.write(s);
    for (let i = 0; i < count; i++) {
      if (count > 1) process.stderr.write(`--- sample ${i + 1}/${count} (seed ${req.seed + i}) ---\n`);
      await printSample(model, tokenizer, { ...req, seed: (req.seed + i) >>> 0 }, write);
    }
  } finally {
    model.dispose();
  }
  return 0;
}
