// Bad inputs are rejected with an Error that names the offending argument, on every
// backend, and the process survives: after each rejected call a valid call still works.
// The raw native addon is also called directly with bad arguments (bypassing BaseBackend's
// checks): it must throw, not crash.

import { describe, expect, it } from 'vitest';
import type { Backend, Tensor } from '../src/backend/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { allowMissing, backendOrNull, describeEachBackend, testBackends } from './helpers/backends.js';

/** A tensor of `length` f32 (or i32) elements holding `data` (default zeros). */
function tensor(b: Backend, length: number, data?: number[], dtype: 'f32' | 'i32' = 'f32'): Tensor {
  const t = b.alloc(length, dtype);
  if (data) b.write(t, dtype === 'f32' ? Float32Array.from(data) : Int32Array.from(data));
  return t;
}

/** A valid call whose result we know: gelu(0) = 0, gelu(1) ≈ 0.8412. The process survived. */
function stillWorks(b: Backend): void {
  const x = tensor(b, 2, [0, 1]);
  const y = b.alloc(2);
  b.geluForward(y, x, 2);
  const out = b.read(y);
  expect(out[0]).toBe(0);
  expect(out[1]).toBeCloseTo(0.8412, 3);
}

describeEachBackend('bad inputs', (b) => {
  const other = new ReferenceBackend(); // "another backend" (for reference: another instance)

  it('wrong length: the output of a kernel', () => {
    expect(() => b.geluForward(b.alloc(5), b.alloc(6), 6)).toThrow(/geluForward: out has length 5, expected 6/);
    stillWorks(b);
  });

  it('wrong length: an input', () => {
    expect(() => b.geluForward(b.alloc(6), b.alloc(5), 6)).toThrow(/geluForward: inp has length 5, expected 6/);
    expect(() => b.layernormForward(b.alloc(6), b.alloc(2), b.alloc(2), b.alloc(6), b.alloc(4), b.alloc(3), 2, 3)).toThrow(/weight/);
    stillWorks(b);
  });

  it('shapes that disagree', () => {
    // weight holds (OC+1, C): inconsistent with out (N, OC)
    expect(() => b.matmulForward(b.alloc(2 * 4), b.alloc(2 * 3), b.alloc(5 * 3), null, 2, 3, 4)).toThrow(/matmulForward: weight has length 15, expected 12/);
    expect(() => b.matmulForward(b.alloc(2 * 4), b.alloc(2 * 3), b.alloc(4 * 3), b.alloc(3), 2, 3, 4)).toThrow(/matmulForward: bias/);
    // wte not a whole number of rows of C
    expect(() => b.encoderForward(b.alloc(6), tensor(b, 2, [0, 0], 'i32'), b.alloc(10), b.alloc(6), 1, 2, 3)).toThrow(/encoderForward: wte/);
    // wpe with fewer than T rows
    expect(() => b.encoderForward(b.alloc(6), tensor(b, 2, [0, 0], 'i32'), b.alloc(9), b.alloc(3), 1, 2, 3)).toThrow(/encoderForward: wpe/);
    stillWorks(b);
  });

  it.each([
    ['non-integer', 2.5],
    ['negative', -1],
    ['zero', 0],
    ['NaN', NaN],
    ['infinite', Infinity],
    ['too large', 2 ** 40],
  ])('dimension %s', (_what, bad) => {
    expect(() => b.geluForward(b.alloc(2), b.alloc(2), bad)).toThrow(/geluForward: N must be an integer >= 1/);
    expect(() => b.matmulForward(b.alloc(4), b.alloc(4), b.alloc(4), null, 2, bad, 2)).toThrow(/matmulForward: C must be/);
    expect(() => b.attentionForward(b.alloc(4), b.alloc(4), b.alloc(12), 1, bad, 4, 1)).toThrow(/attentionForward: T must be/);
    stillWorks(b);
  });

  it('a dimension of the wrong type', () => {
    expect(() => b.geluForward(b.alloc(2), b.alloc(2), '2' as unknown as number)).toThrow(/geluForward: N must be an integer/);
    stillWorks(b);
  });

  it('an overwrite flag that is not a boolean', () => {
    expect(() => b.geluBackward(b.alloc(2), b.alloc(2), b.alloc(2), 2, 1 as unknown as boolean)).toThrow(/geluBackward: overwrite must be a boolean, got 1/);
    expect(() => b.matmulBackward(b.alloc(4), b.alloc(4), null, b.alloc(4), b.alloc(4), b.alloc(4), 2, 2, 2, 'yes' as unknown as boolean)).toThrow(/matmulBackward: overwriteDinp must be a boolean/);
    expect(() => b.crossentropyBackward(b.alloc(3), b.alloc(1), b.alloc(3), tensor(b, 1, [0], 'i32'), 1, 3, -100, 0 as unknown as boolean)).toThrow(/crossentropyBackward: overwrite must be a boolean, got 0/);
    stillWorks(b);
  });

  it('NH not dividing C', () => {
    const [B, T, C, NH] = [1, 2, 10, 3];
    expect(() => b.attentionForward(b.alloc(B * T * C), b.alloc(B * NH * T), b.alloc(B * T * 3 * C), B, T, C, NH)).toThrow(/attentionForward: C \(10\) must be divisible by NH \(3\)/);
    expect(() => b.attentionBackward(b.alloc(B * T * 3 * C), b.alloc(B * T * C), b.alloc(B * T * 3 * C), b.alloc(B * T * C), b.alloc(B * NH * T), B, T, C, NH)).toThrow(/NH/);
    stillWorks(b);
  });

  it('token ids out of range', () => {
    const [B, T, C, V] = [1, 3, 2, 4];
    const wte = b.alloc(V * C);
    const wpe = b.alloc(T * C);
    expect(() => b.encoderForward(b.alloc(B * T * C), tensor(b, 3, [0, 4, 1], 'i32'), wte, wpe, B, T, C)).toThrow(/encoderForward: ids\[1\] = 4 is out of range/);
    expect(() => b.encoderForward(b.alloc(B * T * C), tensor(b, 3, [0, 1, -1], 'i32'), wte, wpe, B, T, C)).toThrow(/encoderForward: ids\[2\] = -1/);
    expect(() => b.encoderBackward(b.alloc(V * C), b.alloc(T * C), b.alloc(B * T * C), tensor(b, 3, [7, 0, 0], 'i32'), B, T, C)).toThrow(/encoderBackward: ids\[0\] = 7/);
    stillWorks(b);
  });

  it('targets out of range (the ignore index is allowed)', () => {
    const [N, V] = [3, 5];
    const logits = b.alloc(N * V);
    expect(() => b.crossentropyForward(b.alloc(N), logits, tensor(b, 3, [0, 5, 1], 'i32'), N, V, -100)).toThrow(/crossentropyForward: targets\[1\] = 5 is out of range/);
    expect(() => b.crossentropyBackward(b.alloc(N * V), b.alloc(N), logits, tensor(b, 3, [-2, 0, 1], 'i32'), N, V, -100)).toThrow(/crossentropyBackward: targets\[0\] = -2/);
    expect(() => b.crossentropyForward(b.alloc(N), logits, tensor(b, 3, [0, 1, 1], 'i32'), N, V, 1.5)).toThrow(/ignoreIndex/);
    // The ignore index itself is fine, and its row's loss is 0.
    const losses = b.alloc(N);
    b.crossentropyForward(losses, logits, tensor(b, 3, [0, -100, 4], 'i32'), N, V, -100);
    expect(Array.from(b.read(losses))).toEqual([Math.fround(Math.log(5)), 0, Math.fround(Math.log(5))].map((x) => expect.closeTo(x, 6)));
    stillWorks(b);
  });

  it('wrong typed array type on write', () => {
    const f = b.alloc(4);
    const i = b.alloc(4, 'i32');
    expect(() => b.write(f, new Int32Array(4))).toThrow(/write: data must be a Float32Array for a f32 tensor, got Int32Array/);
    expect(() => b.write(f, new Float64Array(4) as unknown as Float32Array)).toThrow(/write: data must be a Float32Array.*Float64Array/);
    expect(() => b.write(f, [1, 2, 3, 4] as unknown as Float32Array)).toThrow(/write: data must be a Float32Array.*Array/);
    expect(() => b.write(i, new Float32Array(4))).toThrow(/write: data must be a Int32Array for a i32 tensor/);
    expect(() => b.write(f, new Float32Array(5))).toThrow(/write: data length 5 at offset 0 exceeds tensor length 4/);
    expect(() => b.write(f, new Float32Array(2), 3)).toThrow(/write: data length 2 at offset 3/);
    expect(() => b.read(f, 2, 3)).toThrow(/read: offset 2 \+ length 3 exceeds/);
    stillWorks(b);
  });

  it('a tensor of the wrong dtype for a kernel argument', () => {
    expect(() => b.geluForward(b.alloc(2), b.alloc(2, 'i32'), 2)).toThrow(/geluForward: inp must be a f32 tensor, got i32/);
    expect(() => b.encoderForward(b.alloc(2), b.alloc(1), b.alloc(2), b.alloc(2), 1, 1, 2)).toThrow(/encoderForward: ids must be a i32 tensor/);
    expect(() => b.alloc(3, 'f64' as 'f32')).toThrow(/alloc: dtype/);
    stillWorks(b);
  });

  it('a freed handle, and views of a freed tensor', () => {
    const x = b.alloc(4);
    const v = b.view(x, 1, 2);
    b.free(x);
    expect(() => b.geluForward(b.alloc(4), x, 4)).toThrow(/geluForward: inp is not a live tensor of the \w+ backend/);
    expect(() => b.read(x)).toThrow(/read: t is not a live tensor/);
    expect(() => b.write(x, new Float32Array(4))).toThrow(/write: t is not a live tensor/);
    expect(() => b.free(x)).toThrow(/free: t is not a live tensor/); // double free
    expect(() => b.geluForward(b.alloc(2), v, 2)).toThrow(/geluForward: inp is a view of a freed tensor/);
    stillWorks(b);
  });

  it('a handle from another backend, and a forged one', () => {
    // Tensors of every other loaded backend (ids are small integers on each, so the same id
    // may well be live here too: identity is what is checked, not the id).
    const others = [other, ...testBackends.map((x) => x.backend).filter((x): x is Backend => x !== null && x !== b)];
    for (const o of others) {
      const foreign = o.alloc(4);
      expect(() => b.geluForward(b.alloc(4), foreign, 4)).toThrow(/geluForward: inp is not a live tensor of the \w+ backend \(freed, or from another backend\)/);
      expect(() => b.geluForward(foreign, b.alloc(4), 4)).toThrow(/geluForward: out is not a live tensor/);
      expect(() => b.read(foreign)).toThrow(/read: t is not a live tensor/);
      o.free(foreign);
    }
    const mine = b.alloc(4);
    const forged = { id: mine.id, dtype: 'f32', length: 4 } as Tensor;
    expect(() => b.geluForward(forged, mine, 4)).toThrow(/geluForward: out is not a live tensor/);
    expect(() => b.geluForward(b.alloc(4), null as unknown as Tensor, 4)).toThrow(/geluForward: inp is not a live tensor/);
    stillWorks(b);
  });

  it('overlapping output and input', () => {
    const buf = b.alloc(16);
    const a = b.view(buf, 0, 8);
    const c = b.view(buf, 4, 8); // overlaps a
    const d = b.view(buf, 8, 8); // disjoint from a
    expect(() => b.geluForward(a, c, 8)).toThrow(/geluForward: output out overlaps inp/);
    expect(() => b.geluForward(buf, buf, 16)).toThrow(/geluForward: output out overlaps inp/); // in place
    expect(() => b.residualBackward(a, c, b.alloc(8), 8)).toThrow(/residualBackward: output dinp1 overlaps dinp2/);
    expect(() => b.layernormForward(b.alloc(8), b.view(buf, 0, 2), b.view(buf, 1, 2), b.alloc(8), b.alloc(4), b.alloc(4), 2, 4)).toThrow(/layernormForward: output mean overlaps rstd/);
    b.geluForward(a, d, 8); // views that do not overlap are fine
    stillWorks(b);
  });

  it('bad dropout and optimizer settings', () => {
    const x = b.alloc(4);
    const y = b.alloc(4);
    expect(() => b.dropoutForward(y, x, 4, { p: 1, seed: 0, stream: 0 })).toThrow(/dropoutForward: dropout.p must be in \[0, 1\)/);
    expect(() => b.dropoutForward(y, x, 4, { p: -0.1, seed: 0, stream: 0 })).toThrow(/dropout.p/);
    expect(() => b.dropoutForward(y, x, 4, { p: 0.1, seed: -1, stream: 0 })).toThrow(/dropoutForward: dropout.seed/);
    expect(() => b.dropoutForward(y, x, 4, { p: 0.1, seed: 0, stream: 2 ** 32 })).toThrow(/dropoutForward: dropout.stream/);
    expect(() => b.adamwUpdate(b.alloc(4), b.alloc(4), b.alloc(4), b.alloc(4), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0)).toThrow(/adamwUpdate: step/);
    expect(() => b.adamwUpdate(b.alloc(4), b.alloc(4), b.alloc(4), b.alloc(4), 4, NaN, 0.9, 0.999, 1e-8, 0, 1)).toThrow(/adamwUpdate: lr/);
    expect(() => b.adamwUpdate(b.alloc(4), b.alloc(4), b.alloc(4), b.alloc(4), 4, 1e-3, 1, 0.999, 1e-8, 0, 1)).toThrow(/adamwUpdate: beta1/);
    expect(() => b.scale(x, 4, Infinity)).toThrow(/scale: s must be a finite number/);
    expect(() => b.view(x, 3, 2)).toThrow(/view: offset 3 \+ length 2 exceeds base length 4/);
    stillWorks(b);
  });
});

// ---- the raw native addon, called directly (no BaseBackend checks in front of it) ----

const native = backendOrNull('native') !== null ? await import('../bindings/native.js').then((m) => m.loadNative().addon) : null;

describe.skipIf(native === null)('raw native addon rejects bad arguments itself', () => {
  const a = native!;
  const f = (n: number) => new Float32Array(n);

  it('wrong lengths throw, naming the argument', () => {
    expect(() => a.geluForward(f(3), f(5), 5)).toThrow(/out/);
    expect(() => a.geluForward(f(5), f(3), 5)).toThrow(/inp/);
    expect(() => a.matmulForward(f(8), f(6), f(11), null, 2, 3, 4)).toThrow(/weight/);
    expect(() => a.attentionForward(f(6), f(2), f(17), 1, 2, 3, 1, 0, 0, 0)).toThrow(/qkv/);
    expect(() => a.sumSquares(f(3), 4)).toThrow(/x/);
    // a huge N with tiny buffers must not read out of bounds
    expect(() => a.geluForward(f(1), f(1), 2 ** 31)).toThrow(/out|N/);
  });

  it('bad dims, types, ids and overlaps throw', () => {
    expect(() => a.geluForward(f(2), f(2), -1)).toThrow(/N/);
    expect(() => a.geluForward(f(2), f(2), 1.5)).toThrow(/N/);
    expect(() => a.geluForward(f(2), new Float64Array(2) as unknown as Float32Array, 2)).toThrow(/inp/);
    expect(() => a.geluForward(f(2), [1, 2] as unknown as Float32Array, 2)).toThrow(/inp/);
    expect(() => a.encoderForward(f(2), Int32Array.from([9]), f(4), f(2), 1, 1, 2)).toThrow(/ids/);
    expect(() => a.crossentropyForward(f(1), f(3), Int32Array.from([3]), 1, 3, -100)).toThrow(/targets/);
    expect(() => a.attentionForward(f(10), f(3), f(30), 1, 1, 10, 3, 0, 0, 0)).toThrow(/NH/);
    const shared = new Float32Array(16);
    expect(() => a.geluForward(shared.subarray(0, 8), shared.subarray(4, 12), 8)).toThrow(/overlap/);
    expect(() => a.dropoutForward(f(2), f(2), 2, 1.5, 0, 0)).toThrow(/p/);
    expect(() => (a.geluBackward as (...x: unknown[]) => void)(f(2), f(2), f(2), 2, 'yes')).toThrow(/overwrite must be a boolean/);
    expect(() => (a.crossentropyBackward as (...x: unknown[]) => void)(f(3), f(1), f(3), Int32Array.from([0]), 1, 3, -100, 1)).toThrow(/overwrite must be a boolean/);
    expect(() => (a.geluForward as (...x: unknown[]) => void)()).toThrow();
  });

  it('compact weights: element types, the int8 block, the scales and overlaps in bytes', () => {
    const u16 = (n: number) => new Uint16Array(n);
    const i8 = (n: number) => new Int8Array(n);
    expect(() => a.matmulForwardBf16(f(2), f(2), f(4) as unknown as Uint16Array, null, 1, 2, 2)).toThrow('matmulForwardBf16: weight must be a Uint16Array');
    expect(() => a.matmulForwardBf16(f(2), f(2), u16(3), null, 1, 2, 2)).toThrow('matmulForwardBf16: weight has length 3, expected 4');
    expect(() => a.matmulForwardQ8(f(2), f(48), i8(96), f(2), null, 1, 48, 2)).toThrow('matmulForwardQ8: C (48) must be divisible by 32');
    expect(() => a.matmulForwardQ8(f(2), f(32), u16(64) as unknown as Int8Array, f(2), null, 1, 32, 2)).toThrow('matmulForwardQ8: weight must be a Int8Array');
    expect(() => a.matmulForwardQ8(f(2), f(32), i8(64), f(1), null, 1, 32, 2)).toThrow('matmulForwardQ8: scales has length 1, expected 2');
    expect(() => a.encoderForwardQ8(f(32), Int32Array.from([1]), i8(32), f(1), f(32), 1, 1, 32, 1)).toThrow(/ids\[0\] = 1 is out of range/);
    expect(() => a.encoderForwardQ8(f(32), Int32Array.from([0]), i8(64), f(1), f(32), 1, 1, 32, 2)).toThrow('encoderForwardQ8: scales has length 1, expected 2');
    // An int8 weight's span is its bytes: an output over its second half overlaps it.
    const bytes = new ArrayBuffer(256);
    expect(() => a.matmulForwardQ8(new Float32Array(bytes, 32, 2), f(32), new Int8Array(bytes, 0, 64), f(2), null, 1, 32, 2)).toThrow(/overlap/);
    expect(() => a.matmulForwardQ8(new Float32Array(bytes, 64, 2), f(32), new Int8Array(bytes, 0, 64), f(2), null, 1, 32, 2)).not.toThrow();
  });

  it('a bf16 KV cache: Uint16Array outputs, checked for type, length and overlaps in bytes', () => {
    const u16 = (n: number) => new Uint16Array(n);
    const pos = Int32Array.from([0]);
    // B = 1, Tq = 1, C = 4, NH = 2, maxT = 2: the caches hold 8 elements.
    expect(() => a.attentionDecodeBf16(f(4), f(8) as unknown as Uint16Array, u16(8), f(12), pos, 1, 1, 4, 2, 2)).toThrow('attentionDecodeBf16: kcache must be a Uint16Array');
    expect(() => a.attentionDecodeBf16(f(4), u16(8), u16(7), f(12), pos, 1, 1, 4, 2, 2)).toThrow('attentionDecodeBf16: vcache has length 7, expected 8');
    expect(() => a.attentionDecode(f(4), u16(8) as unknown as Float32Array, f(8), f(12), pos, 1, 1, 4, 2, 2)).toThrow('attentionDecode: kcache must be a Float32Array');
    expect(() => a.copyRowsBf16(u16(8), f(8) as unknown as Uint16Array, 2, 4)).toThrow('copyRowsBf16: inp must be a Uint16Array');
    // 8 bf16 are 16 bytes: vcache at byte 8 overlaps kcache's second half, at byte 16 it does not.
    const bytes = new ArrayBuffer(64);
    expect(() => a.attentionDecodeBf16(f(4), new Uint16Array(bytes, 0, 8), new Uint16Array(bytes, 8, 8), f(12), pos, 1, 1, 4, 2, 2)).toThrow(/output kcache overlaps vcache/);
    expect(() => a.attentionDecodeBf16(new Float32Array(bytes, 12, 4), new Uint16Array(bytes, 0, 8), u16(8), f(12), pos, 1, 1, 4, 2, 2)).toThrow(/overlaps/);
    expect(() => a.attentionDecodeBf16(f(4), new Uint16Array(bytes, 0, 8), new Uint16Array(bytes, 16, 8), f(12), pos, 1, 1, 4, 2, 2)).not.toThrow();
  });

  it('the addon still works afterwards', () => {
    const out = f(2);
    a.geluForward(out, Float32Array.from([0, 1]), 2);
    expect(out[1]).toBeCloseTo(0.8412, 3);
  });
});

if (native === null) {
  (allowMissing ? it.skip : it)('raw native addon: SKIPPED, the native backend is unavailable', () => {
    throw new Error('the native backend is unavailable; run npm run build:native');
  });
}
