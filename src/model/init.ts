// Seeded weight initialisation and dropout seeds, both built on the counter-based RNG of
// crates/kernels/src/rng.rs (mix32). A counter-based generator makes every weight a pure
// function of (seed, parameter, element), so initialisation does not depend on the order
// parameters are visited in, and GPT.create with the same seed gives the same model on
// every backend and platform.

import { mix32, randomU32 } from '../backend/rng.js';
import type { ParamSpec } from './params.js';

/** Uniform in (0, 1), never 0 (so log() below is finite): (u32 + 0.5) / 2^32. */
function uniformOpen(seed: number, stream: number, index: number): number {
  return (randomU32(seed, stream, index) + 0.5) / 4294967296;
}

/**
 * Standard normal number `index` of (seed, stream): Box–Muller on two uniforms drawn at
 * counters 2·index and 2·index + 1 (the cosine branch only; simple, and each value is
 * independent of its neighbours).
 */
export function normal(seed: number, stream: number, index: number): number {
  const u1 = uniformOpen(seed, stream, (2 * index) >>> 0);
  const u2 = uniformOpen(seed, stream, (2 * index + 1) >>> 0);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/**
 * Uniform number `index` of (seed, stream) in (-bound, bound): PyTorch's kaiming_uniform_
 * family (nn.Linear's default init, LoRA's A) on the counter RNG.
 */
export function uniformSymmetric(seed: number, stream: number, index: number, bound: number): number {
  return bound * (2 * uniformOpen(seed, stream, index) - 1);
}

// Streams 0..INIT_STREAM_BASE-1 are left to dropout sites; parameter k draws from stream
// INIT_STREAM_BASE + k.
const INIT_STREAM_BASE = 0x10000;

/**
 * The initial parameter buffer (nanoGPT / GPT-2): weights N(0, 0.02), the residual output
 * projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2·nLayer)) so the residual stream's
 * variance does not grow with depth, biases 0, LayerNorm weights 1.
 */
export function initParameters(specs: ParamSpec[], total: number, nLayer: number, seed: number): Float32Array {
  const out = new Float32Array(total);
  specs.forEach((spec, k) => {
    const view = out.subarray(spec.offset, spec.offset + spec.length);
    switch (spec.init) {
      case 'zeros':
        break;
      case 'ones':
        view.fill(1);
        break;
      case 'normal':
      case 'normal-proj': {
        const std = spec.init === 'normal' ? 0.02 : 0.02 / Math.sqrt(2 * nLayer);
        const stream = INIT_STREAM_BASE + k;
        for (let i = 0; i < view.length; i++) view[i] = std * normal(seed, stream, i);
        break;
      }
    }
  });
  return out;
}

/** The dropout seed of training step `step`: a u32 that changes every step, fixed by the model seed. */
export function dropoutSeed(modelSeed: number, step: number): number {
  return mix32((mix32(step >>> 0) ^ modelSeed ^ 0x5bd1e995) >>> 0);
}
