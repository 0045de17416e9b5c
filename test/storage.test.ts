// Tensor storage semantics, identical on every backend: alloc zero-fills, write/read copy
// at offsets, views share storage with their base, zero clears, kernels see views at
// their offsets; writeTokens checks ids once and marks them, until anything else writes.

import { describe, expect, it } from 'vitest';
import type { Tensor } from '../src/backend/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { TypedStorage } from '../src/backend/typed-array.js';
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

  it('bf16 and i8 tensors (compact weights) hold their own element types, at offsets and in views', () => {
    const h = b.alloc(5, 'bf16');
    expect(h.dtype).toBe('bf16');
    b.write(h, Uint16Array.from([0x3f80, 0xbf80, 0x7fc0]), 1);
    const hb = b.read(h);
    expect(hb).toBeInstanceOf(Uint16Array);
    expect(Array.from(hb)).toEqual([0, 0x3f80, 0xbf80, 0x7fc0, 0]);
    expect(Array.from(b.read(b.view(h, 2, 2)))).toEqual([0xbf80, 0x7fc0]);
    const q = b.alloc(7, 'i8');
    b.write(q, Int8Array.from([-127, 5, 127]), 4);
    b.zero(b.view(q, 6, 1));
    expect(Array.from(b.read(q))).toEqual([0, 0, 0, 0, -127, 5, 0]);
    expect(() => b.write(h, new Float32Array(1))).toThrow('write: data must be a Uint16Array for a bf16 tensor, got Float32Array');
    expect(() => b.write(q, new Uint8Array(1) as unknown as Int8Array)).toThrow('write: data must be a Int8Array for a i8 tensor, got Uint8Array');
    expect(() => b.alloc(1, 'f16' as never)).toThrow("alloc: dtype must be one of 'f32', 'i32', 'bf16', 'i8', got f16");
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

// ---- writeTokens: ids checked once when written, and the kernels' scan skipped after ----

describeEachBackend('writeTokens', (b) => {
  const ints = (xs: number[]) => Int32Array.from(xs);
  /** encoderForward over a table of V rows of C = 2, T = ids.length (B = 1). */
  const encode = (ids: Tensor, V: number) => {
    const T = ids.length;
    b.encoderForward(b.alloc(T * 2), ids, b.alloc(V * 2), b.alloc(T * 2), 1, T, 2);
  };

  it('rejects an id out of range with the caller and argument names, and writes nothing', () => {
    const t = b.alloc(3, 'i32');
    expect(() => b.writeTokens(t, ints([0, 4, 1]), 4, 'forwardBackward')).toThrow(new Error('forwardBackward: ids[1] = 4 is out of range (must be in 0..3)'));
    expect(() => b.writeTokens(t, ints([-100, 3, -1]), 4, 'fit', 'targets', -100)).toThrow(new Error('fit: targets[2] = -1 is out of range (must be in 0..3, or -100 to skip)'));
    expect(Array.from(b.read(t))).toEqual([0, 0, 0]);
    b.writeTokens(t, ints([3, -100]), 4, 'fit', 'targets', -100, 1); // at an offset; the index is in data
    expect(Array.from(b.read(t))).toEqual([0, 3, -100]);
    expect(() => b.writeTokens(t, ints([7]), 4, 'fit', 'targets', -100, 2)).toThrow(new Error('fit: targets[0] = 7 is out of range (must be in 0..3, or -100 to skip)'));
  });

  it('rejects what write() rejects, and a bad V', () => {
    const t = b.alloc(3, 'i32');
    expect(() => b.writeTokens(b.alloc(3), ints([0]), 4, 'x')).toThrow(/^writeTokens: t must be a i32 tensor, got f32$/);
    expect(() => b.writeTokens(t, new Float32Array(3) as unknown as Int32Array, 4, 'x')).toThrow(/^writeTokens: data must be a Int32Array, got Float32Array$/);
    expect(() => b.writeTokens(t, ints([0, 0]), 4, 'x', 'ids', undefined, 2)).toThrow(/^writeTokens: data length 2 at offset 2 exceeds tensor length 3$/);
    expect(() => b.writeTokens(t, ints([0]), 0, 'x')).toThrow(/^writeTokens: V must be an integer >= 1, got 0$/);
    expect(() => b.writeTokens(t, ints([0]), 4, 'x', 'ids', 1.5)).toThrow(/^writeTokens: allowed must be a 32-bit integer, got 1.5$/);
    const freed = b.alloc(1, 'i32');
    b.free(freed);
    expect(() => b.writeTokens(freed, ints([0]), 4, 'x')).toThrow(/^writeTokens: t is not a live tensor/);
  });

  it('ids written with plain write() are scanned by every kernel call', () => {
    const ids = b.alloc(3, 'i32');
    b.write(ids, ints([0, 4, 1]));
    expect(() => encode(ids, 4)).toThrow(new Error('encoderForward: ids[1] = 4 is out of range (must be in 0..3)'));
    b.write(ids, ints([0, 3, 1]));
    encode(ids, 4);
    expect(() => encode(ids, 3)).toThrow(new Error('encoderForward: ids[1] = 3 is out of range (must be in 0..2)'));
  });

  it('a mark is cleared by write(), zero(), a write through a view, and a narrower range rescans', () => {
    const ids = b.alloc(3, 'i32');
    const tail = b.view(ids, 1, 2);
    b.writeTokens(ids, ints([0, 1, 2]), 3, 'test');
    encode(ids, 3);
    b.write(ids, ints([9]), 1); // the mark is gone: the kernel finds the 9
    expect(() => encode(ids, 3)).toThrow(new Error('encoderForward: ids[1] = 9 is out of range (must be in 0..2)'));

    b.writeTokens(ids, ints([0, 1, 2]), 3, 'test');
    b.write(tail, ints([5]), 1); // through a view of the same storage
    expect(() => encode(ids, 3)).toThrow(new Error('encoderForward: ids[2] = 5 is out of range (must be in 0..2)'));

    b.writeTokens(ids, ints([0, 1, 2]), 3, 'test');
    b.zero(ids);
    encode(ids, 1); // rescanned (zeros are in range), not trusted from the mark

    b.writeTokens(ids, ints([0, 1, 2]), 3, 'test');
    expect(() => encode(ids, 2)).toThrow(new Error('encoderForward: ids[2] = 2 is out of range (must be in 0..1)')); // V' = 3 > 2
  });

  it('the allowed value must match: targets marked with -100 are rescanned for ignoreIndex -1', () => {
    const [N, V] = [3, 4];
    const targets = b.alloc(N, 'i32');
    b.writeTokens(targets, ints([0, -100, 3]), V, 'test', 'targets', -100);
    b.crossentropyForward(b.alloc(N), b.alloc(N * V), targets, N, V, -100);
    expect(() => b.crossentropyForward(b.alloc(N), b.alloc(N * V), targets, N, V, -1)).toThrow(
      new Error('crossentropyForward: targets[1] = -100 is out of range (must be in 0..3 or -1)'),
    );
  });
});

/** A reference backend that counts the kernels' scans of i32 arguments. */
class Counting extends ReferenceBackend {
  scans = 0;
  protected override intView(storage: TypedStorage, offset: number, length: number): Int32Array {
    this.scans++;
    return super.intView(storage, offset, length);
  }
}

describe('writeTokens marks skip the kernel scan (reference backend, scans counted)', () => {
  const b = new Counting();
  const run = (ids: Tensor, V: number) => {
    const before = b.scans;
    b.encoderForward(b.alloc(ids.length * 2), ids, b.alloc(V * 2), b.alloc(ids.length * 2), 1, ids.length, 2);
    return b.scans - before;
  };

  it('a marked tensor is not scanned for V >= its V; anything else is', () => {
    const ids = b.alloc(4, 'i32');
    b.write(ids, Int32Array.from([0, 1, 2, 3]));
    expect(run(ids, 4)).toBe(1); // plain write: scanned
    b.writeTokens(ids, Int32Array.from([0, 1, 2, 3]), 4, 'test');
    expect(run(ids, 4)).toBe(0);
    expect(run(ids, 10)).toBe(0);
    expect(() => run(ids, 3)).toThrow(/ids\[3\] = 3 is out of range/); // narrower: scanned
    const view = b.view(ids, 0, 4);
    expect(run(view, 4)).toBe(1); // the mark is on the handle that was written
    b.write(view, Int32Array.from([1]), 3);
    expect(run(ids, 4)).toBe(1); // cleared by a write through the view
  });

  it('a partial writeTokens keeps the mark only over a marked tensor', () => {
    const ids = b.alloc(4, 'i32');
    b.writeTokens(ids, Int32Array.from([1, 2]), 4, 'test', 'ids', undefined, 2);
    expect(run(ids, 4)).toBe(1); // elements 0..1 were never validated
    b.writeTokens(ids, Int32Array.from([0, 1, 2, 3]), 4, 'test');
    b.writeTokens(ids, Int32Array.from([5]), 6, 'test', 'ids', undefined, 1);
    expect(run(ids, 6)).toBe(0); // all < 6 now
    expect(() => run(ids, 5)).toThrow(/ids\[1\] = 5 is out of range/);
  });
});

describe('the model checks its token ids once per call (reference backend, kernel scans counted)', () => {

  it('forwardBackward, evalLoss and a trainForward/lmLoss/backward pass leave no id for the kernels to rescan', async () => {
    const { GPT } = await import('../src/model/gpt.js');
    const b = new Counting();
    const model = GPT.create({ vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, dropout: 0.1, seed: 1 }, b);
    const ids = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const targets = Int32Array.from([2, 3, 4, 5, 6, 7, 8, -1]);
    model.zeroGrad();
    const before = b.scans;
    model.forwardBackward(ids, targets, 2, 4); // encoder fwd/bwd read ids, crossentropy fwd/bwd read targets
    model.evalLoss(ids, targets, 2, 4);
    const pass = model.trainForward(ids, 2, 4);
    model.lmLoss(pass, targets);
    model.backward(pass);
    model.forward(ids, 2, 4);
    expect(b.scans - before).toBe(0);
  });
});
