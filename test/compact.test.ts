// The compact weight formats (src/backend/compact.ts) and the reference kernels that use
// them, against float64 maths over the dequantized weights. (Every backend's compact
// kernels are compared with these reference kernels in test/kernels.test.ts.)

import { describe, expect, it } from 'vitest';
import { Q8_BLOCK, bf16Round, bf16Widen, deinterleaveQ8, dequantizeQ8, fromBf16, interleaveQ8, q8At, quantizeQ8, toBf16 } from '../src/backend/compact.js';
import { encoderForwardBf16, encoderForwardQ8, matmulForward, matmulForwardBf16, matmulForwardQ8 } from '../src/backend/reference-kernels.js';
import { expectClose } from './helpers/compare.js';
import { mulberry32, randInts, randn } from './helpers/random.js';

describe('bf16', () => {
  it('rounds to nearest, ties to even, and keeps NaN and infinities', () => {
    expect(bf16Round(1)).toBe(0x3f80);
    expect(bf16Round(1 + 2 ** -8)).toBe(0x3f80); // halfway to 1 + 2^-7: even is 1
    expect(bf16Round(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway: even is 1 + 2^-6
    expect(bf16Round(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // just above halfway
    expect(bf16Widen(bf16Round(-Infinity))).toBe(-Infinity);
    expect(Number.isNaN(bf16Widen(bf16Round(NaN)))).toBe(true);
    expect(bf16Widen(bf16Round(3.4e38))).toBe(Infinity); // past the largest bf16
  });

  it('toBf16 agrees with bf16Round element by element, and widening is exact', () => {
    const x = randn(mulberry32(1), 4096, 3);
    const h = toBf16(x);
    for (let i = 0; i < x.length; i++) expect(h[i]).toBe(bf16Round(x[i]));
    const w = fromBf16(h);
    for (let i = 0; i < x.length; i++) {
      expect(w[i]).toBe(bf16Widen(h[i]));
      expect(Math.abs(w[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
    }
    expect(toBf16(w)).toEqual(h); // a bf16 value rounds to itself
  });
});

describe('int8 (Q8_0 blocks of 32)', () => {
  it('quantizes within half a step of each value, with amax at ±127', () => {
    const x = randn(mulberry32(2), 32 * 50, 2);
    const { q, scales } = quantizeQ8(x);
    expect(scales.length).toBe(50);
    const back = dequantizeQ8(q, scales);
    for (let b = 0; b < 50; b++) {
      let amax = 0;
      for (let i = 0; i < Q8_BLOCK; i++) amax = Math.max(amax, Math.abs(x[b * Q8_BLOCK + i]));
      expect(scales[b]).toBe(Math.fround(amax / 127));
      expect(Math.max(...Array.from(q.subarray(b * Q8_BLOCK, (b + 1) * Q8_BLOCK), Math.abs))).toBe(127);
      for (let i = b * Q8_BLOCK; i < (b + 1) * Q8_BLOCK; i++) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(scales[b] * 0.5 * (1 + 1e-6));
    }
  });

  it('a block of zeros has scale 0; halves round to even; a length off the block size is an error', () => {
    const x = new Float32Array(64);
    x[32] = 127;
    x[33] = 2.5;
    x[34] = 3.5;
    x[35] = -2.5;
    const { q, scales } = quantizeQ8(x);
    expect(scales[0]).toBe(0);
    expect([...q.subarray(0, 32)].every((v) => v === 0)).toBe(true);
    expect([q[32], q[33], q[34], q[35]]).toEqual([127, 2, 4, -2]);
    expect(() => quantizeQ8(new Float32Array(40))).toThrow(/40 is not a multiple of 32/);
  });
});

describe('int8 in memory: rows interleaved in groups of 16', () => {
  it('puts 4 bytes of each of a group\'s rows side by side, and deinterleaveQ8 undoes it', () => {
    // (OC, C) = (20, 64): one group of 16 rows and a partial one of 4.
    const [OC, C] = [20, 64];
    expect(q8At(0, 0, OC, C)).toBe(0);
    expect(q8At(1, 0, OC, C)).toBe(4); // row 1's first 4 bytes follow row 0's
    expect(q8At(0, 4, OC, C)).toBe(64); // then the next 4 values of k, 16 rows × 4 bytes on
    expect(q8At(17, 5, OC, C)).toBe(16 * C + 1 * 16 + 1 * 4 + 1); // the partial group: 4 rows × 4 bytes a step
    const w = quantizeQ8(randn(mulberry32(5), OC * C));
    const laid = interleaveQ8(w, OC, C);
    for (let o = 0; o < OC; o++) for (let k = 0; k < C; k++) expect(laid.q[q8At(o, k, OC, C)]).toBe(w.q[o * C + k]);
    const back = deinterleaveQ8(laid, OC, C);
    expect(back.q).toEqual(w.q);
    expect(back.scales).toEqual(w.scales);
    expect(() => interleaveQ8(w, OC, C + 32)).toThrow(/expected 20×96 values/);
  });
});

describe('reference compact kernels vs float64 over the dequantized weights', () => {
  const r = mulberry32(3);
  for (const [N, C, OC] of [[1, 64, 40], [6, 96, 33], [3, 768, 50]] as const) {
    const inp = randn(r, N * C);
    const w = randn(r, OC * C, 0.2);
    const bias = randn(r, OC);

    it(`matmulForwardBf16 N=${N} C=${C} OC=${OC}`, () => {
      const h = toBf16(w);
      const got = new Float32Array(N * OC);
      matmulForwardBf16(got, inp, h, bias, N, C, OC);
      // The specification: activations rounded to bf16, products and sums in float64.
      const want = new Float64Array(N * OC);
      matmulForward(want, Float64Array.from(fromBf16(toBf16(inp))), Float64Array.from(fromBf16(h)), Float64Array.from(bias), N, C, OC);
      expectClose(got, want, 1e-6, 'matmulForwardBf16');
    });

    it(`matmulForwardQ8 N=${N} C=${C} OC=${OC}`, () => {
      const { q, scales } = quantizeQ8(w);
      const laid = interleaveQ8({ q, scales }, OC, C);
      const got = new Float32Array(N * OC);
      matmulForwardQ8(got, inp, laid.q, laid.scales, bias, N, C, OC);
      // Activations quantized per row in blocks of 32, as the weights; then float64.
      const x = new Float64Array(N * C);
      for (let n = 0; n < N; n++) {
        const row = quantizeQ8(inp.slice(n * C, (n + 1) * C));
        x.set(dequantizeQ8(row.q, row.scales), n * C);
      }
      const want = new Float64Array(N * OC);
      matmulForward(want, x, Float64Array.from(dequantizeQ8(q, scales)), Float64Array.from(bias), N, C, OC);
      expectClose(got, want, 1e-6, 'matmulForwardQ8');
      // And int8 is an approximation of the f32 product, not something else.
      const exact = new Float64Array(N * OC);
      matmulForward(exact, Float64Array.from(inp), Float64Array.from(w), Float64Array.from(bias), N, C, OC);
      expectClose(got, exact, 2e-2, 'matmulForwardQ8 vs the f32 weights');
    });
  }

  it('encoderForwardBf16 and encoderForwardQ8 add the dequantized rows to wpe', () => {
    const [B, T, C, V] = [2, 3, 64, 37]; // two full groups of 16 rows and a partial one
    const ids = randInts(r, B * T, V);
    const wte = randn(r, V * C);
    const wpe = randn(r, T * C);
    const want = (table: Float32Array) => {
      const out = new Float64Array(B * T * C);
      for (let bt = 0; bt < B * T; bt++) for (let i = 0; i < C; i++) out[bt * C + i] = table[ids[bt] * C + i] + wpe[(bt % T) * C + i];
      return out;
    };
    const h = toBf16(wte);
    const got = new Float32Array(B * T * C);
    encoderForwardBf16(got, ids, h, wpe, B, T, C);
    expectClose(got, want(fromBf16(h)), 1e-7, 'encoderForwardBf16');
    const { q, scales } = quantizeQ8(wte);
    const laid = interleaveQ8({ q, scales }, V, C);
    encoderForwardQ8(got, ids, laid.q, laid.scales, wpe, B, T, C, V);
    expectClose(got, want(dequantizeQ8(q, scales)), 1e-7, 'encoderForwardQ8');
  });
});
