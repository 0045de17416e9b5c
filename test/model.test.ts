// End-to-end tests of the GPT model.
//
// The acceptance test compares against test/fixtures/gpt2-tiny, written by
// test/fixtures/make_gpt2_tiny.py with an independent PyTorch GPT-2 (float64 reference):
// logits, loss, every parameter gradient and 5 AdamW steps, on every backend. The other
// tests (overfitting, post-LN finite differences, dropout, save/load, input errors) run on
// the reference backend, the specification.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { useBackend } from '../src/backend/index.js';
import { readSafetensorsFile, writeSafetensorsFile, type LoadedTensor } from '../src/io/safetensors.js';
import { GPT } from '../src/model/gpt.js';
import { fromHFLayout, toHFLayout } from '../src/io/hf-gpt2.js';
import { shiftTargets } from '../src/objectives/lm.js';
import { AdamW } from '../src/train/optimizer.js';
import { backendOrNull, describeEachBackend } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/gpt2-tiny', import.meta.url));

interface Expected {
  batch: number;
  seq: number;
  ids: number[];
  targets: number[];
  loss: number;
  adamw: { lr: number; betas: [number, number]; eps: number; weightDecay: number; steps: number };
  losses: number[];
  finalLoss: number;
}

const expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as Expected;
const readTensors = async (path: string): Promise<Map<string, LoadedTensor>> => (await readSafetensorsFile(path)).tensors;
const expectedTensors = await readTensors(join(FIXTURE, 'expected.safetensors'));
const ids = Int32Array.from(expected.ids);
const targets = Int32Array.from(expected.targets);
const { batch: B, seq: T } = expected;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

describeEachBackend('GPT vs the PyTorch fixture (gpt2-tiny)', (backend: Backend) => {
  let model: GPT;
  beforeAll(async () => {
    model = await GPT.load(FIXTURE, backend);
  });
  afterAll(() => model.dispose());

  it('loads the Hugging Face folder', () => {
    expect(model.config).toMatchObject({ vocabSize: 67, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, postLN: false, bias: true });
    expect(model.backend).toBe(backend);
    const total = model.namedParameters().reduce((a, [, p]) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    expect(model.numParameters()).toBe(total);
  });

  it('gives the same logits (max abs diff <= 1e-4)', () => {
    const logits = model.forward(ids, B, T);
    const want = expectedTensors.get('logits')!.data;
    const d = maxAbsDiff(logits, want);
    expectClose(logits, want, 1e-4, `logits [${backend.name}]`);
    expect(d).toBeLessThanOrEqual(1e-4);
  });

  it('gives the same loss and every parameter gradient (<= 1e-4 relative)', () => {
    model.zeroGrad();
    const loss = model.forwardBackward(ids, targets, B, T);
    expect(Math.abs(loss - expected.loss)).toBeLessThanOrEqual(1e-5);
    const params = model.namedParameters();
    expect(params.length).toBe([...expectedTensors.keys()].filter((k) => k.startsWith('grad.')).length);
    for (const [name, p] of params) {
      const g = expectedTensors.get(`grad.${name}`);
      expect(g, `expected gradient of ${name}`).toBeDefined();
      const want = fromHFLayout(name, g!.shape, g!.data);
      const got = p.grad()!;
      expectClose(got, want, 1e-4, `grad ${name} [${backend.name}]`);
      if (name.endsWith('c_attn.weight')) {
        // q, k, v rows separately: the q and k gradients are far smaller than v's, and a
        // normwise check over the whole tensor would not see an error in them.
        const C = model.config.nEmbd;
        for (const [part, r] of [['q', 0], ['k', 1], ['v', 2]] as const) {
          const rows = (x: Float32Array): Float32Array => x.subarray(r * C * C, (r + 1) * C * C);
          expectClose(rows(got), rows(want), 1e-4, `grad ${name} (${part}) [${backend.name}]`);
        }
      }
    }
    model.zeroGrad();
  });

  it('follows the 5 PyTorch AdamW steps', async () => {
    const m = await GPT.load(FIXTURE, backend);
    const { lr, betas, eps, weightDecay, steps } = expected.adamw;
    const opt = new AdamW(m, { lr, betas, eps, weightDecay }); // default decay: rank >= 2, as the fixture
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) {
      m.zeroGrad();
      losses.push(m.forwardBackward(ids, targets, B, T));
      opt.step();
    }
    m.zeroGrad();
    const final = m.forwardBackward(ids, targets, B, T);
    for (let i = 0; i < steps; i++) expect(Math.abs(losses[i] - expected.losses[i]), `loss ${i}`).toBeLessThanOrEqual(1e-4);
    expect(Math.abs(final - expected.finalLoss)).toBeLessThanOrEqual(1e-4);
    opt.dispose();
    m.dispose();
  });
});

// ---- the rest on the reference backend ----

// dlogits is not zeroed between passes: the loss's backward overwrites it. A pass whose
// every target is ignored must still add nothing, whatever the previous pass left there.
describeEachBackend('GPT: a pass with every target ignored', (backend: Backend) => {
  it('adds nothing to the gradients after a pass that counted', () => {
    for (const postLN of [false, true]) {
      const model = GPT.create({ vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, seed: 3, postLN }, backend);
      const x = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
      model.zeroGrad();
      model.forwardBackward(x, Int32Array.from([2, 3, 4, 5, 6, 7, 8, 9]), 2, 4);
      const { grads } = model.parameterBuffers();
      const before = backend.read(grads).slice();
      expect(before.some((g) => g !== 0)).toBe(true);
      expect(model.forwardBackward(x, new Int32Array(8).fill(-1), 2, 4)).toBe(0);
      expect(Array.from(backend.read(grads))).toEqual(Array.from(before));
      model.dispose();
    }
  });
});

describe('GPT (reference backend)', () => {
  let backend: Backend;
  beforeAll(async () => {
    backend = backendOrNull('reference') ?? (await useBackend('reference'));
  });

  const tiny = { vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, seed: 7 };

  it('create() is seeded and initialises like GPT-2', () => {
    const a = GPT.create(tiny, backend);
    const b = GPT.create(tiny, backend);
    const c = GPT.create({ ...tiny, seed: 8 }, backend);
    const pa = new Map(a.namedParameters().map(([n, p]) => [n, p.data()]));
    const pb = new Map(b.namedParameters().map(([n, p]) => [n, p.data()]));
    const pc = new Map(c.namedParameters().map(([n, p]) => [n, p.data()]));
    expect(pa.get('transformer.wte.weight')).toEqual(pb.get('transformer.wte.weight'));
    expect(pa.get('transformer.wte.weight')).not.toEqual(pc.get('transformer.wte.weight'));
    const std = (x: Float32Array): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
    // ~1e3..4e3 samples: the std is within a few percent of the target.
    expect(std(pa.get('transformer.h.0.mlp.c_fc.weight')!)).toBeCloseTo(0.02, 2);
    expect(std(pa.get('transformer.h.0.mlp.c_proj.weight')!)).toBeCloseTo(0.02 / Math.sqrt(4), 2);
    expect(pa.get('transformer.h.1.attn.c_attn.bias')!.every((v) => v === 0)).toBe(true);
    expect(pa.get('transformer.ln_f.weight')!.every((v) => v === 1)).toBe(true);
    expect(a.namedParameters().map(([n]) => n).slice(0, 4)).toEqual([
      'transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias',
    ]);
    expect(a.namedParameters().find(([n]) => n === 'transformer.h.0.attn.c_attn.weight')![1].shape).toEqual([48, 16]);
    expect(a.namedParameters()[0][1].grad()).toBeNull(); // no gradients before training
    for (const m of [a, b, c]) m.dispose();
  });

  it('overfits one batch (loss < 0.1 in 150 AdamW steps)', () => {
    const model = GPT.create(tiny, backend);
    const opt = new AdamW(model, { lr: 1e-2, weightDecay: 0 });
    const window = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 1, 4, 1, 5, 9, 2, 6]); // 2 windows of 9
    const { ids: x, targets: y } = shiftTargets(window, 2, 8);
    let first = 0;
    let loss = 0;
    for (let i = 0; i < 150; i++) {
      model.zeroGrad();
      loss = model.forwardBackward(x, y, 2, 8);
      if (i === 0) first = loss;
      opt.step();
    }
    expect(first).toBeGreaterThan(2); // ~ln(11) at init
    expect(loss).toBeLessThan(0.1);
    opt.dispose();
    model.dispose();
  });

  it('post-LN (GPT-1) blocks: forward/backward match finite differences', () => {
    const cfg = { vocabSize: 7, blockSize: 4, nLayer: 2, nHead: 2, nEmbd: 8, postLN: true, seed: 3 };
    const model = GPT.create(cfg, backend);
    const names = model.namedParameters().map(([n]) => n);
    expect(names).not.toContain('transformer.ln_f.weight');
    // Push LayerNorm gains and biases away from 1/0, and widen the weights (std 0.1, 0.5 for
    // c_attn) so that attention is not uniform; otherwise many gradients are ~0 and the check proves little.
    const params = new Map(model.namedParameters().map(([n, p]) => [n, p.data()]));
    let k = 0;
    for (const [n, d] of params) {
      for (let i = 0; i < d.length; i++) d[i] = /ln_\d\./.test(n) ? d[i] + 0.3 * Math.sin(++k) : (n.includes('c_attn') ? 25 : 5) * d[i];
    }
    model.loadParameters(params);
    const x = Int32Array.from([1, 4, 2, 6, 0, 3, 5, 1]);
    const y = Int32Array.from([4, 2, 6, 0, 3, -1, 1, 2]);
    model.zeroGrad();
    model.forwardBackward(x, y, 2, 4);
    const grads = new Map(model.namedParameters().map(([n, p]) => [n, p.grad()!]));
    const lossAt = (name: string, i: number, delta: number): number => {
      const p = new Map(params);
      const d = Float32Array.from(p.get(name)!);
      d[i] += delta;
      p.set(name, d);
      model.loadParameters(p);
      model.zeroGrad();
      return model.forwardBackward(x, y, 2, 4);
    };
    // [name, first, end): check the element of largest |gradient| in that range, so each
    // check is of a gradient that matters (at init many attention gradients are ~0).
    const ranges: Array<[string, number, number]> = [
      ['transformer.h.1.attn.c_attn.weight', 0, 64], // query rows (layer 1: its input is unit-scale)
      ['transformer.h.1.attn.c_attn.weight', 64, 128], // key rows
      ['transformer.h.1.attn.c_attn.weight', 128, 192], // value rows
      ['transformer.h.0.attn.c_proj.weight', 0, 64],
      ['transformer.h.1.mlp.c_fc.bias', 0, 32],
      ['transformer.h.1.mlp.c_proj.weight', 0, 256],
      ['transformer.h.0.ln_1.weight', 0, 8],
      ['transformer.h.1.ln_2.bias', 0, 8],
      ['transformer.wte.weight', 4 * 8, 5 * 8], // token 4: in the input and the tied head
      ['transformer.wpe.weight', 2 * 8, 3 * 8],
    ];
    const checks = ranges.map(([name, lo, hi]): [string, number] => {
      const g = grads.get(name)!;
      let best = lo;
      for (let i = lo; i < hi; i++) if (Math.abs(g[i]) > Math.abs(g[best])) best = i;
      return [name, best];
    });
    // The forward pass is float32, so the step cannot be tiny (rounding / 2h); Richardson
    // extrapolation of central differences at h and h/2 removes the O(h²) error instead.
    const h = 1e-2;
    const central = (name: string, i: number, step: number): number => (lossAt(name, i, step) - lossAt(name, i, -step)) / (2 * step);
    for (const [name, i] of checks) {
      const fd = (4 * central(name, i, h / 2) - central(name, i, h)) / 3;
      const g = grads.get(name)![i];
      expect(Math.abs(fd - g), `${name}[${i}]: analytic ${g}, finite difference ${fd}`).toBeLessThanOrEqual(2e-5 + 1e-3 * Math.abs(g));
      expect(Math.abs(g), `${name}[${i}] should have a non-trivial gradient`).toBeGreaterThan(1e-3);
    }
    model.dispose();
  });

  it('dropout: off in forward, reproducible per seed in training', () => {
    const cfg = { ...tiny, dropout: 0.2 };
    const x = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const y = Int32Array.from([2, 3, 4, 5, 6, 7, 8, 9]);
    const a = GPT.create(cfg, backend);
    const b = GPT.create(cfg, backend);
    const noDrop = GPT.create(tiny, backend);
    expect(a.forward(x, 1, 8)).toEqual(noDrop.forward(x, 1, 8)); // eval: dropout off
    const la = [a.forwardBackward(x, y, 1, 8), a.forwardBackward(x, y, 1, 8)];
    const lb = [b.forwardBackward(x, y, 1, 8), b.forwardBackward(x, y, 1, 8)];
    const l0 = noDrop.forwardBackward(x, y, 1, 8);
    expect(la).toEqual(lb); // same seed, same masks
    expect(la[0]).not.toBe(la[1]); // a new mask every step
    expect(la[0]).not.toBe(l0);
    expect(a.namedParameters()[0][1].grad()).toEqual(b.namedParameters()[0][1].grad());
    expect(a.trainingSteps).toBe(2);
    a.trainingSteps = 1; // as a checkpoint restores it: the second pass's masks again
    expect(a.forwardBackward(x, y, 1, 8)).toBe(la[1]);
    for (const m of [a, b, noDrop]) m.dispose();
  });

  it('a training pass is a value: composes into forwardBackward, refuses to be used stale', () => {
    for (const cfg of [{ ...tiny, dropout: 0.1 }, { ...tiny, postLN: true }] as Array<typeof tiny & { dropout?: number; postLN?: boolean }>) {
      const x = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
      const y = Int32Array.from([2, 3, 4, 5, 6, 7, 8, -1]);
      const a = GPT.create(cfg, backend);
      const b = GPT.create(cfg, backend);
      for (const m of [a, b]) m.zeroGrad();
      const pass = a.trainForward(x, 2, 4);
      expect(pass).toMatchObject({ B: 2, T: 4, step: 0 });
      expect(pass.dropoutSeed === null).toBe(cfg.dropout === undefined);
      expect(pass.hidden.length).toBe(8 * tiny.nEmbd);
      expect(pass.dhidden.length).toBe(8 * tiny.nEmbd);
      // Decoding in the middle of a pass has its own activations: the pass stays valid.
      const cache = a.createCache(1);
      a.forwardCached([[1, 2, 3]], cache);
      cache.dispose();
      const loss = a.lmLoss(pass, y);
      a.backward(pass);
      expect(loss).toBe(b.forwardBackward(x, y, 2, 4));
      expect(Array.from(backend.read(a.parameterBuffers().grads))).toEqual(Array.from(backend.read(b.parameterBuffers().grads)));
      // Any full pass after trainForward reuses the activation memory: the pass is stale.
      for (const other of [
        () => a.forward(x, 2, 4),
        () => a.forwardHidden(x, 1, 8), // another (B, T): re-planned
        () => a.evalLoss(x, y, 2, 4),
        () => a.trainForward(x, 2, 4),
        () => a.forwardBackward(x, y, 2, 4),
      ]) {
        const stale = a.trainForward(x, 2, 4);
        other();
        expect(() => a.lmLoss(stale, y)).toThrow(/^lmLoss: the pass is stale/);
        expect(() => a.backward(stale)).toThrow(/^backward: the pass is stale/);
      }
      a.dispose();
      b.dispose();
    }
  });

  it('evalLoss is the mean log-softmax loss of forward, without dropout or gradients', () => {
    const model = GPT.create({ ...tiny, dropout: 0.2 }, backend);
    const x = Int32Array.from([3, 1, 4, 1, 5, 9, 2, 6]);
    const y = Int32Array.from([1, 4, 1, 5, 9, 2, 6, -1]);
    const V = tiny.vocabSize;
    const logits = model.forward(x, 2, 4);
    let sum = 0;
    let count = 0;
    for (let n = 0; n < 8; n++) {
      if (y[n] === -1) continue;
      const row = logits.subarray(n * V, (n + 1) * V);
      const max = Math.max(...row);
      sum += Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max - row[y[n]];
      count++;
    }
    const steps = model.trainingSteps;
    const loss = model.evalLoss(x, y, 2, 4);
    expect(Math.abs(loss - sum / count)).toBeLessThan(1e-6 * (sum / count));
    expect(model.evalLoss(x, y, 2, 4)).toBe(loss); // no dropout: the same every time
    expect(model.trainingSteps).toBe(steps); // not a training step
    expect(model.namedParameters()[0][1].grad()).toBeNull(); // no gradients
    expect(model.evalLoss(x, new Int32Array(8).fill(-1), 2, 4)).toBe(0);
    model.dispose();
  });

  it('bias = false drops the bias parameters and still trains', () => {
    const model = GPT.create({ ...tiny, bias: false }, backend);
    expect(model.namedParameters().some(([n]) => n.endsWith('.bias'))).toBe(false);
    const x = Int32Array.from([1, 2, 3, 4]);
    const loss = model.forwardBackward(x, Int32Array.from([2, 3, 4, 5]), 1, 4);
    expect(Number.isFinite(loss)).toBe(true);
    model.dispose();
  });

  it('re-plans activations for a new (B, T) and forwardHidden matches the lm head', () => {
    const model = GPT.create(tiny, backend);
    const x = Int32Array.from([3, 1, 4, 1, 5, 9]);
    const l1 = model.forward(x, 2, 3);
    model.forward(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6]), 2, 8); // grows
    model.forward(Int32Array.from([1]), 1, 1); // shrinks
    expect(model.forward(x, 2, 3)).toEqual(l1);
    const hidden = model.forwardHidden(x, 2, 3); // (B, T, C)
    const wte = model.namedParameters()[0][1].data(); // (V, C)
    const { nEmbd: C, vocabSize: V } = model.config;
    let worst = 0;
    for (let n = 0; n < 6; n++) {
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let c = 0; c < C; c++) s += hidden[n * C + c] * wte[v * C + c];
        worst = Math.max(worst, Math.abs(s - l1[n * V + v]));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    model.dispose();
  });

  describe('save and load', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ferrogpt-model-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('round-trips through config.json + model.safetensors (HF layout)', async () => {
      const model = GPT.create({ ...tiny, postLN: true, dropout: 0.1 }, backend);
      await model.save(join(dir, 'rt'));
      const back = await GPT.load(join(dir, 'rt'), backend);
      expect(back.config).toEqual(model.config);
      const a = model.namedParameters();
      const b = back.namedParameters();
      expect(b.map(([n]) => n)).toEqual(a.map(([n]) => n));
      for (let i = 0; i < a.length; i++) expect(b[i][1].data()).toEqual(a[i][1].data());
      const x = Int32Array.from([1, 2, 3]);
      expect(back.forward(x, 1, 3)).toEqual(model.forward(x, 1, 3));
      // On disk: HF names and Conv1D weights transposed to (C, OC).
      const tensors = await readTensors(join(dir, 'rt', 'model.safetensors'));
      expect(tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([16, 48]);
      expect(tensors.get('transformer.h.0.mlp.c_proj.weight')!.shape).toEqual([64, 16]);
      const cfg = JSON.parse(await readFile(join(dir, 'rt', 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg).toMatchObject({ model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, n_positions: 8, vocab_size: 11 });
      // The same folder from its contents (no file system), and its errors name fromSafetensors.
      const bytes = await readFile(join(dir, 'rt', 'model.safetensors'));
      const fromBytes = GPT.fromSafetensors(JSON.stringify(cfg), bytes, backend);
      expect(fromBytes.forward(x, 1, 3)).toEqual(model.forward(x, 1, 3));
      fromBytes.dispose();
      expect(() => GPT.fromSafetensors({ ...cfg, n_layer: 3 } as never, bytes, backend)).toThrow(/^GPT\.fromSafetensors: tensors do not match the model:\n {2}missing tensors: transformer\.h\.2\./);
      model.dispose();
      back.dispose();
    });

    it('accepts names without `transformer.`, a tied lm_head.weight and mask buffers; rejects an untied head', async () => {
      const model = GPT.create(tiny, backend);
      const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [name, p] of model.namedParameters()) tensors.set(name.replace(/^transformer\./, ''), toHFLayout(name, p.shape, p.data()));
      const wte = model.namedParameters()[0][1];
      tensors.set('lm_head.weight', { shape: wte.shape, data: wte.data() });
      tensors.set('h.0.attn.bias', { shape: [1, 1, 8, 8], data: new Float32Array(64).fill(1) });
      await model.save(join(dir, 'hf'));
      await writeSafetensorsFile(join(dir, 'hf', 'model.safetensors'), tensors);
      const back = await GPT.load(join(dir, 'hf'), backend);
      const x = Int32Array.from([5, 4, 3, 2]);
      expect(back.forward(x, 2, 2)).toEqual(model.forward(x, 2, 2));
      back.dispose();

      const untied = Float32Array.from(wte.data());
      untied[3] += 1;
      tensors.set('lm_head.weight', { shape: wte.shape, data: untied });
      await writeSafetensorsFile(join(dir, 'hf', 'model.safetensors'), tensors);
      await expect(GPT.load(join(dir, 'hf'), backend)).rejects.toThrow(/lm_head\.weight differs/);

      tensors.delete('lm_head.weight');
      tensors.delete('h.1.mlp.c_fc.bias');
      await writeSafetensorsFile(join(dir, 'hf', 'model.safetensors'), tensors);
      await expect(GPT.load(join(dir, 'hf'), backend)).rejects.toThrow(/missing tensors: transformer\.h\.1\.mlp\.c_fc\.bias/);
      model.dispose();
    });
  });

  it('rejects bad inputs with clear errors', () => {
    const model = GPT.create(tiny, backend);
    expect(() => model.forward(Int32Array.from([1, 2, 3]), 1, 4)).toThrow(/ids has length 3, expected batch \* seq = 4/);
    expect(() => model.forward(new Int32Array(9), 1, 9)).toThrow(/seq 9 exceeds the model's blockSize 8/);
    expect(() => model.forward(Int32Array.from([1, 11]), 1, 2)).toThrow(/ids\[1\] = 11 is out of range \(must be in 0\.\.10\)/);
    expect(() => model.forward(Int32Array.from([-1, 0]), 1, 2)).toThrow(/ids\[0\] = -1 is out of range/);
    expect(() => model.forward([1, 2] as unknown as Int32Array, 1, 2)).toThrow(/ids must be an Int32Array/);
    expect(() => model.forward(Int32Array.from([1, 2]), 0, 2)).toThrow(/batch must be a positive integer/);
    expect(() => model.forwardBackward(Int32Array.from([1, 2]), Int32Array.from([1]), 1, 2)).toThrow(/targets has length 1/);
    expect(() => model.forwardBackward(Int32Array.from([1, 2]), Int32Array.from([1, -2]), 1, 2)).toThrow(/targets\[1\] = -2 is out of range/);
    // Each public method names itself, whichever helper checks.
    expect(() => model.trainForward(Int32Array.from([1, 11]), 1, 2)).toThrow(/^trainForward: ids\[1\] = 11 is out of range \(must be in 0\.\.10\)/);
    expect(() => model.forwardHidden(Int32Array.from([1, 2]), 1, 3)).toThrow(/^forwardHidden: ids has length 2/);
    expect(() => model.forwardBackward(Int32Array.from([1, 2]), Int32Array.from([1, 12]), 1, 2)).toThrow(/^forwardBackward: targets\[1\] = 12 is out of range \(must be in 0\.\.10, or -1 to skip\)/);
    expect(() => model.evalLoss(Int32Array.from([1, 2]), Int32Array.from([1, 12]), 1, 2)).toThrow(/^evalLoss: targets\[1\] = 12 is out of range \(must be in 0\.\.10, or -1 to skip\)/);
    expect(() => model.evalLoss(Int32Array.from([1, 2]), Int32Array.from([1, 2]), 1, 3)).toThrow(/^evalLoss: ids has length 2/);
    expect(() => model.forwardBackward(Int32Array.from([1, 2]), Int32Array.from([1, -2]), 1, 2)).toThrow(/^forwardBackward: targets/);
    const pass = model.trainForward(Int32Array.from([1, 2]), 1, 2);
    expect(() => model.lmLoss(pass, Int32Array.from([1]))).toThrow(/^lmLoss: targets has length 1, expected batch \* seq = 2/);
    expect(() => model.lmLoss(pass, Int32Array.from([1, 2]), NaN)).toThrow(/^lmLoss: weight must be a finite number/);
    const cache = model.createCache(1);
    expect(() => model.forwardCached([[1, 11]], cache)).toThrow(/^forwardCached: tokens\[0\]\[1\] = 11 is out of range \(must be in 0\.\.10\)/);
    expect(() => model.forwardCached([[1.5]], cache)).toThrow(/^forwardCached: tokens\[0\]\[0\] = 1.5 is out of range/);
    cache.dispose();
    expect(() => model.createCache(0)).toThrow(/^createCache: batch must be a positive integer/);
    // A pass is a value: only this model's, only once, only while its activations are its own.
    const fresh = GPT.create(tiny, backend);
    expect(() => fresh.backward(undefined as unknown as ReturnType<GPT['trainForward']>)).toThrow(/^backward: pass must be the TrainPass this model's trainForward returned/);
    expect(() => fresh.lmLoss(pass, Int32Array.from([1, 2]))).toThrow(/^lmLoss: pass must be the TrainPass this model's trainForward returned/);
    fresh.dispose();
    model.backward(pass);
    expect(() => model.backward(pass)).toThrow(/^backward: the pass was already backpropagated/);
    expect(() => model.lmLoss(pass, Int32Array.from([1, 2]))).toThrow(/^lmLoss: the pass was already backpropagated/);
    expect(() => GPT.create({ ...tiny, nEmbd: 15 }, backend)).toThrow(/nEmbd \(15\) must be divisible by nHead \(2\)/);
    expect(() => GPT.create({ ...tiny, dropout: 1 }, backend)).toThrow(/dropout must be in \[0, 1\)/);
    expect(() => GPT.create({ ...tiny, vocabSize: 0 }, backend)).toThrow(/vocabSize must be a positive integer/);
    expect(() => model.loadParameters([['nope', new Float32Array(1)]])).toThrow(/unknown parameter nope/);
    // A pass where every target is ignored has nothing to learn: loss 0, no gradient.
    model.zeroGrad();
    expect(model.forwardBackward(Int32Array.from([1, 2]), Int32Array.from([-1, -1]), 1, 2)).toBe(0);
    expect(model.namedParameters()[0][1].grad()!.every((v) => v === 0)).toBe(true);
    model.dispose();
    expect(() => model.forward(Int32Array.from([1]), 1, 1)).toThrow(/disposed/);
  });
});

describe('GPT.fromParameters', () => {
  it('builds a model from every weight (no random init first), and refuses an incomplete set', async () => {
    const { ReferenceBackend } = await import('../src/backend/reference.js');
    const be = new ReferenceBackend();
    const cfg = { vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, seed: 3 };
    const a = GPT.create(cfg, be);
    const params = a.namedParameters().map(([n, p]) => [n, p.data()] as const);
    const b = GPT.fromParameters(a.config, params, be);
    const x = Int32Array.from([1, 2, 3, 4]);
    expect(b.forward(x, 1, 4)).toEqual(a.forward(x, 1, 4));
    expect(() => GPT.fromParameters(cfg, params.slice(1), be)).toThrow(/^loadParameters: missing transformer.wte.weight/);
  });
});
