// What a training step is, for every suite that times one (train, ab, browser): the two
// shapes of the acceptance criteria, seeded batches, the model + AdamW every suite builds,
// and the step itself (zeroGrad, forward + loss, backward, global grad-norm clip, AdamW).
// No node: imports, so the browser suite's page bundles it too (bench/browser/page.js).
// `lib` is { GPT, AdamW, clipGradNorm, backend } from ferrogpt's dist/.

import { mulberry32 } from './rng.js';

/** The two shapes of the acceptance criteria. */
export const CONFIGS = {
  nano: {
    name: 'nanoGPT CPU (4L 4H 128d, T 64, B 12, V 65)',
    model: { vocabSize: 65, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128 },
    batch: 12,
    warmup: 5,
    steps: 40,
    target: 2.0,
  },
  gpt2: {
    name: 'GPT-2 small (12L 12H 768d, T 256, B 4, V 50304)',
    model: { vocabSize: 50304, blockSize: 256, nLayer: 12, nHead: 12, nEmbd: 768 },
    batch: 4,
    warmup: 1,
    steps: 5, // a PyTorch step varies by ±20% on this shared machine: 3 made a noisy median
    target: 1.5,
  },
};

/** One full training step; returns the loss. */
export function ferroStep(lib, model, opt, ids, targets, B, T, clip = 1.0) {
  model.zeroGrad();
  const loss = model.forwardBackward(ids, targets, B, T);
  if (clip) lib.clipGradNorm(model, clip);
  opt.step();
  return loss;
}

/** `count` random (ids, targets) batches, seeded. */
export function randomBatches(count, B, T, V, seed) {
  const r = mulberry32(seed);
  const out = [];
  for (let i = 0; i < count; i++) {
    const ids = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let j = 0; j < B * T; j++) {
      ids[j] = Math.floor(r() * V);
      targets[j] = Math.floor(r() * V);
    }
    out.push({ ids, targets });
  }
  return out;
}

export function makeModel(lib, cfg) {
  const model = lib.GPT.create({ ...cfg.model, dropout: 0, seed: 1337 }, lib.backend);
  const opt = new lib.AdamW(model, { lr: 1e-3, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
  return { model, opt };
}
