// `ferrogpt demo`: the first thing to run on a fresh machine. Trains the tiny preset,
// character-level, on the bundled corpus (data/corpus.txt) for a wall-clock budget, then
// prints a few samples and says where the model and the loss curve went.
//
// The budget is met by sizing the run, not just by cutting it: a few timed updates give the
// cost of one, and the step count is chosen so the cosine schedule finishes within the
// budget (a run cut halfway through its schedule samples worse). A deadline stops it anyway
// if the machine slows down.

import { resolve } from 'node:path';
import type { GPT } from '../model/gpt.js';
import { HELP_OPTION, UsageError, numValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, backendChoice, bundledCorpus, logLine as log, setupBackend } from './env.js';
import { PRESETS } from './presets.js';
import { formatDuration } from './progress.js';
import { printSample } from './sample.js';
import { runTraining, type TrainSettings } from './train.js';

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  usage: 'ferrogpt demo [--minutes M] [--out DIR] [--backend NAME] [--threads N]',
  summary: 'Train a tiny character-level GPT on Jane Austen (bundled) for a few minutes, then print samples.',
  options: {
    minutes: { type: 'string', short: 'm', value: 'M', help: 'training time budget in minutes (default 3)' },
    out: { type: 'string', value: 'DIR', help: 'output folder (default ./ferrogpt-demo)' },
    data: { type: 'string', value: 'PATH', help: 'train on this text instead of the bundled corpus', hidden: true },
    ...BACKEND_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: 'Afterwards: ferrogpt sample --model ferrogpt-demo --prompt "Elizabeth"',
};

const PROMPTS = ['It is a truth universally acknowledged, ', 'Elizabeth ', '"My dear Mr. Bennet," '];
const EVALS = 20; // validation points on the curve
const EVAL_BATCHES = 10; // train()'s default evalBatches

export async function demoCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(DEMO_SPEC, argv);
  if (values === null) return 0;
  const minutes = numValue(values, 'minutes', 3, 0);
  if (minutes <= 0 || minutes > 24 * 60) throw new UsageError(`--minutes must be in (0, 1440], got ${JSON.stringify(values.minutes)}`);
  const choice = backendChoice(values);
  const data = stringValue(values, 'data') ?? bundledCorpus();
  const out = resolve(stringValue(values, 'out') ?? 'ferrogpt-demo');

  await setupBackend(choice, log);
  const budgetMs = minutes * 60_000;
  const t0 = Date.now();
  const p = PRESETS.tiny;
  const settings: TrainSettings = {
    data,
    tokenizer: 'char',
    preset: 'tiny',
    out,
    steps: 1, // set by plan() below
    batch: p.batch,
    lr: p.lr,
    warmup: p.warmup,
    blockSize: p.model.blockSize,
    dropout: 0,
    evalEvery: 0,
    checkpointEvery: 0,
    seed: 1337,
    resume: false,
    precision: 'f32',
  };
  log(`demo: training for ${formatDuration(budgetMs / 1000)} (wall clock), then sampling`);
  const { model, tokenizer, svg } = await runTraining(settings, {
    plan: async (model) => {
      const stepMs = timeUpdate(model, settings.batch, settings.blockSize);
      const evalMs = EVALS * EVAL_BATCHES * (stepMs / 3); // a forward is ~1/3 of forward + backward
      const sampleMs = PROMPTS.length * 200 * (stepMs / settings.batch / 3);
      // What is left after setup, the evaluations and the samples; 10% slack for noise.
      const left = budgetMs - (Date.now() - t0) - evalMs - sampleMs;
      const steps = Math.max(10, Math.floor((0.9 * left) / stepMs));
      log(`demo: ~${stepMs.toFixed(0)} ms per update → ${steps} updates`);
      return { steps, evalEvery: Math.max(1, Math.ceil(steps / EVALS)), checkpointEvery: Math.max(1, Math.ceil(steps / 4)), warmup: Math.min(p.warmup, Math.floor(steps / 10)) };
    },
    deadline: t0 + budgetMs,
  });

  try {
    log('');
    log(`samples (temperature 0.8, top-k 40):`);
    const write = (s: string) => void process.stdout.write(s);
    for (const [i, prompt] of PROMPTS.entries()) {
      write('\n');
      await printSample(model, tokenizer, { prompt, maxNewTokens: 200, temperature: 0.8, topK: 40, seed: i + 1 }, write);
    }
    log('');
    log(`model and tokenizer: ${out}`);
    log(`loss curve:          ${svg}`);
    log(`more samples:        ferrogpt sample --model ${relativeOrAbsolute(out)} --prompt "Mr. Darcy"`);
  } finally {
    model.dispose();
  }
  return 0;
}

/** Milliseconds of one training update (forward + backward) at (B, T), after a warm-up pass. */
function timeUpdate(model: GPT, B: number, T: number): number {
  const V = model.config.vocabSize;
  const ids = new Int32Array(B * T).map((_, i) => (i * 7919) % V);
  const targets = new Int32Array(B * T).map((_, i) => (i * 104729 + 1) % V);
  const steps = model.trainingSteps;
  const run = (): void => {
    model.zeroGrad();
    model.forwardBackward(ids, targets, B, T);
  };
  run(); // plans the activations, warms the caches
  const t = performance.now();
  const n = 3;
  for (let i = 0; i < n; i++) run();
  const ms = (performance.now() - t) / n;
  model.zeroGrad();
  model.trainingSteps = steps; // the timing passes must not shift the dropout masks of the run
  return ms * 1.15; // the optimizer step, clipping and batch reads cost a little on top
}

function relativeOrAbsolute(path: string): string {
  const cwd = process.cwd();
  return path.startsWith(cwd + '/') ? path.slice(cwd.length + 1) : path;
}
