// The counter RNG of crates/kernels/src/rng.rs, reproduced in TypeScript. The expected
// values were computed independently from the written specification (a few lines of
// Python with explicit `& 0xffffffff` masking), not from the implementation under test:
//   mix32(x):  x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
//   random_u32(seed, stream, index) = mix32(mix32(mix32(index ^ seed) ^ stream) + 0x9e3779b9)
//   uniform = (random_u32 >> 8) * 2^-24;  keep(p) = uniform >= p

import { describe, expect, it } from 'vitest';
import { attentionDropoutIndex, dropoutScale, keep, uniform } from '../src/backend/reference-kernels.js';
import { mix32, randomU32 } from '../src/backend/rng.js';

describe('counter RNG (crates/kernels/src/rng.rs)', () => {
  it('mix32 matches the specification', () => {
    expect(mix32(0)).toBe(0);
    expect(mix32(1)).toBe(1753845952);
    expect(mix32(0x80000000)).toBe(3427483940);
    expect(mix32(0xffffffff)).toBe(1734902346);
  });

  it.each([
    // seed, stream, index, random_u32
    [0, 0, 0, 0x01fce552],
    [0, 0, 1, 0xb1313766],
    [1, 0, 0, 0xb1313766], // index ^ seed: swapping them gives the same value, by design of the spec
    [0, 1, 0, 0xb21c8e52],
    [42, 7, 12345, 0x0d805dcb],
    [0xffffffff, 0xffffffff, 0xffffffff, 0x9e0924ad],
    [123456789, 3, 0xdeadbeef, 0xe514ab1c],
  ])('random_u32(seed %i, stream %i, index %i) = %i', (seed, stream, index, want) => {
    const got = randomU32(seed, stream, index);
    expect(got).toBe(want);
    expect(Number.isInteger(got) && got >= 0 && got <= 0xffffffff).toBe(true);
    expect(uniform(seed, stream, index)).toBe((want >>> 8) / 16777216);
  });

  it('uniform and keep at known points', () => {
    expect(uniform(0, 0, 0)).toBe(0.0077651143074035645);
    expect(uniform(42, 7, 12345)).toBe(0.05273991823196411);
    expect(keep(0.05, 42, 7, 12345)).toBe(true); // 0.0527 >= 0.05
    expect(keep(0.06, 42, 7, 12345)).toBe(false);
    expect(keep(0, 0, 0, 0)).toBe(true); // p = 0 keeps everything
  });

  it('keep compares against p rounded to f32, as the Rust kernels receive it', () => {
    // uniform(0,0,0) = 130273 * 2^-24 exactly. A p a hair above it in float64 that rounds
    // down to it in f32 must keep the element (f32 comparison: u >= p).
    const u = uniform(0, 0, 0);
    const p = u + 2 ** -40;
    expect(Math.fround(p)).toBe(u);
    expect(keep(p, 0, 0, 0)).toBe(true);
  });

  it('dropout scale is 1/(1-p) rounded as in f32', () => {
    expect(dropoutScale(0.5)).toBe(2);
    expect(dropoutScale(0.1)).toBe(Math.fround(1 / Math.fround(1 - Math.fround(0.1))));
  });

  it('the attention dropout index wraps at 2^32', () => {
    expect(attentionDropoutIndex(1, 2, 3, 1, 4, 10)).toBe(((1 * 4 + 2) * 10 + 3) * 10 + 1);
    // B*NH*T*T beyond 2^32: ((0*1 + 0)*T + (T-1))*T + (T-1) with T = 70000
    const T = 70000;
    expect(attentionDropoutIndex(0, 0, T - 1, T - 1, 1, T)).toBe(((T - 1) * T + (T - 1)) % 2 ** 32);
  });

  it('about p of the elements are dropped', () => {
    let dropped = 0;
    const n = 100000;
    for (let i = 0; i < n; i++) if (!keep(0.3, 7, 1, i)) dropped++;
    expect(Math.abs(dropped / n - 0.3)).toBeLessThan(0.01);
  });
});
