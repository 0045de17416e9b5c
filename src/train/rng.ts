// The training loop's random numbers: which windows of the token file a batch reads.
//
// Like the weight init and the dropout masks (src/model/init.ts, crates/kernels/src/rng.rs)
// this is COUNTER-based: draw k is a pure function of (seed, k). So the sampler's whole
// state is two numbers, { seed, drawn }, which a checkpoint stores as JSON and a resumed
// run restores exactly, on any backend and platform, with no hidden generator state.

import { randomU32 } from '../model/init.js';

// Streams keep these draws apart from the init (0x10000 + k) and dropout (0..) streams of
// the same seed. Each stream holds 2^31 draws (two u32 per draw); draw k uses stream
// SAMPLER_STREAM + floor(k / 2^31), so counts up to 2^53 never repeat.
const SAMPLER_STREAM = 0x5a4d0000;
const DRAWS_PER_STREAM = 2 ** 31;

/**
 * Uniform number in [0, 1) with 53 random bits: draw `k` of `seed`. (Two u32 of the counter
 * RNG: the top 32 bits from one, 21 more from the other.)
 */
export function uniform53(seed: number, k: number): number {
  if (!Number.isSafeInteger(k) || k < 0) throw new Error(`uniform53: k must be a safe integer >= 0, got ${k}`);
  const stream = (SAMPLER_STREAM + Math.floor(k / DRAWS_PER_STREAM)) >>> 0;
  const index = 2 * (k % DRAWS_PER_STREAM); // < 2^32
  const hi = randomU32(seed >>> 0, stream, index >>> 0);
  const lo = randomU32(seed >>> 0, stream, (index + 1) >>> 0) >>> 11;
  return (hi * 2 ** 21 + lo) / 2 ** 53;
}

/**
 * Integer in [0, n): draw `k` of `seed`. floor(u · n) with 53-bit u; the bias is below
 * n / 2^53, i.e. nil for any token file that fits on a disk.
 */
export function uniformInt(seed: number, k: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`uniformInt: n must be a positive safe integer, got ${n}`);
  return Math.floor(uniform53(seed, k) * n);
}
