// The consumer test's workflow (test/consumer/run.mjs copies it into an empty project that
// installed the packed tarball): train a tiny model a few steps, save, load, generate.
// One function for both module systems: consumer.mjs passes `import * as lib from
// 'ferrogpt'`, consumer.cjs passes `require('ferrogpt')`. Prints one JSON line.
'use strict';
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { tmpdir } = require('node:os');

module.exports = async function flow(lib, moduleSystem) {
  const { GPT, Tokenizer, TokenDataset, train, generate, initBackend, backendInfo } = lib;
  const backend = await initBackend(); // FERROGPT_BACKEND, else native → wasm → reference
  const info = backendInfo();

  // The corpus ships in the tarball (data/corpus.txt); a slice of it is plenty.
  const text = readFileSync(join(__dirname, 'node_modules', 'ferrogpt', 'data', 'corpus.txt'), 'utf8').slice(0, 20000);
  const tokenizer = Tokenizer.trainFromTexts([text], { vocabSize: 300 });
  const ids = tokenizer.encode(text);
  const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 7 });
  const data = TokenDataset.fromTokens(ids, { vocabSize: tokenizer.vocabSize });
  const result = await train({ model, data, steps: 8, batchSize: 4, blockSize: 32, lr: 3e-3, evalBatches: 0, seed: 1 });

  const dir = mkdtempSync(join(tmpdir(), 'ferrogpt-consumer-model-'));
  try {
    await model.save(dir);
    await tokenizer.save(join(dir, 'tokenizer.json'));
    const loaded = await GPT.load(dir);
    const tok2 = await Tokenizer.load(dir);

    // The loaded weights give the same logits as the trained ones, bit for bit.
    const probe = Int32Array.from(ids.slice(0, 16));
    const a = model.forward(probe, 1, 16);
    const b = loaded.forward(probe, 1, 16);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));

    const run = generate(loaded, tok2, 'The ', { maxNewTokens: 24, temperature: 0.8, topK: 40, seed: 42 });
    let streamed = '';
    for await (const chunk of run) streamed += chunk;
    const gen = await run.result;
    console.log(JSON.stringify({
      moduleSystem,
      backend: backend.name,
      simd: info.simd,
      losses: result.losses,
      loadMaxDiff: maxDiff,
      tokens: gen.tokens,
      text: gen.text,
      streamedMatches: streamed === gen.text,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};
