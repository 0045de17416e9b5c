#!/usr/bin/env node
// Does a ferrogpt LoRA adapter folder load in Hugging Face PEFT, and give the same answers?
// A dev check, not a benchmark: it needs `transformers` and `peft`, which Debian does not
// package, so it is not part of npm test.
//
//   python3 -m venv --system-site-packages /tmp/peft && /tmp/peft/bin/pip install peft transformers
//   FERROGPT_TORCH_PYTHON=/tmp/peft/bin/python node bench/peft-interop.js
//
// ferrogpt side: a small random GPT saved as a model folder, fine-tuned with LoRA (rank 4,
// alpha 8, every linear layer) on a toy classification task, saved as an adapter folder;
// the token ids and class probabilities of its examples go to expected.json.
// PEFT side (bench/peft_interop.py): GPT2ForSequenceClassification.from_pretrained(base),
// its embedding resized to the tokenizer (PEFT's trainable tokens replace rows that must
// exist), PeftModel.from_pretrained(adapter), then the same examples. The score bias, which
// HF's head lacks, is added from the file. Exit 0 when every probability agrees within 1e-4.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PYTHON, runPython } from './suites/train.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.FERROGPT_BENCH_ROOT ?? join(here, '..');
const lib = await import(pathToFileURL(join(root, 'dist', 'src', 'index.js')).href);
await lib.initBackend();

const dir = mkdtempSync(join(os.tmpdir(), 'ferrogpt-peft-'));
try {
  const texts = ['a fine and happy day', 'a dull and sad day', 'happy happy joy', 'sad and gloomy', 'the ball was very merry', 'a grey morning of rain'];
  const train = texts.map((text, i) => ({ text, label: i % 2 ? 'neg' : 'pos' }));
  const tokenizer = lib.Tokenizer.trainFromTexts(texts, { type: 'char' });
  const base = lib.GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 3 });
  await base.save(join(dir, 'base'));
  await tokenizer.save(join(dir, 'base', 'tokenizer.json'));
  base.dispose();
  const model = await lib.GPT.load(join(dir, 'base'));
  const lora = { rank: 4, alpha: 8, targets: 'all-linear' };
  const r = await lib.finetune({ model, tokenizer, task: { type: 'classification', train }, epochs: 4, batchSize: 2, lr: 2e-2, lora, onWarning: () => {} });
  await r.model.save(join(dir, 'adapter'));
  const ft = await lib.FineTunedGPT.load(join(dir, 'adapter')); // as a user would: from the folder
  const data = ft.encode(train);
  const expected = train.map((e, i) => ({ ids: Array.from(data.examples[i].seqs[0]), probabilities: ft.predict(e).probabilities }));
  writeFileSync(join(dir, 'expected.json'), JSON.stringify(expected));
  console.log(`ferrogpt: LoRA ${JSON.stringify(lora)}, ${r.trainableParameters} trainable parameters, adapter folder ${join(dir, 'adapter')}`);
  const result = await runPython([join(here, 'peft_interop.py'), dir], 1, (s) => console.log(s));
  if (result.error) throw new Error(`${PYTHON}: ${result.error} (needs transformers and peft: see the top of this file)`);
  console.log(`PEFT ${result.peft}, transformers ${result.transformers}: ${result.examples} examples, largest probability difference ${result.maxDiff.toExponential(2)}`);
  ft.dispose();
  r.model.dispose();
  model.dispose();
  if (!(result.maxDiff < 1e-4)) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
