// Greedy KV-cached decoding, timed around forwardCached: the prompt's time apart, then one
// token at a time. Shared by the generate suite and the browser suite (whose page bundles
// it: no node: imports).

/** GPT-2 small's shape (bench:generate's model) and the toy shape of --quick runs. */
export const GPT2 = { vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };
export const QUICK = { vocabSize: 512, blockSize: 256, nLayer: 2, nHead: 4, nEmbd: 128 };

export const argmax = (row) => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
};

/**
 * Prompt time and decode tokens/s of greedy KV-cached decoding, timed around forwardCached,
 * for `batch` sequences with the same prompt decoded together. Tokens/s count every
 * sequence: promptTokPerS = batch · promptLen / prompt time, decodeTokPerS = batch ·
 * newTokens / total step time (bench/lib/onnx-decode.js counts the same way).
 */
export function timeDecode(model, promptLen, newTokens, batch = 1) {
  const V = model.config.vocabSize;
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
  const cache = model.createCache(batch, promptLen + newTokens + 1);
  const t0 = performance.now();
  let logits = model.forwardCached(Array.from({ length: batch }, () => prompt), cache);
  const promptMs = performance.now() - t0;
  const steps = [];
  for (let k = 0; k < newTokens; k++) {
    const next = Array.from({ length: batch }, (_, b) => [argmax(logits.subarray(b * V, (b + 1) * V))]);
    const s = performance.now();
    logits = model.forwardCached(next, cache);
    steps.push(performance.now() - s);
  }
  cache.dispose();
  const total = steps.reduce((x, y) => x + y, 0);
  const sorted = [...steps].sort((x, y) => x - y);
  return { promptMs, promptTokPerS: (batch * promptLen) / (promptMs / 1e3), decodeTokPerS: (batch * newTokens) / (total / 1e3), medianStepMs: sorted[sorted.length >> 1], newTokens, promptLen, batch, stepsMs: steps };
}
