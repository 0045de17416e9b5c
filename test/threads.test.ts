// Threads change nothing but the speed. On the backends that run kernels on a thread pool
// (native; wasm's threaded builds, which run the same partitioning on Web Workers), every
// kernel that takes the pool gives the same bits at 1, 2 and 3 threads (3 exercises the
// uneven partitions) on shapes large enough to be split, dropout masks included; and the
// results at every count still match the float64 reference (kernels.test.ts's cases).
//
// A wasm build without threads (simd128, scalar) reports 1 thread whatever it is asked,
// which is asserted too, so the threaded tests cannot pass by running on one thread.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, DropoutSpec, Tensor } from '../src/backend/backend.js';
import { describeEachBackend } from './helpers/backends.js';
import { buildCases, outputsOf, runOnBackend, runReference64 } from './helpers/cases.js';
import { expectClose, expectIdentical } from './helpers/compare.js';
import { mulberry32, randn } from './helpers/random.js';

type Threaded = Backend & { setThreads(n: number): void; ready?(): Promise<number> };

async function useThreads(backend: Backend, n: number): Promise<void> {
  const b = backend as Threaded;
  b.setThreads(n);
  await b.ready?.();
}

/** Whether `backend` runs kernels on a pool (native, or a threaded wasm build). */
function pooled(backend: Backend): boolean {
  return backend.name === 'native' || (backend.name === 'wasm' && (backend as { pool?: unknown }).pool != null);
}

const rng = mulberry32(7);
const [N, C, OC] = [300, 192, 320]; // N and OC not multiples of the tiles, split across threads
const [B, T, NH, AC] = [2, 96, 4, 128];
const BIG = 200_003; // elementwise kernels split above 2^15 elements, in 2^16 ranges
const DROPOUT: DropoutSpec = { p: 0.2, seed: 1234, stream: 5 };

const data = {
  inp: randn(rng, N * C),
  weight: randn(rng, OC * C, 0.05),
  bias: randn(rng, OC),
  dout: randn(rng, N * OC),
  qkv: randn(rng, B * T * 3 * AC),
  attnDout: randn(rng, B * T * AC),
  x: randn(rng, BIG),
  y: randn(rng, BIG),
  logits: randn(rng, 64 * 1000),
  targets: Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 1000),
};

/** Runs one kernel on fresh tensors written with `inputs`; returns every output read back. */
function run(backend: Backend, inputs: Record<string, Float32Array | Int32Array>, outs: Record<string, number>, call: (t: Record<string, Tensor>) => void): Record<string, Float32Array> {
  const t: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) {
    t[k] = backend.alloc(v.length, v instanceof Int32Array ? 'i32' : 'f32');
    backend.write(t[k], v);
  }
  for (const [k, n] of Object.entries(outs)) t[k] = backend.alloc(n);
  try {
    call(t);
    return Object.fromEntries(Object.keys(outs).map((k) => [k, backend.read(t[k]) as Float32Array]));
  } finally {
    for (const x of Object.values(t)) backend.free(x);
  }
}

/** The pooled kernels, each as a function of the backend giving its outputs. */
const KERNELS: Record<string, (b: Backend) => Record<string, ArrayLike<number>>> = {
  matmulForward: (b) => run(b, { inp: data.inp, weight: data.weight, bias: data.bias }, { out: N * OC }, (t) => b.matmulForward(t.out, t.inp, t.weight, t.bias, N, C, OC)),
  matmulBackward: (b) =>
    run(b, { inp: data.inp, weight: data.weight, dout: data.dout }, { dinp: N * C, dweight: OC * C, dbias: OC }, (t) =>
      b.matmulBackward(t.dinp, t.dweight, t.dbias, t.dout, t.inp, t.weight, N, C, OC)),
  attentionForward: (b) => run(b, { qkv: data.qkv }, { out: B * T * AC, lse: B * NH * T }, (t) => b.attentionForward(t.out, t.lse, t.qkv, B, T, AC, NH, DROPOUT)),
  attentionBackward: (b) => {
    const f = KERNELS.attentionForward(b);
    return run(b, { qkv: data.qkv, dout: data.attnDout, out: f.out as Float32Array, lse: f.lse as Float32Array }, { dqkv: B * T * 3 * AC }, (t) =>
      b.attentionBackward(t.dqkv, t.dout, t.qkv, t.out, t.lse, B, T, AC, NH, DROPOUT));
  },
  layernormForward: (b) =>
    run(b, { inp: data.inp, w: data.bias.subarray(0, C), bb: data.weight.subarray(0, C) }, { out: N * C, mean: N, rstd: N }, (t) =>
      b.layernormForward(t.out, t.mean, t.rstd, t.inp, t.w, t.bb, N, C)),
  geluForward: (b) => run(b, { x: data.x }, { out: BIG }, (t) => b.geluForward(t.out, t.x, BIG)),
  geluBackward: (b) => run(b, { x: data.x, y: data.y }, { dinp: BIG }, (t) => b.geluBackward(t.dinp, t.x, t.y, BIG)),
  residualForward: (b) => run(b, { x: data.x, y: data.y }, { out: BIG }, (t) => b.residualForward(t.out, t.x, t.y, BIG)),
  residualBackward: (b) => run(b, { y: data.y }, { d1: BIG, d2: BIG }, (t) => b.residualBackward(t.d1, t.d2, t.y, BIG)),
  crossentropyForward: (b) => run(b, { logits: data.logits, targets: data.targets }, { losses: 64 }, (t) => b.crossentropyForward(t.losses, t.logits, t.targets, 64, 1000, -1)),
  crossentropyBackward: (b) =>
    run(b, { logits: data.logits, targets: data.targets, dl: new Float32Array(64).fill(1 / 64) }, { dlogits: 64 * 1000 }, (t) =>
      b.crossentropyBackward(t.dlogits, t.dl, t.logits, t.targets, 64, 1000, -1)),
  adamwUpdate: (b) =>
    run(b, { g: data.y }, { p: BIG, m: BIG, v: BIG }, (t) => {
      b.write(t.p, data.x);
      b.adamwUpdate(t.p, t.g, t.m, t.v, BIG, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3);
    }),
  scale: (b) => run(b, {}, { x: BIG }, (t) => (b.write(t.x, data.x), b.scale(t.x, BIG, 0.37))),
  sumSquares: (b) => {
    const x = b.alloc(BIG);
    try {
      b.write(x, data.x);
      return { sum: Float64Array.of(b.sumSquares(x, BIG) as number) };
    } finally {
      b.free(x);
    }
  },
};

describeEachBackend('threads', (backend) => {
  if (!pooled(backend)) {
    it(`runs on one thread whatever it is asked (${backend.info().simd})`, async () => {
      await useThreads(backend, 3);
      expect(backend.info().threads).toBe(1);
    });
    return;
  }

  let before = 1;
  const one: Record<string, Record<string, ArrayLike<number>>> = {};
  beforeAll(async () => {
    before = backend.info().threads;
    await useThreads(backend, 1);
    for (const [name, f] of Object.entries(KERNELS)) one[name] = f(backend);
  });
  afterAll(() => useThreads(backend, before));

  for (const threads of [2, 3]) {
    describe(`${threads} threads give the bits of 1`, () => {
      beforeAll(() => useThreads(backend, threads));
      for (const [name, f] of Object.entries(KERNELS)) {
        it(name + (name.startsWith('attention') ? ' (dropout p 0.2)' : ''), () => {
          expect(backend.info().threads).toBe(threads);
          const got = f(backend);
          for (const k of Object.keys(one[name])) expectIdentical(got[k], one[name][k], `${backend.name}/${backend.info().simd} x${threads} ${name}: ${k}`);
        });
      }
    });
  }

  // kernels.test.ts's cases (against float64) at 1 and 3 threads; the default count is
  // covered there.
  const cases = buildCases().filter((x) => /^(matmul|attention|crossentropy|layernorm)/.test(x.kernel));
  for (const threads of [1, 3]) {
    describe(`kernels vs float64 reference at ${threads} thread(s)`, () => {
      beforeAll(() => useThreads(backend, threads));
      for (const c of cases) {
        it(c.label, () => {
          expect(backend.info().threads).toBe(threads);
          const want = runReference64(c);
          const got = runOnBackend(backend, c);
          for (const name of outputsOf(c)) expectClose(got.outputs[name], want.outputs[name], c.rtolFor?.[name] ?? c.rtol, `${backend.name} x${threads} ${c.label}: ${name}`);
        });
      }
    });
  }
}, ['native', 'wasm', 'wasm-scalar']);
