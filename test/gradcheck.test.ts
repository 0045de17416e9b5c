// Every reference backward kernel against central finite differences of its forward
// kernel, in float64. Objective: L = Σ out · R for a fixed random R, so the analytic
// gradient is the backward kernel with dout = R (into zeroed gradients), and the numeric
// one is (L(x + h) - L(x - h)) / 2h per input element.
//
// h = 1e-6: the truncation error is O(h²) ≈ 1e-12 and the rounding error ≈ 1e-16·|L|/h ≈
// 1e-10·|L|, both far below the 1e-6 relative tolerance.

import { describe, expect, it } from 'vitest';
import type { DropoutSpec } from '../src/backend/backend.js';
import * as K from '../src/backend/reference-kernels.js';
import { expectClose } from './helpers/compare.js';
import { f64, mulberry32, randInts, randn, randu } from './helpers/random.js';

const H = 1e-6;
const RTOL = 1e-6;
// Gradients smaller than this are compared absolutely (to RTOL * FLOOR): finite differences
// cannot resolve them relatively (e.g. LayerNorm over C = 2, whose output barely depends on
// its input).
const FLOOR = 1e-3;

interface GradCheck {
  /** Differentiable inputs, by name. */
  params: Record<string, Float64Array>;
  /** Length of the output that is dotted with R. */
  outLen: number;
  forward(p: Record<string, Float64Array>): Float64Array;
  /** Accumulates dL/dparam into grads given dout = R. */
  backward(p: Record<string, Float64Array>, dout: Float64Array, grads: Record<string, Float64Array>): void;
}

function gradcheck(label: string, g: GradCheck, seed: number): void {
  const R = f64(randn(mulberry32(seed), g.outLen));
  const objective = () => {
    const out = g.forward(g.params);
    let L = 0;
    for (let i = 0; i < out.length; i++) L += out[i] * R[i];
    return L;
  };
  const grads: Record<string, Float64Array> = {};
  for (const [name, x] of Object.entries(g.params)) grads[name] = new Float64Array(x.length);
  g.backward(g.params, R, grads);
  for (const [name, x] of Object.entries(g.params)) {
    const numeric = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const saved = x[i];
      x[i] = saved + H;
      const plus = objective();
      x[i] = saved - H;
      const minus = objective();
      x[i] = saved;
      numeric[i] = (plus - minus) / (2 * H);
    }
    expect(numeric.some((v) => v !== 0) || grads[name].every((v) => v === 0)).toBe(true);
    expectClose(grads[name], numeric, RTOL, `${label}: d${name}`, FLOOR);
  }
}

describe('reference backward kernels vs float64 finite differences', () => {
  it.each([
    [1, 1, 1, 1, 1],
    [2, 3, 5, 4, 4],
    [1, 4, 3, 2, 6],
  ])('encoder B=%i T=%i C=%i V=%i maxT=%i', (B, T, C, V, maxT) => {
    const r = mulberry32(11 + B + T);
    const ids = randInts(r, B * T, V);
    gradcheck(`encoder B=${B} T=${T} C=${C}`, {
      params: { wte: f64(randn(r, V * C)), wpe: f64(randn(r, maxT * C)) },
      outLen: B * T * C,
      forward: (p) => {
        const out = new Float64Array(B * T * C);
        K.encoderForward(out, ids, p.wte, p.wpe, B, T, C);
        return out;
      },
      backward: (p, dout, g) => K.encoderBackward(g.wte, g.wpe, dout, ids, B, T, C),
    }, 1);
  });

  it.each([
    [1, 1, 1],
    [5, 3, 4], // rows repeat: their gradients sum
  ])('gatherRows / scatterAddRows F=%i N=%i C=%i', (F, N, C) => {
    const r = mulberry32(17 + F * N * C);
    const rows = randInts(r, F, N);
    gradcheck(`gatherRows F=${F} N=${N} C=${C}`, {
      params: { inp: f64(randn(r, N * C)) },
      outLen: F * C,
      forward: (p) => {
        const out = new Float64Array(F * C);
        K.gatherRows(out, p.inp, rows, F, C);
        return out;
      },
      backward: (p, dout, g) => K.scatterAddRows(g.inp, dout, rows, F, C),
    }, 1);
  });

  it.each([
    [1, 1],
    [1, 2],
    [3, 5],
    [2, 17],
  ])('layernorm N=%i C=%i', (N, C) => {
    const r = mulberry32(21 + N * C);
    gradcheck(`layernorm N=${N} C=${C}`, {
      params: { inp: f64(randn(r, N * C, 2)), weight: f64(randn(r, C)), bias: f64(randn(r, C)) },
      outLen: N * C,
      forward: (p) => {
        const out = new Float64Array(N * C);
        K.layernormForward(out, new Float64Array(N), new Float64Array(N), p.inp, p.weight, p.bias, N, C);
        return out;
      },
      backward: (p, dout, g) => {
        const mean = new Float64Array(N);
        const rstd = new Float64Array(N);
        K.layernormForward(new Float64Array(N * C), mean, rstd, p.inp, p.weight, p.bias, N, C);
        K.layernormBackward(g.inp, g.weight, g.bias, dout, p.inp, p.weight, mean, rstd, N, C);
      },
    }, 2);
  });

  it.each([
    [1, 1, 1, true],
    [3, 5, 4, true],
    [4, 17, 3, false],
  ])('matmul N=%i C=%i OC=%i bias=%s', (N, C, OC, withBias) => {
    const r = mulberry32(31 + N * C * OC);
    const params: Record<string, Float64Array> = { inp: f64(randn(r, N * C)), weight: f64(randn(r, OC * C)) };
    if (withBias) params.bias = f64(randn(r, OC));
    gradcheck(`matmul N=${N} C=${C} OC=${OC}`, {
      params,
      outLen: N * OC,
      forward: (p) => {
        const out = new Float64Array(N * OC);
        K.matmulForward(out, p.inp, p.weight, p.bias ?? null, N, C, OC);
        return out;
      },
      backward: (p, dout, g) => K.matmulBackward(g.inp, g.weight, g.bias ?? null, dout, p.inp, p.weight, N, C, OC),
    }, 3);
  });

  it.each([
    // B, T, C, NH, dropout p
    [1, 1, 1, 1, 0],
    [1, 3, 4, 1, 0],
    [2, 4, 6, 2, 0],
    [1, 5, 9, 3, 0],
    [2, 4, 6, 2, 0.3], // dropout: the same mask on both sides (it depends only on seed, stream, index)
    [1, 6, 4, 2, 0.5],
  ])('attention B=%i T=%i C=%i NH=%i dropout=%f', (B, T, C, NH, p) => {
    const r = mulberry32(41 + B * T * C * NH);
    const dropout: DropoutSpec = { p, seed: 99, stream: 3 };
    gradcheck(`attention B=${B} T=${T} C=${C} NH=${NH} p=${p}`, {
      params: { qkv: f64(randn(r, B * T * 3 * C)) },
      outLen: B * T * C,
      forward: (q) => {
        const out = new Float64Array(B * T * C);
        K.attentionForward(out, new Float64Array(B * NH * T), q.qkv, B, T, C, NH, dropout);
        return out;
      },
      backward: (q, dout, g) => {
        const out = new Float64Array(B * T * C);
        const lse = new Float64Array(B * NH * T);
        K.attentionForward(out, lse, q.qkv, B, T, C, NH, dropout);
        K.attentionBackward(g.qkv, dout, q.qkv, out, lse, B, T, C, NH, dropout);
      },
    }, 4);
  });

  it.each([1, 17])('gelu N=%i', (N) => {
    const r = mulberry32(51 + N);
    gradcheck(`gelu N=${N}`, {
      params: { inp: f64(randu(r, N, -4, 4)) },
      outLen: N,
      forward: (p) => {
        const out = new Float64Array(N);
        K.geluForward(out, p.inp, N);
        return out;
      },
      backward: (p, dout, g) => K.geluBackward(g.inp, p.inp, dout, N),
    }, 5);
  });

  it.each([1, 9])('residual N=%i', (N) => {
    const r = mulberry32(61 + N);
    gradcheck(`residual N=${N}`, {
      params: { inp1: f64(randn(r, N)), inp2: f64(randn(r, N)) },
      outLen: N,
      forward: (p) => {
        const out = new Float64Array(N);
        K.residualForward(out, p.inp1, p.inp2, N);
        return out;
      },
      backward: (_p, dout, g) => K.residualBackward(g.inp1, g.inp2, dout, N),
    }, 6);
  });

  it.each([
    [1, 1, -100],
    [4, 7, -100],
    [5, 3, 1], // ignoreIndex is a class id: those rows contribute nothing
  ])('crossentropy N=%i V=%i ignoreIndex=%i', (N, V, ignoreIndex) => {
    const r = mulberry32(71 + N * V);
    const targets = randInts(r, N, V);
    if (N > 1) targets[1] = ignoreIndex;
    gradcheck(`crossentropy N=${N} V=${V}`, {
      params: { logits: f64(randn(r, N * V, 2)) },
      outLen: N,
      forward: (p) => {
        const losses = new Float64Array(N);
        K.crossentropyForward(losses, p.logits, targets, N, V, ignoreIndex);
        return losses;
      },
      backward: (p, dlosses, g) => K.crossentropyBackward(g.logits, dlosses, p.logits, targets, N, V, ignoreIndex),
    }, 7);
  });

  it.each([
    [1, 0],
    [50, 0.1],
    [50, 0.5],
  ])('dropout N=%i p=%f', (N, p) => {
    const r = mulberry32(81 + N);
    const dropout: DropoutSpec = { p, seed: 5, stream: 11 };
    gradcheck(`dropout N=${N} p=${p}`, {
      params: { inp: f64(randn(r, N)) },
      outLen: N,
      forward: (q) => {
        const out = new Float64Array(N);
        K.dropoutForward(out, q.inp, N, dropout);
        return out;
      },
      backward: (_q, dout, g) => K.dropoutBackward(g.inp, dout, N, dropout),
    }, 8);
  });
});

describe('reference backward kernels accumulate', () => {
  it('gradients are added to, not overwritten', () => {
    const N = 6;
    const dinp = new Float64Array(N).fill(1);
    const inp = f64(randn(mulberry32(1), N));
    const dout = f64(randn(mulberry32(2), N));
    K.geluBackward(dinp, inp, dout, N);
    const once = dinp.slice();
    K.geluBackward(dinp, inp, dout, N);
    for (let i = 0; i < N; i++) expect(dinp[i] - 1).toBeCloseTo(2 * (once[i] - 1), 12);
  });
});
