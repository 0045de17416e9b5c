// The matmul shapes of bench:kernels and the check every matmul result gets, shared by the
// kernels suite and the browser suite (whose page bundles it: no node: imports).

import { mulberry32 } from './rng.js';

export const MATMUL_SHAPES = [
  // [M, K, N] of GPT-2 small's linear layers at B·T = 1024 (M = rows, K = in, N = out):
  [1024, 768, 768], // attn.c_proj
  [1024, 768, 3072], // mlp.c_fc
  [1024, 3072, 768], // mlp.c_proj
  [1024, 768, 2304], // attn.c_attn (q, k, v)
  [256, 768, 50257], // the tied LM head (wteᵀ), 256 rows
];
export const QUICK_SHAPES = [
  [64, 96, 80],
  [128, 256, 200],
];

/** Largest |got - exact| over 64 sampled entries of out (M,N) = x (M,K) · W (N,K)ᵀ, exact in float64. */
export function sampleError(got, x, W, M, K, N) {
  const r = mulberry32(12345);
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const m = Math.floor(r() * M);
    const n = Math.floor(r() * N);
    let acc = 0;
    for (let k = 0; k < K; k++) acc += x[m * K + k] * W[n * K + k];
    worst = Math.max(worst, Math.abs(got[m * N + n] - acc));
  }
  return worst;
}
