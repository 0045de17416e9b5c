// `ferrogpt score`: the log-likelihood of candidate continuations of a context (score()),
// one line per candidate on stdout: rank, score, log-probability, tokens, the candidate;
// with --normalize unconditional, the log-probability after the answer context follows the
// log-probability (score = the first minus the second).

import { DEFAULT_ANSWER_CONTEXT, score } from '../prompt/score.js';
import { HELP_OPTION, UsageError, choiceValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, DTYPE_OPTIONS, KV_DTYPE_OPTIONS, backendChoice, dtypeChoice, kvDtypeChoice, loadModelFolder, logLine } from './env.js';

export const SCORE_SPEC: CommandSpec = {
  name: 'score',
  usage: 'ferrogpt score --model <dir> --context "..." --candidates " a" " b" ... [--normalize none|token|char|unconditional [--answer-context TEXT]]',
  summary: 'Rank candidate continuations of a context by their log-likelihood.',
  options: {
    model: { type: 'string', value: 'DIR', help: 'model folder: config.json, model.safetensors, tokenizer.json' },
    context: { type: 'string', short: 'c', value: 'TEXT', help: 'the context (default: empty)' },
    candidates: { type: 'string', value: 'TEXT...', help: 'the candidates: the values after --candidates (or repeat it); a leading space usually belongs to the candidate' },
    normalize: {
      type: 'string',
      value: 'HOW',
      help: 'none (total log-likelihood, default), token (per token), char (per character) or unconditional (minus the log-likelihood after --answer-context, as GPT-3 scores ARC, OpenBookQA and RACE)',
    },
    'answer-context': { type: 'string', value: 'TEXT', help: `with --normalize unconditional: the neutral prompt (default ${JSON.stringify(DEFAULT_ANSWER_CONTEXT)}; the candidates bring their leading space)` },
    json: { type: 'boolean', help: 'print the result as JSON' },
    ...BACKEND_OPTIONS,
    ...DTYPE_OPTIONS,
    ...KV_DTYPE_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: [
    'Examples:',
    '  ferrogpt score --model gpt2 -c "The capital of France is" --candidates " Paris" " London" " Rome"',
    '  ferrogpt score --model gpt2 -c "Q: What do plants need to make food? A:" --candidates " sunlight" " a small rock" --normalize unconditional --answer-context "A:"',
  ].join('\n'),
};

/** The values after --candidates up to the next flag (parseArgs takes one value per flag). */
function splitCandidates(argv: string[]): { rest: string[]; candidates: string[] } {
  const rest: string[] = [];
  const candidates: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--candidates') {
      while (i + 1 < argv.length && !/^--?[a-zA-Z]/.test(argv[i + 1])) candidates.push(argv[++i]);
    } else if (argv[i].startsWith('--candidates=')) candidates.push(argv[i].slice('--candidates='.length));
    else rest.push(argv[i]);
  }
  return { rest, candidates };
}

export async function scoreCommand(argv: string[]): Promise<number> {
  const { rest, candidates } = splitCandidates(argv);
  const values = parseCommandOrHelp(SCORE_SPEC, rest);
  if (values === null) return 0;
  const modelDir = stringValue(values, 'model');
  if (modelDir === undefined) throw new UsageError('--model is required', 'score');
  if (candidates.length === 0) throw new UsageError('--candidates needs at least one candidate', 'score');
  const normalize = choiceValue(values, 'normalize', ['none', 'token', 'char', 'unconditional'] as const) ?? 'none';
  const answerContext = stringValue(values, 'answer-context');
  if (answerContext !== undefined && normalize !== 'unconditional') throw new UsageError('--answer-context is used only with --normalize unconditional', 'score');
  const kvDtype = kvDtypeChoice(values);
  const choice = backendChoice(values);
  const { model, tokenizer } = await loadModelFolder(modelDir, choice, logLine, dtypeChoice(values));
  try {
    const r = await score(model, tokenizer, stringValue(values, 'context') ?? '', candidates, { normalize, answerContext, kvDtype });
    if (values.json) {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      return 0;
    }
    const order = r.candidates.map((_, i) => i).sort((a, b) => r.scores[b] - r.scores[a]);
    order.forEach((i, rank) => {
      const c = r.candidates[i];
      const logProbs = c.unconditionalLogProb === undefined ? c.logProb.toFixed(4) : `${c.logProb.toFixed(4)}\t${c.unconditionalLogProb.toFixed(4)}`;
      process.stdout.write(`${rank + 1}\t${c.score.toFixed(4)}\t${logProbs}\t${c.tokens.length}\t${JSON.stringify(c.text)}\n`);
    });
  } finally {
    model.dispose();
  }
  return 0;
}
