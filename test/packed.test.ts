// Packed weights (packWeight, matmulForwardPacked; GPT.packWeights): a weight packed once
// gives matmulForward's outputs bit for bit on every backend, GEMV rows and GEMM rows alike;
// a model that keeps packed copies computes the same bits as one that does not, also after
// its weights change (an optimizer step repacks them); and the options refuse what they
// cannot do with a clear error.

import { describe, expect, it } from 'vitest';
import type { Backend, Tensor } from '../src/backend/backend.js';
import { packedRows } from '../src/backend/kernels.js';
import { GPT } from '../src/model/gpt.js';
import { AdamW } from '../src/train/optimizer.js';
import { describeEachBackend } from './helpers/backends.js';
import { mulberry32, randn } from './helpers/random.js';

const CONFIG = { vocabSize: 300, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 64, seed: 5 };

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('packedRows', () => {
  it('rounds OC up to a multiple of 192', () => {
    expect([1, 191, 192, 193, 50257].map(packedRows)).toEqual([192, 192, 192, 384, 50304]);
  });
});

describeEachBackend('packed weights: kernels', (be: Backend) => {
  const upload = (data: Float32Array): Tensor => {
    const t = be.alloc(data.length);
    be.write(t, data);
    return t;
  };

  // (N, C, OC): decoding rows (the GEMV) and prompt rows (the GEMM), OC off every tile,
  // C past one slice of the GEMM's depth (768 on AVX-512), a wide product that splits its
  // columns over the threads.
  const shapes: Array<[number, number, number]> = [[1, 33, 17], [16, 100, 70], [17, 100, 70], [40, 800, 250], [64, 64, 1000], [3, 5, 2]];
  for (const [i, [N, C, OC]] of shapes.entries()) {
    it(`matmulForwardPacked equals matmulForward bit for bit, N=${N} C=${C} OC=${OC}`, () => {
      const rng = mulberry32(100 + i);
      const inp = upload(randn(rng, N * C));
      const weight = upload(randn(rng, OC * C));
      const bias = i % 2 === 0 ? upload(randn(rng, OC)) : null;
      const start = randn(rng, N * OC);
      const P = packedRows(OC) + (i % 3 === 2 ? 192 : 0); // any multiple of 192 >= OC will do
      const packed = be.alloc(P * C);
      be.packWeight(packed, weight, C, OC, P);
      for (const accumulate of [false, true]) {
        const want = upload(start);
        be.matmulForward(want, inp, weight, bias, N, C, OC, accumulate);
        const got = upload(start);
        be.matmulForwardPacked(got, inp, weight, packed, bias, N, C, OC, P, accumulate);
        expect(bitsEqual(be.read(got) as Float32Array, be.read(want) as Float32Array), `accumulate=${accumulate}`).toBe(true);
        be.free(want);
        be.free(got);
      }
      for (const t of [inp, weight, packed, ...(bias ? [bias] : [])]) be.free(t);
    });
  }

  it('the packed copy is what the GEMM rows read (a stale one shows)', () => {
    // Not a feature: this shows the test above exercises the packed copy, not the weight.
    const [N, C, OC] = [32, 40, 50];
    const rng = mulberry32(7);
    const inp = upload(randn(rng, N * C));
    const weight = upload(randn(rng, OC * C));
    const P = packedRows(OC);
    const packed = be.alloc(P * C);
    be.packWeight(packed, weight, C, OC, P);
    be.write(weight, randn(rng, OC * C)); // the copy is now stale
    const want = be.alloc(N * OC);
    be.matmulForward(want, inp, weight, null, N, C, OC);
    const got = be.alloc(N * OC);
    be.matmulForwardPacked(got, inp, weight, packed, null, N, C, OC, P);
    expect(bitsEqual(be.read(got) as Float32Array, be.read(want) as Float32Array)).toBe(false);
    for (const t of [inp, weight, packed, want, got]) be.free(t);
  });

  it('refuses a P that is not a multiple of 192 or is below OC, naming it', () => {
    const [N, C, OC] = [20, 8, 200];
    const inp = be.alloc(N * C);
    const weight = be.alloc(OC * C);
    const out = be.alloc(N * OC);
    for (const P of [200, 192]) {
      const packed = be.alloc(P * C);
      expect(() => be.packWeight(packed, weight, C, OC, P)).toThrow(/P/);
      expect(() => be.matmulForwardPacked(out, inp, weight, packed, null, N, C, OC, P)).toThrow(/P/);
      be.free(packed);
    }
    for (const t of [inp, weight, out]) be.free(t);
  });
});

describeEachBackend('packed weights: the model', (be: Backend) => {
  const rng = mulberry32(3);
  const [B, T] = [2, 24]; // 48 rows: the GEMM path
  const ids = Int32Array.from({ length: B * T }, () => Math.floor(rng() * CONFIG.vocabSize));
  const targets = ids.map((x) => (x + 1) % CONFIG.vocabSize);

  it('gives the same logits, loss and cached decoding as without, also after an optimizer step', () => {
    const model = GPT.create(CONFIG, be);
    const opt = new AdamW(model, { lr: 1e-2 });
    for (let step = 0; step < 2; step++) {
      model.packWeights = false;
      const plain = { logits: model.forward(ids, B, T), loss: model.evalLoss(ids, targets, B, T) };
      const cache = model.createCache(1, T);
      const plainCached = model.forwardCached([ids.subarray(0, T)], cache, { logits: 'all' });
      model.packWeights = true;
      expect(bitsEqual(model.forward(ids, B, T), plain.logits), `forward, step ${step}`).toBe(true);
      expect(model.evalLoss(ids, targets, B, T)).toBe(plain.loss);
      cache.reset();
      expect(bitsEqual(model.forwardCached([ids.subarray(0, T)], cache, { logits: 'all' }), plainCached), `prefill, step ${step}`).toBe(true);
      cache.dispose();
      // Training with the copy kept: the step changes the weights, the next pass repacks.
      model.zeroGrad();
      model.forwardBackward(ids, targets, B, T);
      opt.step();
    }
    expect(model.packWeights).toBe(true);
    model.dispose();
  });

  it('follows toDtype and refuses compact weights with a clear error', () => {
    const model = GPT.create(CONFIG, be);
    model.packWeights = true;
    model.toDtype('int8');
    expect(model.packWeights).toBe(false);
    expect(() => (model.packWeights = true)).toThrow(/packWeights: the model holds int8 weights.*toDtype\('f32'\)/);
    model.toDtype('f32');
    model.packWeights = true;
    const logits = model.forward(ids, B, T);
    model.packWeights = false;
    expect(bitsEqual(model.forward(ids, B, T), logits)).toBe(true);
    expect(() => (model.packWeights = 'yes' as unknown as boolean)).toThrow(/packWeights must be true or false/);
    model.dispose();
  });
});
