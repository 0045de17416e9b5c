// Seeded test data. mulberry32 is a tiny, well-known 32-bit generator, deliberately a
// different algorithm from the kernels' counter RNG so that test data and dropout masks
// cannot accidentally line up.

export type Rng = () => number; // uniform in [0, 1)

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n normal samples times `std` (Box–Muller), rounded to f32. */
export function randn(rng: Rng, n: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rng();
    const v = rng();
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** n uniform samples in [lo, hi), rounded to f32. */
export function randu(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng();
  return out;
}

/** n integers in [0, V). */
export function randInts(rng: Rng, n: number, V: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng() * V);
  return out;
}

/** Float64 copy (exact: every f32 is a double). */
export function f64(x: Float32Array): Float64Array {
  return Float64Array.from(x);
}
