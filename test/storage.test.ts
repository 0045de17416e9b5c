// Tensor storage semantics, identical on every backend: alloc zero-fills, write/read copy
// at offsets, views share storage with their base, zero clears, kernels see views at
// their offsets.

import { expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';

describeEachBackend('storage', (b) => {
  it('alloc is zero-filled, write/read round-trip at offsets', () => {
    const t = b.alloc(5);
    expect(t.dtype).toBe('f32');
    expect(t.length).toBe(5);
    expect(Array.from(b.read(t))).toEqual([0, 0, 0, 0, 0]);
    b.write(t, Float32Array.from([1.5, -2]), 2);
    expect(b.read(t)).toEqual(Float32Array.from([0, 0, 1.5, -2, 0]));
    expect(b.read(t, 2, 2)).toEqual(Float32Array.from([1.5, -2]));
    const i = b.alloc(3, 'i32');
    b.write(i, Int32Array.from([-1, 2 ** 31 - 1, 7]));
    const back = b.read(i);
    expect(back).toBeInstanceOf(Int32Array);
    expect(Array.from(back)).toEqual([-1, 2 ** 31 - 1, 7]);
    expect(b.alloc(0).length).toBe(0);
  });

  it('read returns a copy', () => {
    const t = b.alloc(2);
    const r = b.read(t);
    r[0] = 5;
    expect(b.read(t)[0]).toBe(0);
  });

  it('views share storage; zero clears only the view; freeing a view keeps the base', () => {
    const base = b.alloc(6);
    b.write(base, Float32Array.from([1, 2, 3, 4, 5, 6]));
    const v = b.view(base, 2, 3);
    expect(Array.from(b.read(v))).toEqual([3, 4, 5]);
    b.write(v, Float32Array.from([9]), 1);
    expect(Array.from(b.read(base))).toEqual([1, 2, 3, 9, 5, 6]);
    const vv = b.view(v, 1, 2); // a view of a view
    expect(Array.from(b.read(vv))).toEqual([9, 5]);
    b.zero(v);
    expect(Array.from(b.read(base))).toEqual([1, 2, 0, 0, 0, 6]);
    b.free(v);
    expect(() => b.read(v)).toThrow(/not a live tensor/);
    expect(Array.from(b.read(base))).toEqual([1, 2, 0, 0, 0, 6]);
    expect(Array.from(b.read(vv))).toEqual([0, 0]);
  });

  it('zero clears a large view (the native addon zeroes it on its threads), NaN and inf included, and nothing past it', () => {
    const n = 300_001; // past the size from which native zeroes in the addon, not a multiple of its chunks
    const base = b.alloc(n + 2);
    const data = new Float32Array(n + 2).map((_, i) => (i % 3 === 0 ? NaN : i % 3 === 1 ? -Infinity : i));
    b.write(base, data);
    b.zero(b.view(base, 1, n));
    const got = b.read(base);
    expect(Number.isNaN(got[0])).toBe(true);
    expect(got[n + 1]).toBe(data[n + 1]);
    expect(got.subarray(1, n + 1).every((x) => x === 0)).toBe(true);
  });

  it('kernels read and write views at their offsets', () => {
    const buf = b.alloc(8);
    b.write(buf, Float32Array.from([1, 2, 3, 4, 10, 20, 30, 40]));
    const x = b.view(buf, 0, 4);
    const y = b.view(buf, 4, 4);
    b.residualForward(y, x, y === x ? x : b.view(b.alloc(4), 0, 4), 4); // y = x + 0
    expect(Array.from(b.read(buf))).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    b.scale(y, 4, 2);
    expect(Array.from(b.read(buf))).toEqual([1, 2, 3, 4, 2, 4, 6, 8]);
    expect(b.sumSquares(x, 4)).toBe(30);
  });

  it('many allocations and frees (storage is reused without leaking handles)', () => {
    for (let i = 0; i < 200; i++) {
      const t = b.alloc(1000 + i);
      b.write(t, new Float32Array(1000 + i).fill(i));
      expect(b.read(t, 999, 1)[0]).toBe(i);
      b.free(t);
    }
  });

  it('info() describes the backend', () => {
    const info = b.info();
    expect(info.name).toBe(b.name);
    expect(typeof info.simd).toBe('string');
    expect(Number.isInteger(info.threads) && info.threads >= 1).toBe(true);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
  });
});
