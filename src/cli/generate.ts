// `ferrogpt generate`: KV-cached generation from a model folder (as `ferrogpt sample`
// loads), with the full sampling options of generate(): top-p, repetition penalty, stop
// strings, several prompts as one batch. With --stream, text is printed as it is produced;
// otherwise each prompt's text is printed when done. Everything but the text goes to stderr.

import { generate } from '../prompt/generate.js';
import { HELP_OPTION, UsageError, intValue, numValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, DTYPE_OPTIONS, KV_DTYPE_OPTIONS, backendChoice, dtypeChoice, kvDtypeChoice, loadModelFolder, logLine } from './env.js';

export const GENERATE_SPEC: CommandSpec = {
  name: 'generate',
  usage: 'ferrogpt generate --model <dir> --prompt "..." [--stream] [options]',
  summary: 'Generate text with a KV cache: top-k/top-p sampling, stop strings, streaming.',
  options: {
    model: { type: 'string', value: 'DIR', help: 'model folder: config.json, model.safetensors, tokenizer.json' },
    prompt: { type: 'string', short: 'p', value: 'TEXT', help: 'text to continue; repeat for several prompts (one batch)' },
    stream: { type: 'boolean', short: 's', help: 'print tokens as they arrive (one prompt at a time)' },
    'max-new-tokens': { type: 'string', short: 'n', value: 'N', help: 'tokens to generate per prompt (default 100)' },
    temperature: { type: 'string', short: 't', value: 'T', help: 'softmax temperature; 0 = greedy (default 0.8)' },
    'top-k': { type: 'string', short: 'k', value: 'K', help: 'sample among the K most likely tokens; 0 = all (default 40)' },
    'top-p': { type: 'string', value: 'P', help: 'nucleus sampling: the most likely tokens reaching probability P (default 1)' },
    'repetition-penalty': { type: 'string', value: 'R', help: '> 1 discourages repeating tokens (default 1)' },
    stop: { type: 'string', value: 'TEXT', help: 'stop before this text (repeatable; \\n is a newline)' },
    seed: { type: 'string', value: 'N', help: 'seed of the draws (default 1)' },
    ...BACKEND_OPTIONS,
    ...DTYPE_OPTIONS,
    ...KV_DTYPE_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: ['Examples:', '  ferrogpt generate --model gpt2 -p "The meaning of life is" --stream -n 50', '  ferrogpt generate --model runs/austen -p "Elizabeth" -p "Darcy" --stop "\\n" -t 0'].join('\n'),
};

/** parseArgs keeps only the last value of a repeated string flag; collect all of them. */
function repeated(argv: string[], long: string, short?: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === `--${long}` || (short && a === `-${short}`)) out.push(argv[++i] ?? '');
    else if (a.startsWith(`--${long}=`)) out.push(a.slice(long.length + 3));
  }
  return out;
}

export async function generateCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(GENERATE_SPEC, argv);
  if (values === null) return 0;
  const modelDir = stringValue(values, 'model');
  if (modelDir === undefined) throw new UsageError('--model is required', 'generate');
  const prompts = repeated(argv, 'prompt', 'p');
  if (prompts.length === 0) prompts.push('');
  const stop = repeated(argv, 'stop').map((s) => s.replace(/\\n/g, '\n'));
  if (stop.some((s) => s === '')) throw new UsageError('--stop must not be empty', 'generate');
  const opts = {
    maxNewTokens: intValue(values, 'max-new-tokens', 100, 0),
    temperature: numValue(values, 'temperature', 0.8, 0),
    topK: intValue(values, 'top-k', 40, 0),
    topP: numValue(values, 'top-p', 1, 0, 1),
    repetitionPenalty: numValue(values, 'repetition-penalty', 1, 0),
    seed: intValue(values, 'seed', 1, 0),
    stop,
    kvDtype: kvDtypeChoice(values),
  };
  if (opts.seed > 0xffffffff) throw new UsageError(`--seed must be below 2^32, got ${opts.seed}`, 'generate');
  if (opts.topP === 0) throw new UsageError('--top-p must be in (0, 1]', 'generate');
  const choice = backendChoice(values);
  const { model, tokenizer } = await loadModelFolder(modelDir, choice, logLine, dtypeChoice(values));
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const out = (s: string): void => void process.stdout.write(s);
    if (values.stream) {
      for (const p of prompts) {
        out(p);
        const run = generate(model, tokenizer, p, { ...opts, signal: ac.signal });
        for await (const t of run) out(t);
        const r = await run.result;
        out('\n');
        process.stderr.write(`[${r.tokens.length} tokens, ${r.finishReason}]\n`);
      }
    } else {
      const results = await generate(model, tokenizer, prompts, { ...opts, signal: ac.signal }).result;
      results.forEach((r, i) => {
        out(prompts[i] + r.text + '\n');
        process.stderr.write(`[${r.tokens.length} tokens, ${r.finishReason}]\n`);
      });
    }
  } finally {
    process.off('SIGINT', onSigint);
    model.dispose();
  }
  return ac.signal.aborted ? 130 : 0;
}
