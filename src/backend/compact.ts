// The compact weight formats, defined once for TypeScript: what the model's conversions
// (model.toDtype, GPT.load with a dtype) write, and what the reference kernels compute.
// crates/kernels/src/compact.rs is the same definition in Rust, bit for bit:
//
// - bf16: the upper 16 bits of an f32, rounded to nearest even; NaN stays NaN. Widening
//   back is exact.
// - int8 (llama.cpp's Q8_0): rows are cut into blocks of Q8_BLOCK (32) values; a block
//   holds 32 int8 q and one f32 scale d = amax / 127, and stands for q·d, where
//   q = roundTiesToEven(x · (127 / amax)), each operation rounded to f32. A block of zeros
//   has d = 0 and q = 0. A row's length must be a multiple of 32.
//   In memory (the tensors the int8 kernels read; not on disk, not StoredParam) an int8
//   matrix (OC, C) interleaves its rows in groups of Q8_GROUP (16): a group's rows sit side
//   by side 4 bytes at a time, and its scales block by block (q8At, q8ScaleAt;
//   interleaveQ8 makes it). A 512-bit load then holds 4 values of k for 16 outputs, which
//   is what VNNI's vpdpbusd multiplies (crates/kernels/src/compact/x86.rs).

/** Values per int8 block (one f32 scale each). */
export const Q8_BLOCK = 32;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** x (rounded to f32 first) rounded to the nearest bf16, ties to even, as its 16 bits. */
export function bf16Round(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if (x !== x) return ((u >>> 16) | 0x40) & 0xffff; // NaN stays a quiet NaN
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** The number a bf16 stands for (exact). */
export function bf16Widen(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** Every element of `data` rounded to bf16. */
export function toBf16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < data.length; i++) {
    const u = bits[i];
    const x = data[i];
    out[i] = x !== x ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bf16 bits widened to f32 (exact). */
export function fromBf16(data: Uint16Array): Float32Array {
  const out = new Float32Array(data.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < data.length; i++) bits[i] = data[i] << 16;
  return out;
}

/** Round half to even: the rounding of the Rust kernels' round_ties_even. */
function roundTiesEven(x: number): number {
  const r = Math.round(x); // halves round up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `data` (a multiple of 32 values) quantized to int8 in blocks of 32: q (same length) and
 * one scale per block (data.length / 32), as crates/kernels/src/compact.rs's q8_quantize.
 */
export function quantizeQ8(data: Float32Array): { q: Int8Array; scales: Float32Array } {
  if (data.length % Q8_BLOCK !== 0) throw new Error(`quantizeQ8: length ${data.length} is not a multiple of ${Q8_BLOCK}`);
  const q = new Int8Array(data.length);
  const scales = new Float32Array(data.length / Q8_BLOCK);
  for (let b = 0; b < scales.length; b++) {
    const o = b * Q8_BLOCK;
    let amax = 0;
    for (let i = 0; i < Q8_BLOCK; i++) {
      const a = Math.abs(data[o + i]);
      if (a > amax) amax = a; // NaN is skipped, as f32::max skips it
    }
    scales[b] = amax / 127;
    const inv = amax > 0 ? Math.fround(127 / amax) : 0;
    for (let i = 0; i < Q8_BLOCK; i++) {
      const r = roundTiesEven(Math.fround(data[o + i] * inv));
      q[o + i] = r !== r ? 0 : Math.max(-127, Math.min(127, r)); // NaN becomes 0, as Rust's `as i8`
    }
  }
  return { q, scales };
}

/** Rows of an int8 matrix interleaved in memory (see the comment at the top). */
export const Q8_GROUP = 16;

/** Where value (o, k) of an int8 matrix (OC, C) lies in memory, as compact.rs's q8_at. */
export function q8At(o: number, k: number, OC: number, C: number): number {
  const g0 = o - (o % Q8_GROUP);
  const r = Math.min(Q8_GROUP, OC - g0);
  return g0 * C + (k >> 2) * 4 * r + (o - g0) * 4 + (k & 3);
}

/** Where the scale of block b of row o lies in the scales (OC, NB) of an int8 matrix, as compact.rs's q8_scale_at. */
export function q8ScaleAt(o: number, b: number, OC: number, NB: number): number {
  const g0 = o - (o % Q8_GROUP);
  return g0 * NB + b * Math.min(Q8_GROUP, OC - g0) + (o - g0);
}

/** A row-major int8 matrix (rows, cols) and its scales (rows, cols/32) in the interleaved layout the kernels read. */
export function interleaveQ8(w: { q: Int8Array; scales: Float32Array }, rows: number, cols: number): { q: Int8Array; scales: Float32Array } {
  return permuteQ8(w, rows, cols, true);
}

/** The inverse of interleaveQ8: the row-major matrix and scales. */
export function deinterleaveQ8(w: { q: Int8Array; scales: Float32Array }, rows: number, cols: number): { q: Int8Array; scales: Float32Array } {
  return permuteQ8(w, rows, cols, false);
}

function permuteQ8(w: { q: Int8Array; scales: Float32Array }, rows: number, cols: number, interleave: boolean): { q: Int8Array; scales: Float32Array } {
  const nb = cols / Q8_BLOCK;
  if (w.q.length !== rows * cols || w.scales.length !== rows * nb || cols % Q8_BLOCK !== 0) throw new Error(`interleaveQ8: expected ${rows}×${cols} values and ${rows * nb} scales (cols a multiple of ${Q8_BLOCK}), got ${w.q.length} and ${w.scales.length}`);
  const q = new Int8Array(w.q.length);
  const scales = new Float32Array(w.scales.length);
  for (let o = 0; o < rows; o++) {
    for (let k = 0; k < cols; k += 4) {
      const [at, rm] = [q8At(o, k, rows, cols), o * cols + k];
      if (interleave) q.set(w.q.subarray(rm, rm + 4), at);
      else q.set(w.q.subarray(at, at + 4), rm);
    }
    for (let b = 0; b < nb; b++) {
      const at = q8ScaleAt(o, b, rows, nb);
      if (interleave) scales[at] = w.scales[o * nb + b];
      else scales[o * nb + b] = w.scales[at];
    }
  }
  return { q, scales };
}

/** q·d for every block: the f32 values a row-major int8 tensor stands for. */
export function dequantizeQ8(q: Int8Array, scales: ArrayLike<number>): Float32Array {
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = q[i] * scales[(i / Q8_BLOCK) | 0];
  return out;
}
