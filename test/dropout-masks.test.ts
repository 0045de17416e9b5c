// Dropout masks are the same on every backend for the same (seed, stream): they come from
// the counter RNG (crates/kernels/src/rng.rs) keyed by element index, never from a stateful
// generator. Compared bit for bit against the reference backend.

import { beforeAll, expect, it } from 'vitest';
import type { Backend, DropoutSpec } from '../src/backend/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { attentionDropoutIndex, dropoutScale, keep } from '../src/backend/reference-kernels.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectClose, expectIdentical } from './helpers/compare.js';
import { mulberry32, randn } from './helpers/random.js';

const reference = new ReferenceBackend();

const specs: DropoutSpec[] = [
  { p: 0.1, seed: 0, stream: 0 },
  { p: 0.5, seed: 42, stream: 7 },
  { p: 0.9, seed: 0xffffffff, stream: 0xfffffffe },
  { p: 0.3, seed: 123456789, stream: 1 },
];

function run(backend: Backend, f: (b: Backend) => ReturnType<Backend['alloc']>): Float32Array {
  return backend.read(f(backend)) as Float32Array;
}

function dropoutOut(b: Backend, inp: Float32Array, d: DropoutSpec) {
  const x = b.alloc(inp.length);
  const y = b.alloc(inp.length);
  b.write(x, inp);
  b.dropoutForward(y, x, inp.length, d);
  return y;
}

function dropoutGrad(b: Backend, dout: Float32Array, d: DropoutSpec) {
  const g = b.alloc(dout.length);
  const y = b.alloc(dout.length);
  b.write(y, dout);
  b.dropoutBackward(g, y, dout.length, d); // into zeros: exactly dout * scale or 0
  return g;
}

// Attention with q = k = 0 (every weight 1/(t+1)) and v_s = the one-hot vector e_s (HS >= T),
// so out[b,t,h*HS + s] = D[t][s] = keep(b,h,t,s) ? scale/(t+1) : 0: the output IS the mask.
const [B, T, NH] = [2, 70, 2]; // T = 70 spans more than one 64-row tile
const HS = 72;
const C = NH * HS;
function maskingQkv(): Float32Array {
  const qkv = new Float32Array(B * T * 3 * C); // (B,T,3C), q and k all zero
  for (let b = 0; b < B; b++)
    for (let s = 0; s < T; s++)
      for (let h = 0; h < NH; h++) qkv[(b * T + s) * 3 * C + 2 * C + h * HS + s] = 1;
  return qkv;
}
function attentionOut(b: Backend, qkv: Float32Array, d: DropoutSpec) {
  const q = b.alloc(qkv.length);
  b.write(q, qkv);
  const out = b.alloc(B * T * C);
  b.attentionForward(out, b.alloc(B * NH * T), q, B, T, C, NH, d);
  return out;
}
// Backward with dout_t = e_t: the v part of dqkv is dv_s[t] = D[t][s], the mask again.
function attentionDv(b: Backend, qkv: Float32Array, d: DropoutSpec): Float32Array {
  const q = b.alloc(qkv.length);
  b.write(q, qkv);
  const out = b.alloc(B * T * C);
  const lse = b.alloc(B * NH * T);
  b.attentionForward(out, lse, q, B, T, C, NH, d);
  const dout = new Float32Array(B * T * C);
  for (let bb = 0; bb < B; bb++) for (let t = 0; t < T; t++) for (let h = 0; h < NH; h++) dout[(bb * T + t) * C + h * HS + t] = 1;
  const g = b.alloc(B * T * C);
  b.write(g, dout);
  const dqkv = b.alloc(qkv.length);
  b.attentionBackward(dqkv, g, q, out, lse, B, T, C, NH, d);
  const all = b.read(dqkv) as Float32Array;
  const dv = new Float32Array(B * T * C);
  for (let r = 0; r < B * T; r++) dv.set(all.subarray(r * 3 * C + 2 * C, r * 3 * C + 3 * C), r * C);
  return dv;
}
const nonzero = (x: Float32Array) => Uint8Array.from(x, (v) => (v !== 0 ? 1 : 0));

/** The mask predicted directly from keep(), laid out like `out` above. */
function predictedAttentionMask(d: DropoutSpec, transpose: boolean): Uint8Array {
  const m = new Uint8Array(B * T * C);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++)
        for (let s = 0; s <= t; s++) {
          const [row, col] = transpose ? [s, t] : [t, s];
          m[(b * T + row) * C + h * HS + col] = keep(d.p, d.seed, d.stream, attentionDropoutIndex(b, h, t, s, NH, T)) ? 1 : 0;
        }
  return m;
}

const inp = randn(mulberry32(9), 10007); // odd length: SIMD tails
beforeAll(() => {
  // Sanity: the reference backend follows keep() exactly.
  const d = specs[1];
  const out = run(reference, (b) => dropoutOut(b, inp, d));
  for (let i = 0; i < inp.length; i++) {
    expect(out[i]).toBe(keep(d.p, d.seed, d.stream, i) ? Math.fround(inp[i] * dropoutScale(d.p)) : 0);
  }
});

describeEachBackend('dropout masks bit for bit', (backend) => {
  for (const d of specs) {
    const tag = `p=${d.p} seed=${d.seed} stream=${d.stream}`;
    it(`dropoutForward ${tag}`, () => {
      expectIdentical(run(backend, (b) => dropoutOut(b, inp, d)), run(reference, (b) => dropoutOut(b, inp, d)), `${backend.name}/${backend.info().simd} dropoutForward ${tag}`);
    });
    it(`dropoutBackward ${tag}`, () => {
      expectIdentical(run(backend, (b) => dropoutGrad(b, inp, d)), run(reference, (b) => dropoutGrad(b, inp, d)), `${backend.name}/${backend.info().simd} dropoutBackward ${tag}`);
    });
  }
  for (const d of [specs[0], specs[1]]) {
    const tag = `B=${B} T=${T} NH=${NH} p=${d.p} seed=${d.seed}`;
    it(`attention dropout mask (forward) ${tag}`, () => {
      const qkv = maskingQkv();
      const got = run(backend, (b) => attentionOut(b, qkv, d));
      expectIdentical(nonzero(got), predictedAttentionMask(d, false), `${backend.name}/${backend.info().simd} attention forward mask ${tag}`);
      expectClose(got, run(reference, (b) => attentionOut(b, qkv, d)), 1e-6, `${backend.name}/${backend.info().simd} attention forward masked values ${tag}`);
    });
    it(`attention dropout mask (backward) ${tag}`, () => {
      const qkv = maskingQkv();
      const got = attentionDv(backend, qkv, d);
      expectIdentical(nonzero(got), predictedAttentionMask(d, true), `${backend.name}/${backend.info().simd} attention backward mask ${tag}`);
      expectClose(got, attentionDv(reference, qkv, d), 1e-6, `${backend.name}/${backend.info().simd} attention backward masked values ${tag}`);
    });
  }
});
