// The KV cache: the attentionDecode kernel against full causal attention, and the model's
// cached path against a full recompute at every decode step, on every backend, for a batch
// of prompts of different lengths (including sliding past the cache's end). The same for a
// bf16 cache (attentionDecodeBf16, kvDtype 'bf16'): against full attention over
// bf16-rounded k and v, and close to the f32 cache. And that a sequence decodes to the same
// bits alone or in a batch of up to 16.

import { describe, expect, it } from 'vitest';
import type { Backend, Tensor } from '../src/backend/backend.js';
import { bf16Round, bf16Widen, toBf16 } from '../src/backend/compact.js';
import { attentionForward } from '../src/backend/reference-kernels.js';
import { GPT } from '../src/model/gpt.js';
import { slideWindow } from '../src/model/kv-cache.js';
import { describeEachBackend } from './helpers/backends.js';
import { diff } from './helpers/compare.js';
import { mulberry32, randInts, randn } from './helpers/random.js';

/** Full causal attention of one sequence's (T, 3C) qkv, in float64 (the specification). */
function fullAttention(qkv: Float32Array, T: number, C: number, NH: number): Float64Array {
  const out = new Float64Array(T * C);
  attentionForward(out, new Float64Array(NH * T), Float64Array.from(qkv), 1, T, C, NH);
  return out;
}

const TOL = 1e-4;

/** qkv (T, 3C) with k and v rounded to bf16 (q as is): what a bf16 cache attends over. */
function roundKV(qkv: Float32Array, C: number): Float32Array {
  return qkv.map((x, i) => (i % (3 * C) >= C ? bf16Widen(bf16Round(x)) : x));
}

/**
 * A view of `be` whose attentionForward first rounds the k and v of its qkv to bf16 (in
 * place: the forward pass reads them only there), so model.forward on it is the full
 * forward pass over bf16-rounded k and v, the specification of a bf16 KV cache.
 */
function roundingAttention(be: Backend): Backend {
  return new Proxy(be, {
    get(target, prop) {
      if (prop === 'attentionForward') {
        return (out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number, dropout?: unknown) => {
          target.write(qkv, roundKV(target.read(qkv) as Float32Array, C));
          (target.attentionForward as (...a: unknown[]) => void)(out, lse, qkv, B, T, C, NH, dropout);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * One prefill call (a right-padded batch of prompts of different lengths) then decode steps
 * of one token per sequence, each at its own position, on a cache of `dtype`; returns the
 * worst difference from full causal attention per sequence (over bf16-rounded k and v for a
 * bf16 cache), and the cache and the sequences' qkv for further checks. The caller frees k, v.
 */
function prefillThenDecode(be: Backend, dtype: 'f32' | 'bf16', seed: number) {
  const rng = mulberry32(seed);
  const C = 36; // HS = 12: not a multiple of any SIMD width
  const NH = 3;
  const maxT = 13;
  const lens = [5, 1, 9]; // prompt lengths
  const B = lens.length;
  const steps = 4;
  const decode = (dtype === 'f32' ? be.attentionDecode : be.attentionDecodeBf16).bind(be) as (out: Tensor, k: Tensor, v: Tensor, qkv: Tensor, pos: Tensor, B: number, Tq: number, C: number, NH: number, maxT: number) => void;
  const spec = (qkv: Float32Array) => (dtype === 'f32' ? qkv : roundKV(qkv, C));
  // Every token's qkv, per sequence: (total, 3C).
  const seqs = lens.map((n) => randn(rng, (n + steps) * 3 * C));
  const k = be.alloc(B * maxT * C, dtype);
  const v = be.alloc(B * maxT * C, dtype);
  const pos = be.alloc(B, 'i32');
  // Prefill: one call, prompts right-padded to Tq = max length (padding qkv is junk).
  const Tq = Math.max(...lens);
  const qkv = randn(rng, B * Tq * 3 * C, 10);
  lens.forEach((n, b) => qkv.set(seqs[b].subarray(0, n * 3 * C), b * Tq * 3 * C));
  const qkvT = be.alloc(B * Tq * 3 * C);
  const outT = be.alloc(B * Tq * C);
  be.write(qkvT, qkv);
  be.write(pos, new Int32Array(B));
  decode(outT, k, v, qkvT, pos, B, Tq, C, NH, maxT);
  const out = be.read(outT) as Float32Array;
  let worst = 0;
  lens.forEach((n, b) => {
    const want = fullAttention(spec(seqs[b].subarray(0, n * 3 * C)), n, C, NH);
    worst = Math.max(worst, diff(out.subarray(b * Tq * C, (b * Tq + n) * C), want).maxAbs);
  });
  // Decode: one token per sequence per call, each at its own position.
  const q1 = be.alloc(B * 3 * C);
  const o1 = be.alloc(B * C);
  for (let s = 0; s < steps; s++) {
    const step = new Float32Array(B * 3 * C);
    lens.forEach((n, b) => step.set(seqs[b].subarray((n + s) * 3 * C, (n + s + 1) * 3 * C), b * 3 * C));
    be.write(q1, step);
    be.write(pos, Int32Array.from(lens.map((n) => n + s)));
    decode(o1, k, v, q1, pos, B, 1, C, NH, maxT);
    const got = be.read(o1) as Float32Array;
    lens.forEach((n, b) => {
      const T = n + s + 1;
      const want = fullAttention(spec(seqs[b].subarray(0, T * 3 * C)), T, C, NH).subarray((T - 1) * C);
      worst = Math.max(worst, diff(got.subarray(b * C, (b + 1) * C), want).maxAbs);
    });
  }
  for (const t of [pos, qkvT, outT, q1, o1]) be.free(t);
  return { worst, k, v, seqs, lens, steps, C, NH, maxT };
}

describeEachBackend('attentionDecode kernel', (be: Backend) => {
  it('prefill (right-padded batch) then decode steps equal full causal attention per sequence', () => {
    const { worst, k, v } = prefillThenDecode(be, 'f32', 7);
    expect(worst).toBeLessThanOrEqual(1e-5);
    for (const t of [k, v]) be.free(t);
  });

  it('padding rows past the end of the cache are skipped (output 0), real rows unaffected', () => {
    const rng = mulberry32(8);
    const C = 8;
    const NH = 1;
    const maxT = 4;
    const k = be.alloc(2 * maxT * C);
    const v = be.alloc(2 * maxT * C);
    const pos = be.alloc(2, 'i32');
    const Tq = 3;
    const qkvData = randn(rng, 2 * Tq * 3 * C);
    const qkv = be.alloc(2 * Tq * 3 * C);
    const out = be.alloc(2 * Tq * C);
    be.write(qkv, qkvData);
    be.write(pos, Int32Array.from([0, 3])); // sequence 1 has room for one row only
    be.attentionDecode(out, k, v, qkv, pos, 2, Tq, C, NH, maxT);
    const o = be.read(out) as Float32Array;
    expect(Array.from(o.subarray((Tq + 1) * C, 2 * Tq * C)).every((x) => x === 0)).toBe(true);
    const want = fullAttention(qkvData.subarray(0, Tq * 3 * C), Tq, C, NH);
    expect(diff(o.subarray(0, Tq * C), want).maxAbs).toBeLessThanOrEqual(1e-5);
    for (const t of [k, v, pos, qkv, out]) be.free(t);
  });

  it('rejects positions past the cache and shapes that do not match', () => {
    const C = 8;
    const k = be.alloc(4 * C);
    const v = be.alloc(4 * C);
    const pos = be.alloc(1, 'i32');
    const qkv = be.alloc(3 * C);
    const out = be.alloc(C);
    be.write(pos, Int32Array.from([5]));
    expect(() => be.attentionDecode(out, k, v, qkv, pos, 1, 1, C, 2, 4)).toThrow(/pos\[0\] = 5 is out of range/);
    be.write(pos, Int32Array.from([0]));
    expect(() => be.attentionDecode(out, k, v, qkv, pos, 1, 1, C, 2, 5)).toThrow(/kcache has length/);
    expect(() => be.attentionDecode(out, k, v, qkv, pos, 1, 1, C, 3, 4)).toThrow(/divisible/);
    expect(() => be.attentionDecode(out, k, k, qkv, pos, 1, 1, C, 2, 4)).toThrow(/overlaps/);
    for (const t of [k, v, pos, qkv, out]) be.free(t);
  });
});

describeEachBackend('attentionDecodeBf16 kernel', (be: Backend) => {
  it('prefill (right-padded batch) then decode steps equal full causal attention over bf16-rounded k, v; the cache holds bf16(k), bf16(v)', () => {
    const { worst, k, v, seqs, lens, steps, C, NH, maxT } = prefillThenDecode(be, 'bf16', 21);
    expect(worst).toBeLessThanOrEqual(1e-5);
    // The cache rows of every real token are bf16(k), bf16(v), bit for bit: (B, NH, maxT, HS).
    const HS = C / NH;
    const kc = be.read(k) as Uint16Array;
    const vc = be.read(v) as Uint16Array;
    lens.forEach((n, b) => {
      const bits = toBf16(seqs[b]);
      for (let t = 0; t < n + steps; t++) {
        for (let h = 0; h < NH; h++) {
          const row = ((b * NH + h) * maxT + t) * HS;
          const src = t * 3 * C + h * HS;
          expect(Array.from(kc.subarray(row, row + HS))).toEqual(Array.from(bits.subarray(src + C, src + C + HS)));
          expect(Array.from(vc.subarray(row, row + HS))).toEqual(Array.from(bits.subarray(src + 2 * C, src + 2 * C + HS)));
        }
      }
    });
    for (const t of [k, v]) be.free(t);
  });

  it('rejects an f32 cache, and a cache that overlaps another argument', () => {
    const C = 8;
    const k = be.alloc(4 * C, 'bf16');
    const v = be.alloc(4 * C, 'bf16');
    const pos = be.alloc(1, 'i32');
    const qkv = be.alloc(3 * C);
    const out = be.alloc(C);
    expect(() => be.attentionDecodeBf16(out, be.alloc(4 * C), v, qkv, pos, 1, 1, C, 2, 4)).toThrow('attentionDecodeBf16: kcache must be a bf16 tensor, got f32');
    expect(() => be.attentionDecodeBf16(out, k, k, qkv, pos, 1, 1, C, 2, 4)).toThrow(/overlaps/);
    expect(() => be.copyRowsBf16(k, be.alloc(4 * C), 4, C)).toThrow('copyRowsBf16: inp must be a bf16 tensor, got f32');
    for (const t of [k, v, pos, qkv, out]) be.free(t);
  });
});

describeEachBackend('GPT.forwardCached', (be: Backend) => {
  for (const postLN of [false, true]) {
    it(`equals a full recompute at every decode step, batch of 3 prompts of different lengths, sliding past blockSize (${postLN ? 'post-LN' : 'pre-LN'})`, () => {
      const V = 53;
      const model = GPT.create({ vocabSize: V, blockSize: 16, nLayer: 2, nHead: 3, nEmbd: 36, postLN, seed: 5 }, be);
      const rng = mulberry32(11);
      const prompts = [Array.from(randInts(rng, 6, V)), Array.from(randInts(rng, 1, V)), Array.from(randInts(rng, 11, V))];
      const cache = model.createCache(3);
      const full = (b: number): Float32Array => {
        const ids = Int32Array.from(cache.tokens(b));
        const T = ids.length;
        return model.forward(ids, 1, T).subarray((T - 1) * V, T * V);
      };
      let worst = 0;
      let logits = model.forwardCached(prompts, cache);
      let slid = 0;
      for (let step = 0; step < 24; step++) {
        for (let b = 0; b < 3; b++) worst = Math.max(worst, diff(logits.subarray(b * V, (b + 1) * V), full(b)).maxAbs);
        // Greedy next token of each sequence (from the cached logits).
        const next = [0, 1, 2].map((b) => {
          const row = logits.subarray(b * V, (b + 1) * V);
          let best = 0;
          for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
          return [best];
        });
        const before = cache.lengths();
        logits = model.forwardCached(next, cache);
        slid += cache.lengths().filter((n, b) => n !== before[b] + 1).length;
      }
      expect(slid).toBeGreaterThan(0); // the longest prompt crossed blockSize
      expect(cache.lengths().every((n) => n <= 16)).toBe(true);
      expect(worst).toBeLessThanOrEqual(TOL);
      cache.dispose();
      model.dispose();
    });
  }

  it('a sequence decodes to the same bits alone or in a batch of up to 16 (one-token prompts)', () => {
    const V = 41;
    const model = GPT.create({ vocabSize: V, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 40, seed: 9 }, be);
    const B = 11;
    const batch = model.createCache(B);
    const alone = Array.from({ length: B }, () => model.createCache(1));
    let together = model.forwardCached(Array.from({ length: B }, (_, b) => [(5 * b + 1) % V]), batch);
    let each = alone.map((c, b) => model.forwardCached([[(5 * b + 1) % V]], c).slice());
    for (let step = 0; step < 6; step++) {
      for (let b = 0; b < B; b++) expect(Array.from(together.subarray(b * V, (b + 1) * V)), `step ${step}, sequence ${b}`).toEqual(Array.from(each[b]));
      const next = Array.from({ length: B }, (_, b) => [(step * 11 + b * 3) % V]);
      together = model.forwardCached(next, batch);
      each = alone.map((c, b) => model.forwardCached([next[b]], c).slice());
    }
    for (const c of [batch, ...alone]) c.dispose();
    model.dispose();
  });

  it("logits: 'all' gives every new position (equal to forward over the prompt)", () => {
    const V = 31;
    const model = GPT.create({ vocabSize: V, blockSize: 12, nLayer: 1, nHead: 1, nEmbd: 20, seed: 2 }, be);
    const ids = [3, 1, 4, 1, 5, 9, 2];
    const cache = model.createCache(2);
    const all = model.forwardCached([ids, ids.slice(0, 3)], cache, { logits: 'all' });
    const want = model.forward(Int32Array.from(ids), 1, ids.length);
    expect(diff(all.subarray(0, ids.length * V), want).maxAbs).toBeLessThanOrEqual(TOL);
    expect(diff(all.subarray(ids.length * V, (ids.length + 3) * V), want.subarray(0, 3 * V)).maxAbs).toBeLessThanOrEqual(TOL);
    expect(Array.from(all.subarray((ids.length + 3) * V)).every((x) => x === 0)).toBe(true);
    // A fork of sequence 1 continues like the original.
    const fork = model.createCache(1);
    fork.copySequence(cache, 0, 0);
    const a = model.forwardCached([[6]], fork);
    const b = model.forwardCached([[6], []], cache);
    expect(diff(a, b.subarray(0, V)).maxAbs).toBe(0);
    expect(Array.from(b.subarray(V)).every((x) => x === 0)).toBe(true);
    fork.dispose();
    cache.dispose();
    model.dispose();
  });
});

describeEachBackend('GPT.forwardCached with a bf16 KV cache', (be: Backend) => {
  const config = { vocabSize: 53, blockSize: 16, nLayer: 2, nHead: 3, nEmbd: 36, seed: 5 };

  it('equals the full forward pass over bf16-rounded k, v at every decode step (batch of 3, sliding), and is close to the f32 cache', () => {
    const V = config.vocabSize;
    const model = GPT.create(config, be);
    const spec = GPT.create(config, roundingAttention(be)); // the same weights (same seed)
    const rng = mulberry32(11);
    const prompts = [Array.from(randInts(rng, 6, V)), Array.from(randInts(rng, 1, V)), Array.from(randInts(rng, 11, V))];
    const cache = model.createCache(3, undefined, { kvDtype: 'bf16' });
    const f32 = model.createCache(3);
    expect(cache.dtype).toBe('bf16');
    expect(f32.dtype).toBe('f32');
    const full = (b: number): Float32Array => {
      const ids = Int32Array.from(cache.tokens(b));
      const T = ids.length;
      return spec.forward(ids, 1, T).subarray((T - 1) * V, T * V);
    };
    let worst = 0;
    let worstRel = 0;
    let logits = model.forwardCached(prompts, cache);
    let ref = model.forwardCached(prompts, f32);
    for (let step = 0; step < 24; step++) {
      for (let b = 0; b < 3; b++) {
        const row = logits.subarray(b * V, (b + 1) * V);
        worst = Math.max(worst, diff(row, full(b)).maxAbs);
        worstRel = Math.max(worstRel, diff(row, ref.subarray(b * V, (b + 1) * V)).rel);
      }
      // Both caches are fed the bf16 cache's greedy tokens, so they hold the same sequences.
      const next = [0, 1, 2].map((b) => {
        const row = logits.subarray(b * V, (b + 1) * V);
        let best = 0;
        for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
        return [best];
      });
      logits = model.forwardCached(next, cache);
      ref = model.forwardCached(next, f32);
    }
    expect(worst).toBeLessThanOrEqual(TOL);
    // Normwise relative to the f32 cache's logits; measured 2.6e-4 on every backend.
    expect(worstRel).toBeLessThanOrEqual(3e-3);
    for (const x of [cache, f32]) x.dispose();
    spec.dispose();
    model.dispose();
  });

  it('a forked bf16 sequence continues like the original; copySequence refuses another kvDtype; bad kvDtype errors', () => {
    const V = config.vocabSize;
    const model = GPT.create(config, be);
    const ids = [3, 1, 4, 1, 5, 9, 2];
    const cache = model.createCache(2, undefined, { kvDtype: 'bf16' });
    model.forwardCached([ids, ids.slice(0, 3)], cache);
    const fork = model.createCache(1, undefined, { kvDtype: 'bf16' });
    fork.copySequence(cache, 0, 0);
    const a = model.forwardCached([[6]], fork);
    const b = model.forwardCached([[6], []], cache);
    expect(diff(a, b.subarray(0, V)).maxAbs).toBe(0);
    const other = model.createCache(1);
    expect(() => other.copySequence(cache, 0, 0)).toThrow('KVCache.copySequence: the caches must have the same kvDtype (bf16 into f32)');
    expect(() => model.createCache(1, 4, { kvDtype: 'f16' as never })).toThrow("createCache: kvDtype must be 'f32' or 'bf16', got 'f16'");
    expect(() => model.createCache(1, 4, { kvDtype: 16 as never })).toThrow("createCache: kvDtype must be 'f32' or 'bf16', got 16");
    for (const x of [cache, fork, other]) x.dispose();
    model.dispose();
  });
});

describe('slideWindow (the sliding rule)', () => {
  it('keeps the last floor(maxT/2) tokens, fewer when the new ones need room, the last maxT of a long chunk', () => {
    const seq = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
    expect(slideWindow(seq(0, 10), [10], 16)).toBeNull();
    expect(slideWindow(seq(0, 16), [16], 16)).toEqual(seq(8, 17));
    expect(slideWindow(seq(0, 15), [15, 16, 17, 18, 19, 20, 21, 22, 23, 24], 16)).toEqual(seq(9, 25));
    expect(slideWindow(seq(0, 3), seq(3, 40), 16)).toEqual(seq(24, 40));
    expect(slideWindow(seq(0, 5), [5], 5)).toEqual(seq(3, 6));
  });
});
