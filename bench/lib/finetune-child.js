// One fine-tuning run of bench/suites/finetune.js, in a process of its own so that its peak
// memory (maxRSS) is its own and no run inherits another's allocations.
//
//   node bench/lib/finetune-child.js JOB.json   → one JSON line on stdout
//
// JOB.json: { root, model (a GPT.save folder with tokenizer.json), task: { type, train,
// validation, labels? } (paths of JSON files), options (finetune's, minus model, tokenizer
// and task), threads? }.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const lib = await import(pathToFileURL(join(job.root, 'dist', 'src', 'index.js')).href);
await lib.useBackend('native');
if (job.threads) lib.setThreads(job.threads);
const model = await lib.GPT.load(job.model);
const tokenizer = await lib.Tokenizer.load(join(job.model, 'tokenizer.json'));
const read = (p) => JSON.parse(readFileSync(p, 'utf8'));
const task = { ...job.task, train: read(job.task.train), validation: read(job.task.validation) };
const stepMs = [];
const warnings = [];
let last = performance.now();
const t0 = last;
const r = await lib.finetune({
  ...job.options,
  model,
  tokenizer,
  task,
  onWarning: (w) => warnings.push(w),
  onStep: (s) => {
    const now = performance.now();
    if (s.validation === undefined) stepMs.push(now - last); // updates with an evaluation are not timed
    last = now;
  },
});
stepMs.sort((a, b) => a - b);
process.stdout.write(
  JSON.stringify({
    steps: r.steps,
    seconds: (performance.now() - t0) / 1000,
    msPerStep: stepMs[Math.floor(stepMs.length / 2)] ?? null,
    trainableParameters: r.trainableParameters,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    finalTrainLoss: r.losses.at(-1),
    truncated: r.truncated,
    warnings,
    history: r.history.map((h) => ({ epoch: h.epoch, step: h.step, accuracy: h.metrics.accuracy, f1: h.metrics.f1 ?? null, loss: h.metrics.loss })),
    accuracy: r.validation.accuracy,
    f1: r.validation.f1 ?? null,
    n: task.validation.length,
  }) + '\n',
);
