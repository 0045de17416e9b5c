// Bit-exact fingerprints of a build: what a refactor must leave unchanged, bit for bit.
// Each case (20-step pre-training pre-LN and post-LN, with and without dropout; a
// fine-tuning run of every GPT-1 task type; greedy and seeded sampling) runs on every
// backend the build can load, and prints one line per (backend, case): a SHA-256 over the
// losses and the final parameters (or the generated tokens).
//
//   node bench/bits.js <root> [--backends native,wasm,reference] > bits-<name>.txt
//   diff bits-before.txt bits-after.txt       # empty: bit-identical
//
// A root is a checkout with its builds done (npm run build); e.g. a `git worktree` of the
// commit to compare against. Only the public API is used, so old and new builds both run.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const root = resolve(args.find((a) => !a.startsWith('--')) ?? '.');
const backendsArg = args.includes('--backends') ? args[args.indexOf('--backends') + 1] : 'native,wasm,reference';
const lib = await import(pathToFileURL(join(root, 'dist/src/index.js')).href);

const work = mkdtempSync(join(tmpdir(), 'ferrogpt-bits-'));
const corpus = join(work, 'corpus.txt');
// A fixed text: pre-training needs no download and every backend sees the same tokens.
const words = 'it is a truth universally acknowledged that a single man in possession of a good fortune must be in want of a wife';
writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `${words.split(' ').slice(i % 7).join(' ')}.`).join('\n'));

function digest(...parts) {
  const h = createHash('sha256');
  for (const p of parts) {
    if (p instanceof Float32Array || p instanceof Int32Array) h.update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    else h.update(Buffer.from(new Float64Array(p.flat(Infinity)).buffer));
  }
  return h.digest('hex').slice(0, 16);
}

function paramsDigest(model) {
  return digest(...model.namedParameters().map(([, p]) => p.data()));
}

async function pretrain(tokenizer, data, { postLN, dropout }) {
  const model = lib.GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, postLN, dropout, seed: 7 });
  const losses = [];
  await lib.train({ model, data, steps: 20, batchSize: 4, lr: 3e-3, warmup: 3, evalBatches: 2, seed: 11, onStep: (s) => { losses.push(s.loss); } });
  return { model, line: digest(losses, paramsDigest(model).split('').map((c) => c.charCodeAt(0))) };
}

const tasks = {
  classification: () => Array.from({ length: 12 }, (_, i) => ({ text: words.split(' ').slice(i % 5, (i % 5) + 4).join(' '), label: i % 2 ? 'pos' : 'neg' })),
  entailment: () => Array.from({ length: 12 }, (_, i) => ({ premise: words.split(' ').slice(i % 4, (i % 4) + 3).join(' '), hypothesis: words.split(' ').slice(i % 6, (i % 6) + 2).join(' '), label: ['entailment', 'neutral', 'contradiction'][i % 3] })),
  similarity: () => Array.from({ length: 12 }, (_, i) => ({ text1: words.split(' ').slice(i % 3, (i % 3) + 3).join(' '), text2: words.split(' ').slice(i % 5, (i % 5) + 3).join(' '), label: i % 2 })),
  choice: () => Array.from({ length: 12 }, (_, i) => ({ context: words.split(' ').slice(i % 4, (i % 4) + 3).join(' '), choices: ['a wife', 'a man', 'good fortune'], label: i % 3 })),
};

for (const name of backendsArg.split(',')) {
  try {
    await lib.useBackend(name);
  } catch (e) {
    console.log(`${name} unavailable: ${e.message.split('\n')[0]}`);
    continue;
  }
  const tokenizer = await lib.Tokenizer.train([corpus], { type: 'char' });
  const data = await lib.prepareData(corpus, { tokenizer, out: join(work, `${name}-tokens.bin`) });
  let base;
  for (const postLN of [false, true]) {
    for (const dropout of [0, 0.1]) {
      const r = await pretrain(tokenizer, data.path, { postLN, dropout });
      console.log(`${name} pretrain postLN=${postLN} dropout=${dropout} ${r.line}`);
      if (!postLN && dropout === 0) base = r.model;
    }
  }
  const ids = Int32Array.from(tokenizer.encode(words).slice(0, 32));
  console.log(`${name} forward logits ${digest(base.forward(ids, 2, 16))}`);
  for (const [type, make] of Object.entries(tasks)) {
    const model = lib.GPT.create({ ...base.config });
    model.loadParameters(base.namedParameters().map(([n, p]) => [n, p.data()]));
    const losses = [];
    const res = await lib.finetune({ model, tokenizer, task: { type, train: make(), validation: make().slice(0, 4) }, epochs: 2, batchSize: 4, lr: 1e-3, seed: 5, onStep: (s) => { losses.push(s.loss, s.gradNorm); } });
    const head = res.model.head.namedParameters().map(([, data]) => data);
    console.log(`${name} finetune ${type} ${digest(losses, paramsDigest(res.model.model).split('').map((c) => c.charCodeAt(0)), ...head)}`);
  }
  for (const [label, opts] of [['greedy', { temperature: 0 }], ['seeded', { temperature: 0.9, topK: 20, seed: 3 }]]) {
    const prompts = ['it is a ', 'a single man'];
    const results = await lib.generate(base, tokenizer, prompts, { maxNewTokens: 24, stopAtEos: false, ...opts }).result;
    console.log(`${name} generate ${label} ${digest(results.map((r) => r.tokens))} ${JSON.stringify(results[0].text)}`);
  }
}
rmSync(work, { recursive: true, force: true });
