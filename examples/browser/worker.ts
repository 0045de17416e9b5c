// The example's Web Worker: all of ferrogpt runs here, so the page stays responsive while
// the kernels compute. The page posts a Request, the worker answers with Replies.
//
//   init      load the wasm backend (useBackend('wasm')), then the checkpoint at `base`:
//             config.json + model.safetensors (GPT.fromSafetensors) and tokenizer.json
//             (Tokenizer.fromJSON) — no file system in a browser, so bytes via fetch
//   generate  stream generate()'s chunks back as they come
//   train     a fresh tiny GPT trained with `train` on the tokens of `base`train.txt, one
//             reply per step
//
// One job at a time (the page disables its buttons while one runs); `stop` ends it.

import { GPT, TokenDataset, Tokenizer, backendInfo, generate, train, useBackend, type BackendInfo } from 'ferrogpt';

export type Request =
  | { type: 'init'; base: string }
  | { type: 'generate'; model: 'checkpoint' | 'trained'; prompt: string; maxNewTokens: number; seed: number; temperature: number; topK: number }
  | { type: 'train'; steps: number; batchSize: number; lr: number }
  | { type: 'stop' };

export type Reply =
  | { type: 'backend'; info: BackendInfo }
  | { type: 'model'; params: number; vocabSize: number; nLayer: number; nEmbd: number; trainTokens: number }
  | { type: 'chunk'; text: string }
  | { type: 'generated'; prompt: string; text: string; tokens: number[]; finishReason: string; ms: number }
  | { type: 'step'; step: number; steps: number; loss: number; tokensPerSec: number }
  | { type: 'trained'; losses: number[]; stopped: boolean; ms: number; params: number }
  | { type: 'error'; during: string; message: string };

const post = (r: Reply): void => (self as unknown as Worker).postMessage(r);

let tokenizer: Tokenizer | null = null;
let checkpoint: GPT | null = null;
let trained: GPT | null = null;
let trainIds: Int32Array | null = null;
let abort: AbortController | null = null;

async function fetchOk(url: string): Promise<Response> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res;
}

async function init(base: string): Promise<void> {
  await useBackend('wasm'); // explicit: a browser has no native addon
  post({ type: 'backend', info: backendInfo() });
  const [config, weights, tok] = await Promise.all([
    fetchOk(`${base}config.json`).then((r) => r.text()),
    fetchOk(`${base}model.safetensors`).then((r) => r.arrayBuffer()),
    fetchOk(`${base}tokenizer.json`).then((r) => r.json()),
  ]);
  tokenizer = Tokenizer.fromJSON(tok);
  checkpoint = GPT.fromSafetensors(config, new Uint8Array(weights));
  const text = await fetch(`${base}train.txt`).then((r) => (r.ok ? r.text() : ''), () => '');
  trainIds = Int32Array.from(tokenizer.encode(text || FALLBACK_TEXT));
  const c = checkpoint.config;
  post({ type: 'model', params: checkpoint.numParameters(), vocabSize: c.vocabSize, nLayer: c.nLayer, nEmbd: c.nEmbd, trainTokens: trainIds.length });
}

async function runGenerate(req: Extract<Request, { type: 'generate' }>): Promise<void> {
  const model = req.model === 'trained' ? trained : checkpoint;
  if (!model || !tokenizer) throw new Error(`no ${req.model} model yet`);
  const t0 = performance.now();
  const run = generate(model, tokenizer, req.prompt, {
    maxNewTokens: req.maxNewTokens,
    seed: req.seed,
    temperature: req.temperature,
    topK: req.topK,
    signal: abort!.signal,
  });
  for await (const text of run) post({ type: 'chunk', text });
  const r = await run.result;
  post({ type: 'generated', prompt: req.prompt, text: r.text, tokens: r.tokens, finishReason: r.finishReason, ms: performance.now() - t0 });
}

async function runTrain(req: Extract<Request, { type: 'train' }>): Promise<void> {
  if (!tokenizer || !trainIds) throw new Error('no tokenizer yet');
  const T = 32;
  if (trainIds.length < T + 2) throw new Error('the training text is too short');
  trained?.dispose();
  trained = null;
  const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 48, seed: 1 });
  // The same `train` verb as in Node, on in-memory tokens (no token file in a browser).
  const data = TokenDataset.fromTokens(trainIds, { vocabSize: tokenizer.vocabSize, valFraction: 0 });
  const result = await train({
    model,
    data,
    steps: req.steps,
    batchSize: req.batchSize,
    blockSize: T,
    lr: req.lr,
    evalBatches: 0,
    signal: abort!.signal,
    onStep: async (info) => {
      post({ type: 'step', step: info.step, steps: req.steps, loss: info.loss, tokensPerSec: info.tokensPerSec });
      await new Promise((r) => setTimeout(r, 0)); // let `stop` in
    },
  });
  trained = model;
  post({ type: 'trained', losses: result.losses, stopped: result.stopped, ms: result.elapsedMs, params: model.numParameters() });
}

let busy: Promise<void> = Promise.resolve();

self.onmessage = (e: MessageEvent<Request>) => {
  const req = e.data;
  if (req.type === 'stop') {
    abort?.abort();
    return;
  }
  busy = busy.then(async () => {
    abort = new AbortController();
    try {
      if (req.type === 'init') await init(req.base);
      else if (req.type === 'generate') await runGenerate(req);
      else if (req.type === 'train') await runTrain(req);
    } catch (err) {
      post({ type: 'error', during: req.type, message: err instanceof Error ? err.message : String(err) });
    }
  });
};

const FALLBACK_TEXT =
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. ' +
  'However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well ' +
  'fixed in the minds of the surrounding families, that he is considered the rightful property of some one or other of their daughters.';
