// bf16 mixed-precision training (GPT.precision, train({ precision: 'bf16' })): the passes read
// a bf16 copy of the f32 master weights, re-rounded once per update; the run tracks f32's,
// is deterministic, resumes exactly, and leaves the model as it found it.

import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import type { Backend } from '../src/backend/backend.js';
import { GPT } from '../src/model/gpt.js';
import { TokenDataset } from '../src/train/data.js';
import { AdamW } from '../src/train/optimizer.js';
import { finetune } from '../src/train/finetune.js';
import { train } from '../src/train/train.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { classificationTask } from './helpers/synthetic-tasks.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';
import { useScratchDir } from './helpers/folders.js';

const CONFIG = { vocabSize: 40, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 64, seed: 5 };
// A learnable stream: a repeating pattern with some noise, so the loss falls.
const tokens = Array.from({ length: 4000 }, (_, i) => ((i * 7) % 13 + (i % 5 === 0 ? (i * 31) % 40 : 0)) % 40);
const data = () => TokenDataset.fromTokens(tokens, { vocabSize: CONFIG.vocabSize });
const run = (model: GPT, precision: 'f32' | 'bf16', extra: Partial<Parameters<typeof train>[0]> = {}) =>
  train({ model, data: data(), steps: 30, batchSize: 4, lr: 3e-3, warmup: 3, evalBatches: 0, seed: 9, precision, ...extra });

describeEachBackend('bf16 mixed precision', (backend: Backend) => {
  it('a pass in bf16 precision is the bf16 model\'s pass, also after an optimizer step (the copy follows the master)', () => {
    const model = GPT.create(CONFIG, backend);
    const ids = Int32Array.from({ length: 32 }, (_, i) => (i * 11) % 40);
    const targets = ids.map((x) => (x + 1) % 40);
    const opt = new AdamW(model, { lr: 1e-2 });
    for (let step = 0; step < 2; step++) {
      model.precision = 'bf16';
      const got = model.forward(ids, 2, 16);
      model.precision = 'f32';
      const bf16 = GPT.fromParameters(CONFIG, model.namedParameters().map(([n, p]) => [n, p.data()] as const), backend).toDtype('bf16');
      expect(got).toEqual(bf16.forward(ids, 2, 16));
      bf16.dispose();
      model.precision = 'bf16';
      model.zeroGrad();
      model.forwardBackward(ids, targets, 2, 16);
      opt.step();
    }
    expect(model.precision).toBe('bf16');
    model.dispose();
  });

  it('gradients in bf16 track f32 (normwise within 2%)', () => {
    const model = GPT.create(CONFIG, backend);
    const ids = Int32Array.from({ length: 64 }, (_, i) => (i * 13) % 40);
    const targets = ids.map((x) => (x + 3) % 40);
    const grads = (p: 'f32' | 'bf16') => {
      model.precision = p;
      model.zeroGrad();
      const loss = model.forwardBackward(ids, targets, 4, 16);
      return { loss, g: Float32Array.from(model.namedParameters().flatMap(([, x]) => Array.from(x.grad()!))) };
    };
    const f32 = grads('f32');
    const bf16 = grads('bf16');
    expect(Math.abs(bf16.loss - f32.loss) / f32.loss).toBeLessThan(5e-3);
    expectClose(bf16.g, f32.g, 2e-2, `${backend.name} bf16 gradients vs f32`);
    model.dispose();
  });

});

// Whole runs: the backends that run them in seconds (the reference backend's kernels are the
// specification, checked above pass by pass).
describeEachBackend('bf16 mixed precision: training runs', (backend: Backend) => {
  it('train in bf16 follows the f32 run, is deterministic, and restores the precision', async () => {
    const a = GPT.create(CONFIG, backend);
    const b = GPT.create(CONFIG, backend);
    const c = GPT.create(CONFIG, backend);
    const f32 = await run(a, 'f32');
    const bf16 = await run(b, 'bf16');
    const again = await run(c, 'bf16');
    expect(again.losses).toEqual(bf16.losses);
    expect(b.precision).toBe('f32');
    expect(bf16.losses[29]).toBeLessThan(bf16.losses[0] * 0.8); // it learns
    for (let i = 0; i < 30; i++) expect(Math.abs(bf16.losses[i] - f32.losses[i]), `step ${i + 1}`).toBeLessThan(0.03 * f32.losses[i]);
    for (const m of [a, b, c]) m.dispose();
  });
}, ['native', 'wasm', 'wasm-scalar']);

describe('bf16 mixed precision: resume and bf16 models', () => {
  const dir = useScratchDir('ferrogpt-mixed-');
  beforeAll(async () => {
    await initBackend();
  });

  it('a resumed bf16 run gives the uninterrupted run\'s losses, bit for bit', async () => {
    const whole = GPT.create(CONFIG);
    const full = await run(whole, 'bf16');
    const first = GPT.create(CONFIG);
    const ckpt = join(dir(), 'ckpt');
    const stop = new AbortController(); // stopped after update 12 (with a checkpoint), as Ctrl-C does
    await run(first, 'bf16', { checkpointDir: ckpt, signal: stop.signal, onStep: (s) => void (s.step === 12 && stop.abort()) });
    const second = GPT.create(CONFIG);
    const rest = await run(second, 'bf16', { checkpointDir: ckpt, resume: true });
    expect(rest.losses).toEqual(full.losses.slice(12));
    for (const m of [whole, first, second]) m.dispose();
  });

  it('a bf16 model trains in bf16 mixed precision (its weights become the f32 master); int8 is refused', async () => {
    const model = GPT.create(CONFIG).toDtype('bf16');
    const bf16Values = model.namedParameters().map(([, p]) => p.data());
    const twin = GPT.fromParameters(CONFIG, model.namedParameters().map(([n, p]) => [n, p.data()] as const));
    const r = await train({ model, data: data(), steps: 5, batchSize: 4, lr: 3e-3, evalBatches: 0, seed: 9 });
    expect(model.dtype).toBe('f32');
    const want = await run(twin, 'bf16', { steps: 5, warmup: 0 });
    expect(r.losses).toEqual(want.losses);
    expect(bf16Values.length).toBeGreaterThan(0);
    const int8 = GPT.create(CONFIG).toDtype('int8');
    await expect(train({ model: int8, data: data(), steps: 1 })).rejects.toThrow(/^train: the model holds int8 weights; training and adapters need f32 master weights/);
    await expect(train({ model: GPT.create(CONFIG), data: data(), steps: 1, precision: 'fp16' as never })).rejects.toThrow(`train: precision must be one of 'f32', 'bf16', got "fp16"`);
    for (const m of [model, twin, int8]) m.dispose();
  });

  it('finetune in bf16 follows the f32 run (a synthetic task from scratch), and restores the precision', async () => {
    const tokenizer = Tokenizer.trainFromTexts(['abcdefghx'], { type: 'char' });
    const base = { vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 1 };
    const go = async (precision: 'f32' | 'bf16') => {
      const model = GPT.create(base);
      const r = await finetune({ model, tokenizer, task: { type: 'classification', train: classificationTask(200, 1), validation: classificationTask(100, 2) }, epochs: 2, batchSize: 16, lr: 3e-3, dropout: 0, clfDropout: 0, precision });
      expect(model.precision).toBe('f32');
      expect(r.model.model.precision).toBe('f32');
      r.model.dispose();
      model.dispose();
      return r;
    };
    const f32 = await go('f32');
    const bf16 = await go('bf16');
    expect(bf16.losses.length).toBe(f32.losses.length);
    for (let i = 0; i < f32.losses.length; i++) expect(Math.abs(bf16.losses[i] - f32.losses[i]), `update ${i + 1}`).toBeLessThan(0.05 * f32.losses[i] + 0.01);
    expect(Math.abs(bf16.validation!.accuracy! - f32.validation!.accuracy!)).toBeLessThanOrEqual(0.05);
  });
});
