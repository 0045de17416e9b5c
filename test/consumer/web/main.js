// A browser app that installed ferrogpt: run.mjs bundles it with vite to check that the
// package bundles for browsers (wasm files emitted as assets, Node modules mapped by the
// package's "browser" field instead of stubbed).
import { GPT, Tokenizer, backendInfo, generate, useBackend } from 'ferrogpt';

await useBackend('wasm');
const tokenizer = Tokenizer.trainFromTexts(['hello browser'], { type: 'char' });
const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 8, nLayer: 1, nHead: 1, nEmbd: 8 });
const { text } = await generate(model, tokenizer, 'he', { maxNewTokens: 4, seed: 1 }).result;
document.getElementById('out').textContent = JSON.stringify({ ...backendInfo(), text });
