// AdamW, gradient clipping and learning-rate schedules.
// AdamW is checked against the update computed by hand in float64 from the model's own
// parameters and gradients, on every backend (the kernel differs per backend).

import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { GPT } from '../src/model/gpt.js';
import { AdamW, clipGradNorm } from '../src/train/optimizer.js';
import { constantSchedule, cosineSchedule, learningRate, linearSchedule, makeSchedule } from '../src/train/schedule.js';
import { backendOrNull, describeEachBackend } from './helpers/backends.js';

const cfg = { vocabSize: 5, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4, seed: 11 };
const x = Int32Array.from([0, 1, 2, 3, 4, 3, 2, 1]);
const y = Int32Array.from([1, 2, 3, 4, 3, 2, 1, 0]);

type Snapshot = Map<string, { shape: number[]; data: Float64Array; grad: Float64Array }>;

function snapshot(model: GPT): Snapshot {
  return new Map(model.namedParameters().map(([n, p]) => [n, {
    shape: p.shape,
    data: Float64Array.from(p.data()),
    grad: Float64Array.from(p.grad() ?? new Float32Array(p.data().length)),
  }]));
}

function maxDiff(model: GPT, want: Map<string, Float64Array>): number {
  let worst = 0;
  for (const [n, p] of model.namedParameters()) {
    const got = p.data();
    const w = want.get(n)!;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - w[i]));
  }
  return worst;
}

describeEachBackend('AdamW', (backend: Backend) => {
  it('matches two steps computed by hand (decay only on rank >= 2)', () => {
    const model = GPT.create(cfg, backend);
    const lr = 1e-2, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
    const opt = new AdamW(model, { lr, betas: [b1, b2], eps, weightDecay: wd });
    const m = new Map<string, Float64Array>();
    const v = new Map<string, Float64Array>();
    for (let step = 1; step <= 2; step++) {
      model.zeroGrad();
      model.forwardBackward(x, y, 2, 4);
      const before = snapshot(model);
      const want = new Map<string, Float64Array>();
      for (const [n, { shape, data, grad }] of before) {
        const mm = m.get(n) ?? new Float64Array(data.length);
        const vv = v.get(n) ?? new Float64Array(data.length);
        const decay = shape.length >= 2 ? wd : 0;
        const out = new Float64Array(data.length);
        for (let i = 0; i < data.length; i++) {
          mm[i] = b1 * mm[i] + (1 - b1) * grad[i];
          vv[i] = b2 * vv[i] + (1 - b2) * grad[i] * grad[i];
          const mhat = mm[i] / (1 - b1 ** step);
          const vhat = vv[i] / (1 - b2 ** step);
          out[i] = data[i] - lr * (mhat / (Math.sqrt(vhat) + eps) + decay * data[i]);
        }
        m.set(n, mm);
        v.set(n, vv);
        want.set(n, out);
      }
      opt.step();
      expect(opt.stepCount).toBe(step);
      // Updates are ~lr = 1e-2; float32 arithmetic agrees to ~1e-7 of the parameter.
      expect(maxDiff(model, want)).toBeLessThan(2e-6);
    }
    opt.dispose();
    model.dispose();
  });

  it('with zero gradients only decays, and only tensors of rank >= 2 (or a custom rule)', () => {
    for (const rule of ['default', 'custom'] as const) {
      const model = GPT.create(cfg, backend);
      const decayed = (name: string, shape: readonly number[]): boolean =>
        rule === 'default' ? shape.length >= 2 : name.includes('mlp');
      const opt = new AdamW(model, { lr: 0.1, weightDecay: 0.5, ...(rule === 'custom' ? { decay: decayed } : {}) });
      const before = snapshot(model);
      model.zeroGrad();
      opt.step(); // m = v = 0: the Adam term is 0 / (0 + eps) = 0
      for (const [n, p] of model.namedParameters()) {
        const { shape, data } = before.get(n)!;
        const factor = decayed(n, shape) ? 1 - 0.1 * 0.5 : 1;
        const got = p.data();
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - data[i] * factor)).toBeLessThan(1e-7);
      }
      opt.dispose();
      model.dispose();
    }
  });

  it('clipGradNorm returns the pre-clip norm and scales to maxNorm', () => {
    const model = GPT.create(cfg, backend);
    model.zeroGrad();
    model.forwardBackward(x, y, 2, 4);
    const grads = [...snapshot(model).values()].map((s) => s.grad);
    const norm = Math.sqrt(grads.reduce((a, g) => a + g.reduce((b, z) => b + z * z, 0), 0));
    expect(clipGradNorm(model, norm * 10)).toBeCloseTo(norm, 5); // below the limit: untouched
    expect([...snapshot(model).values()].map((s) => s.grad)).toEqual(grads);
    expect(clipGradNorm(model, norm / 4)).toBeCloseTo(norm, 5);
    const after = [...snapshot(model).values()].map((s) => s.grad);
    const norm2 = Math.sqrt(after.reduce((a, g) => a + g.reduce((b, z) => b + z * z, 0), 0));
    expect(norm2).toBeCloseTo(norm / 4, 5);
    expect(after[0][3] / grads[0][3]).toBeCloseTo(0.25, 4);
    expect(() => clipGradNorm(model, 0)).toThrow(/maxNorm must be a positive number/);
    model.dispose();
  });
});

describe('AdamW state, options (reference backend)', () => {
  const backend = backendOrNull('reference')!;

  it('state() / loadState() resume exactly', () => {
    const a = GPT.create(cfg, backend);
    const optA = new AdamW(a, { lr: 1e-2 });
    for (let i = 0; i < 3; i++) {
      a.zeroGrad();
      a.forwardBackward(x, y, 2, 4);
      optA.step();
    }
    const b = GPT.create(cfg, backend);
    b.loadParameters(a.namedParameters().map(([n, p]) => [n, p.data()] as const));
    const optB = new AdamW(b, { lr: 1e-2 });
    const state = optA.state();
    expect(state.step).toBe(3);
    expect(state.m.length).toBe(a.numParameters());
    optB.loadState(state);
    for (const [m, o] of [[a, optA], [b, optB]] as const) {
      m.zeroGrad();
      m.forwardBackward(x, y, 2, 4);
      o.step();
    }
    const pb = new Map(b.namedParameters().map(([n, p]) => [n, p.data()]));
    for (const [n, p] of a.namedParameters()) expect(p.data()).toEqual(pb.get(n));
    expect(() => optB.loadState({ step: 1, m: new Float32Array(3), v: new Float32Array(3) })).toThrow(/m has 3 values, the model has \d+ parameters/);
    for (const o of [optA, optB]) o.dispose();
    for (const m of [a, b]) m.dispose();
  });

  it('setLr and option checks', () => {
    const model = GPT.create(cfg, backend);
    const opt = new AdamW(model, { lr: 1e-3 });
    expect(opt.lr).toBe(1e-3);
    opt.setLr(5e-4);
    expect(opt.lr).toBe(5e-4);
    expect(opt.betas).toEqual([0.9, 0.999]);
    expect(opt.eps).toBe(1e-8);
    expect(opt.weightDecay).toBe(0.01);
    expect(() => opt.setLr(-1)).toThrow(/lr must be a finite number >= 0/);
    expect(() => new AdamW(model, { lr: 1e-3, betas: [0.9, 1] })).toThrow(/betas must be two numbers in \[0, 1\)/);
    expect(() => new AdamW(model, { lr: Number.NaN })).toThrow(/lr must be/);
    opt.dispose();
    model.dispose();
    opt.dispose(); // idempotent, also after the model is gone
  });
});

describe('learning-rate schedules', () => {
  it('constant with warmup', () => {
    expect(constantSchedule(0, 1, 4)).toBe(0.25);
    expect(constantSchedule(3, 1, 4)).toBe(1);
    expect(constantSchedule(1000, 1, 4)).toBe(1);
    expect(constantSchedule(0, 0.5)).toBe(0.5);
  });

  it('linear: warmup, decay to the floor, then the floor', () => {
    // warmup 2, total 12: decay over steps 2..12
    expect(linearSchedule(0, 1, 12, 2, 0.1)).toBe(0.5);
    expect(linearSchedule(1, 1, 12, 2, 0.1)).toBe(1);
    expect(linearSchedule(2, 1, 12, 2, 0.1)).toBe(1);
    expect(linearSchedule(7, 1, 12, 2, 0.1)).toBeCloseTo(0.55, 12);
    expect(linearSchedule(12, 1, 12, 2, 0.1)).toBe(0.1);
    expect(linearSchedule(50, 1, 12, 2, 0.1)).toBe(0.1);
  });

  it('cosine: warmup, half-cosine to minLr', () => {
    const lr = makeSchedule({ kind: 'cosine', maxLr: 2.5e-4, warmupSteps: 10, totalSteps: 110, minLr: 2.5e-5 });
    expect(lr(0)).toBeCloseTo(2.5e-5, 15);
    expect(lr(9)).toBeCloseTo(2.5e-4, 15);
    expect(lr(10)).toBeCloseTo(2.5e-4, 15);
    expect(lr(60)).toBeCloseTo((2.5e-4 + 2.5e-5) / 2, 15);
    expect(lr(110)).toBe(2.5e-5);
    expect(cosineSchedule(5, 1, 10)).toBeCloseTo(0.5, 12);
    let prev = Infinity;
    for (let s = 10; s <= 110; s++) {
      expect(lr(s)).toBeLessThanOrEqual(prev);
      prev = lr(s);
    }
  });

  it('rejects bad options', () => {
    expect(() => learningRate(-1, { kind: 'constant', maxLr: 1 })).toThrow(/step must be an integer >= 0/);
    expect(() => learningRate(0, { kind: 'cosine', maxLr: 1 })).toThrow(/needs totalSteps/);
    expect(() => makeSchedule({ kind: 'linear', maxLr: 1, warmupSteps: 5 })).toThrow(/needs totalSteps/);
    expect(() => learningRate(0, { kind: 'linear', maxLr: 1, totalSteps: 5, minLr: 2 })).toThrow(/minLr must be in \[0, maxLr\]/);
    expect(() => learningRate(0, { kind: 'step' as 'linear', maxLr: 1, totalSteps: 5 })).toThrow(/unknown schedule kind/);
  });
});
