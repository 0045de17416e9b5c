// THE random numbers of ferrogpt: one counter-based generator, bit for bit that of
// crates/kernels/src/rng.rs, which every random draw in the library is built on.
//
// Why here (src/backend/): the Rust kernels draw the dropout masks with rng.rs, and
// src/backend/reference-kernels.ts is the executable specification those kernels are
// tested against, so the TypeScript twin of rng.rs sits beside it. Everything else that
// needs random numbers (weight init, the task head, new embedding rows, the window sampler,
// the fine-tuning epoch orders, token sampling) imports it from here; nothing else defines
// mix32 or random_u32.
//
// Counter-based: draw `index` of (seed, stream) is a pure function of those three numbers,
// with no generator state. A weight, a dropout mask element or a training window is the
// same on every backend and platform whatever order it is computed in, and a checkpoint
// stores a sampler as { seed, drawn } (two numbers) and resumes it exactly.
//
//   mix32(x):  x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
//   random_u32(seed, stream, index) = mix32(mix32(mix32(index ^ seed) ^ stream) + 0x9e3779b9)
//
// Streams keep the users of one seed apart (each user defines its constant next to its code):
//   0 .. 0xffff              dropout sites (model/gpt.ts: 0 embeddings, 1 + 3l .. 3 + 3l layer l;
//                            the task head's CLF_STREAM 0xc1f, tasks/finetuned.ts)
//   0x10000 + k              initialisation of parameter k (model/init.ts INIT_STREAM_BASE)
//   0x4ead0000               the task head's init (model/head.ts)
//   0x5a4d0000 + ...         the training-window sampler (SAMPLER_STREAM below)
//   0x5a4f0000 + sequence    token sampling (prompt/sampling.ts SAMPLE_STREAM)
//   0x7e5e0000               new embedding rows (model/resize.ts)
// Math.imul is the wrapping 32-bit multiply; `>>> 0` turns a result back into a u32.

/** mix32 of crates/kernels/src/rng.rs. */
export function mix32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** random_u32(seed, stream, index) of crates/kernels/src/rng.rs: a u32. */
export function randomU32(seed: number, stream: number, index: number): number {
  const a = mix32((index ^ seed) >>> 0);
  const b = mix32((a ^ stream) >>> 0);
  return mix32((b + 0x9e3779b9) >>> 0);
}

// ---- draws of the training loops (window starts, epoch orders) ----

// Each stream holds 2^31 draws (two u32 per draw); draw k uses stream
// SAMPLER_STREAM + floor(k / 2^31), so counts up to 2^53 never repeat.
const SAMPLER_STREAM = 0x5a4d0000;
const DRAWS_PER_STREAM = 2 ** 31;

/**
 * Uniform number in [0, 1) with 53 random bits: draw `k` of `seed`. (Two u32 of the counter
 * RNG: the top 32 bits from one, 21 more from the other.)
 */
function uniform53(seed: number, k: number): number {
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
