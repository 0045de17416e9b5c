//! Compact weights: matmul weights and embedding tables held in bf16 or int8, read by
//! kernels that compute in f32. Decoding one token reads every weight once, so it is bound
//! by memory bandwidth; bf16 halves the bytes and int8 (about 1.06 bytes a weight with its
//! scales) nearly quarters them.
//!
//! The formats (the layout on disk is docs/ARCHITECTURE.md's "Compact weights"):
//! - bf16: the upper 16 bits of an f32, rounded to nearest even (`bf16_round`); NaN stays
//!   NaN. Widening back is exact.
//! - int8, llama.cpp's Q8_0: each row of C weights is cut into blocks of `Q8_BLOCK` (32);
//!   a block holds 32 i8 values q and one f32 scale d, and stands for q·d.
//!   `q8_quantize` is the one definition: d = amax / 127 and q = round_ties_even(x · (127 /
//!   amax)), both in f32; a block of zeros has d = 0, q = 0. C must be a multiple of 32.
//!   In memory (not on disk) an int8 matrix (OC, C) interleaves its rows in groups of
//!   `Q8_GROUP` (16): a group's rows sit side by side 4 bytes at a time, and its scales
//!   block by block (`q8_at`, `q8_scale_at`; src/backend/compact.ts's interleaveQ8 makes
//!   it). One 512-bit load then holds 4 values of k for 16 outputs, which is what VNNI's
//!   vpdpbusd multiplies (x86.rs).
//!
//! What the products compute, on every backend and instruction set (the reference kernels
//! in src/backend/reference-kernels.ts are this specification):
//! - `matmul_forward_bf16`: out = bf16(inp) · weightᵀ + bias. The activations are rounded
//!   to bf16 as well, as PyTorch's and oneDNN's bf16 matmuls do, so that a bf16 dot-product
//!   instruction (AVX512_BF16 `vdpbf16ps`) computes the same thing as a widening loop.
//!   bf16 × bf16 products are exact in f32, and accumulation is f32.
//! - `matmul_forward_q8`: each row of inp is quantized on the fly the same way, in blocks
//!   of 32 (`q8_quantize`), and out[n, o] = Σ over blocks of (d_w · d_x) · Σ q_w q_x + bias.
//!   The inner sums are integers (|Σ| ≤ 32 · 127², exact in f32 as well). Per-block scales
//!   for the activations, as llama.cpp's Q8_0 × Q8_0 dot, because one scale per row of
//!   768 lets a few large channels flatten the rest.
//!
//! How they run: up to COMPACT_GEMV_ROWS rows (decoding) a dot product per output reads the compact
//! weight in place, the bytes the format saves being the point. More rows (a prompt, a
//! batch for scoring) go through the f32 GEMM of matmul.rs a chunk of output rows at a
//! time, over the chunk widened into scratch: the GEMM's packing would copy it anyway, and
//! a chunk of a few hundred rows costs far less than its products.

use crate::matmul::{for_column_tasks, gemm_forward, gemv_cols_impl};
use crate::parallel::SyncPtr;
use crate::simd::F32Vec;
use crate::{simd_kernel, Parallel};

#[cfg(target_arch = "x86_64")]
pub(crate) mod bf16_gemm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// Up to this many rows (decoding a batch of sequences) the compact products are dot
/// products that read the compact weight in place: each task's weight rows stay in cache
/// while all N rows meet them, so a batch of 8 reads the weights once, as one sequence
/// does. (The f32 matmul's GEMV stops at 4 rows; widening a compact weight for the GEMM
/// costs more than it does for f32's packing, measured at batch 8: bf16 0.86x and int8
/// 0.83x of f32 on the GEMM path.)
pub(crate) const COMPACT_GEMV_ROWS: usize = 16;

/// Weights per int8 block (one f32 scale each).
pub const Q8_BLOCK: usize = 32;

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits. NaN stays a (quiet) NaN.
#[inline(always)]
pub fn bf16_round(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
#[inline(always)]
pub fn bf16_widen(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Quantizes x (a multiple of 32 floats) into q (same length) and one scale per block of
/// 32 into d (x.len() / 32): the definition of the int8 format (see the module comment).
#[inline]
pub fn q8_quantize(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    for ((xb, qb), db) in x.chunks_exact(Q8_BLOCK).zip(q.chunks_exact_mut(Q8_BLOCK)).zip(d.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        *db = amax / 127.0;
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (o, &v) in qb.iter_mut().zip(xb) {
            *o = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
    }
}

/// Rows of an int8 matrix interleaved in memory (see the module comment).
pub const Q8_GROUP: usize = 16;

/// First row and row count of the group holding row o of an (OC, ..) int8 matrix.
#[inline(always)]
fn q8_group(o: usize, oc: usize) -> (usize, usize) {
    let g0 = o / Q8_GROUP * Q8_GROUP;
    (g0, Q8_GROUP.min(oc - g0))
}

/// Where value (o, k) of an int8 matrix (OC, C) lies in memory: its group's rows g0.. (r
/// of them: 16, fewer in a last partial group) hold C/4 steps of 4·r bytes, row by row 4
/// bytes each.
#[inline(always)]
pub fn q8_at(o: usize, k: usize, oc: usize, c: usize) -> usize {
    let (g0, r) = q8_group(o, oc);
    g0 * c + (k / 4) * 4 * r + (o - g0) * 4 + k % 4
}

/// Where the scale of block b of row o lies in the scales (OC, NB = C/32) of an int8
/// matrix: its group's NB blocks of r scales, row by row.
#[inline(always)]
pub fn q8_scale_at(o: usize, b: usize, oc: usize, nb: usize) -> usize {
    let (g0, r) = q8_group(o, oc);
    g0 * nb + b * r + (o - g0)
}

/// Deterministic values in about [-1, 1) for the compact kernels' Rust tests.
#[cfg(test)]
pub(crate) fn test_vals(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// A row-major int8 matrix q (OC, C) and its scales (OC, C/32) in the interleaved layout
/// (the Rust tests' copy of compact.ts's interleaveQ8).
#[cfg(test)]
pub(crate) fn q8_interleave(q: &[i8], d: &[f32], oc: usize, c: usize) -> (Vec<i8>, Vec<f32>) {
    let nb = c / Q8_BLOCK;
    let (mut qi, mut di) = (vec![0i8; oc * c], vec![0f32; oc * nb]);
    for o in 0..oc {
        for k in 0..c {
            qi[q8_at(o, k, oc, c)] = q[o * c + k];
        }
        for b in 0..nb {
            di[q8_scale_at(o, b, oc, nb)] = d[o * nb + b];
        }
    }
    (qi, di)
}

/// Row o of an int8 matrix (OC, C) in the interleaved layout, dequantized into `row` (C)
/// as q·d, plus `add` (C) when given: the GEMM path's widening and the embedding's lookup.
fn q8_row(row: &mut [f32], q: &[i8], scales: &[f32], o: usize, oc: usize, c: usize, add: Option<&[f32]>) {
    let (g0, r) = q8_group(o, oc);
    let nb = c / Q8_BLOCK;
    let base = q8_at(o, 0, oc, c); // value k at base + (k/4)·4r + k%4
    for (k4, y4) in row[..c].chunks_exact_mut(4).enumerate() {
        let d = scales[g0 * nb + (k4 * 4 / Q8_BLOCK) * r + (o - g0)];
        let p = &q[base + k4 * 4 * r..base + k4 * 4 * r + 4];
        for (i, y) in y4.iter_mut().enumerate() {
            *y = p[i] as f32 * d + add.map_or(0.0, |a| a[4 * k4 + i]);
        }
    }
}

/// Output rows of the weight widened at a time for the GEMM path: about 2 MB of f32, so
/// the chunk and the GEMM's packed blocks stay in the last-level cache.
pub(crate) fn chunk_rows(c: usize, oc: usize) -> usize {
    ((1usize << 19) / c.max(1)).clamp(16, oc.max(16))
}

/// Scratch floats `matmul_forward_bf16` needs: the rounded activations, and for more than
/// COMPACT_GEMV_ROWS rows a widened chunk of the weight and the GEMM's own scratch.
pub fn matmul_bf16_scratch_len(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    let widening = n * c + gemm_chunk_scratch(n, c, oc, threads);
    // vdpbf16ps: the activations as bf16 rows of even length, and the bf16 GEMM's buffers.
    #[cfg(target_arch = "x86_64")]
    let widening = widening.max(n * c.div_ceil(2) + bf16_gemm::scratch_words(c, threads));
    widening
}

/// Scratch floats `matmul_forward_q8` needs: the quantized activations (as f32 integers)
/// and their scales, or the dequantized activations and a widened weight chunk.
pub fn matmul_q8_scratch_len(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    let generic = n * c + n * c.div_ceil(Q8_BLOCK);
    // The x86 integer GEMVs keep the activations as bytes, padded to 64 (x86.rs).
    #[cfg(target_arch = "x86_64")]
    let generic = if n <= COMPACT_GEMV_ROWS { generic.max(x86::q8_scratch_floats(n, c)) } else { generic };
    generic + gemm_chunk_scratch(n, c, oc, threads)
}

fn gemm_chunk_scratch(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    if n <= COMPACT_GEMV_ROWS {
        return 0;
    }
    let ch = chunk_rows(c, oc);
    ch * c + crate::matmul::matmul_scratch_len(n, c, ch, threads)
}

/// out (N,OC) = bf16(inp (N,C)) · weight (OC,C, bf16)ᵀ + bias (OC, optional); accumulate:
/// out += it. `scratch` holds at least `matmul_bf16_scratch_len(n, c, oc, par.threads())`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_forward_bf16(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], inp: &[f32], weight: &[u16], bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool) {
    assert!(out.len() >= n * oc && inp.len() >= n * c && weight.len() >= oc * c, "matmul_forward_bf16: buffer too small");
    assert!(bias.is_none_or(|b| b.len() >= oc), "matmul_forward_bf16: bias too small");
    let (xr, rest) = scratch.split_at_mut(n * c); // (N, C) bf16(inp), as f32
    #[cfg(target_arch = "x86_64")]
    if n <= COMPACT_GEMV_ROWS && x86::has_bf16_dot() {
        // vdpbf16ps reads the activations as bf16: (N, C) u16 in the first half of xr.
        // SAFETY: N·C u16 take half of xr's N·C floats; u16 needs less alignment than f32.
        let xb = unsafe { core::slice::from_raw_parts_mut(xr.as_mut_ptr() as *mut u16, n * c) };
        for (h, &x) in xb.iter_mut().zip(&inp[..n * c]) {
            *h = bf16_round(x);
        }
        let (dst, xb) = (SyncPtr(out.as_mut_ptr()), &*xb);
        for_column_tasks(par, n, c, oc, &|o0, o1| {
            // SAFETY: tasks write disjoint column ranges o0..o1 of out (N, OC); xb holds
            // N*C and weight OC*C values, as checked above; has_bf16_dot() detected the
            // instructions.
            unsafe { x86::gemv_bf16_dot(dst.get(), xb.as_ptr(), weight.as_ptr(), bias_ptr(bias), n, c, oc, o0, o1, accumulate) }
        });
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::has_bf16_dot() {
        // The bf16 GEMM: bf16(inp) as pairs (N, C2/2) · weightᵀ, the weight read in place.
        let c2 = c.div_ceil(2) * 2;
        let (xr, gs) = scratch.split_at_mut(n * c2 / 2);
        // SAFETY: N·C2 u16 fill xr's N·C2/2 floats; u16 and u32 need no more alignment.
        let xb = unsafe { core::slice::from_raw_parts_mut(xr.as_mut_ptr() as *mut u16, n * c2) };
        bf16_gemm::round_rows(par, xb, c2, inp, c, n, c);
        let p = bf16_gemm::Problem {
            m: n,
            n: oc,
            k: c,
            a: bf16_gemm::Pairs { ptr: xb.as_ptr() as *const u32, ld: c2 / 2 },
            b: bf16_gemm::Mat16 { ptr: weight.as_ptr(), rs: 1, cs: c }, // weightᵀ (C, OC)
            c: out.as_mut_ptr(),
            ldc: oc,
            accumulate,
            bias: bias_ptr(bias),
        };
        // SAFETY: the shapes were checked above; has_bf16_dot() detected the instructions;
        // gs holds scratch_words(c, threads) (matmul_bf16_scratch_len).
        unsafe { bf16_gemm::gemm(par, gs, p) };
        return;
    }
    for (r, &x) in xr.iter_mut().zip(&inp[..n * c]) {
        *r = bf16_widen(bf16_round(x));
    }
    if n <= COMPACT_GEMV_ROWS {
        let dst = SyncPtr(out.as_mut_ptr());
        let xr = &*xr;
        for_column_tasks(par, n, c, oc, &|o0, o1| {
            // SAFETY: tasks write disjoint column ranges o0..o1 of out (N, OC); xr holds N*C,
            // weight OC*C floats, as checked above.
            unsafe { gemv_bf16_cols(dst.get(), xr.as_ptr(), weight.as_ptr(), bias_ptr(bias), n, c, oc, o0, o1, accumulate) }
        });
        return;
    }
    gemm_by_chunks(par, rest, out, xr, bias, n, c, oc, accumulate, &|rows, o0| {
        for_parts_rows(par, rows, c, &|r, row| {
            for (w, &h) in row.iter_mut().zip(&weight[(o0 + r) * c..(o0 + r + 1) * c]) {
                *w = bf16_widen(h);
            }
        });
    });
}

/// out (N,OC) = q8(inp (N,C)) · weight (OC,C, int8 with scales (OC, C/32))ᵀ + bias (OC,
/// optional); accumulate: out += it. C is a multiple of 32. `scratch` holds at least
/// `matmul_q8_scratch_len(n, c, oc, par.threads())` floats.
#[allow(clippy::too_many_arguments)]
pub fn matmul_forward_q8(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], inp: &[f32], weight: &[i8], scales: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool) {
    let nb = c / Q8_BLOCK;
    assert!(c % Q8_BLOCK == 0, "matmul_forward_q8: C must be a multiple of 32");
    assert!(out.len() >= n * oc && inp.len() >= n * c && weight.len() >= oc * c && scales.len() >= oc * nb, "matmul_forward_q8: buffer too small");
    assert!(bias.is_none_or(|b| b.len() >= oc), "matmul_forward_q8: bias too small");
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(path)) = (n <= COMPACT_GEMV_ROWS && c > 0, x86::q8_path()) {
        let (xs, d, corr) = x86::q8_prepare(scratch, inp, n, c);
        let a = x86::Q8Args { out: out.as_mut_ptr(), xs, d, corr, weight: weight.as_ptr(), scales: scales.as_ptr(), bias: bias_ptr(bias), n, c, oc, accumulate };
        // One task per thread, each a contiguous run of whole groups of Q8_GROUP rows (the
        // layout's unit): a core streams one long range of the weight, which its prefetchers
        // keep fuller than 4-group tasks handed out in turn (in-process A/B on GPT-2's
        // shapes at 2 threads: +10-20% from DRAM; the f32 and bf16 GEMVs gained nothing).
        let groups = oc.div_ceil(Q8_GROUP);
        let tasks = if n * c * oc < (1 << 17) { 1 } else { par.threads().min(groups) };
        par.for_each(tasks, &|task, _thread| {
            // SAFETY: tasks write the disjoint columns of their groups of out (N, OC); the
            // buffers hold what Q8Args says, as checked above and by q8_prepare; q8_path()
            // detected the instructions.
            unsafe { x86::gemv_q8(&a, task * groups / tasks, (task + 1) * groups / tasks, path) }
        });
        return;
    }
    let (xq, rest) = scratch.split_at_mut(n * c); // (N, C) quantized inp, as f32 integers
    let (xd, rest) = rest.split_at_mut(n * nb); // (N, C/32) their scales
    let mut q = [0i8; Q8_BLOCK];
    for ((xb, qb), d) in inp[..n * c].chunks_exact(Q8_BLOCK).zip(xq.chunks_exact_mut(Q8_BLOCK)).zip(xd.iter_mut()) {
        q8_quantize(xb, &mut q, core::slice::from_mut(d));
        for (o, &v) in qb.iter_mut().zip(&q) {
            *o = v as f32;
        }
    }
    if n <= COMPACT_GEMV_ROWS {
        let dst = SyncPtr(out.as_mut_ptr());
        let (xq, xd) = (&*xq, &*xd);
        for_column_tasks(par, n, c, oc, &|o0, o1| {
            // SAFETY: tasks write disjoint column ranges o0..o1 of out (N, OC); xq holds N*C
            // and xd N*C/32 floats, weight OC*C and scales OC*C/32, as checked above.
            unsafe { gemv_q8_cols(dst.get(), xq.as_ptr(), xd.as_ptr(), weight.as_ptr(), scales.as_ptr(), bias_ptr(bias), n, c, oc, o0, o1, accumulate) }
        });
        return;
    }
    // The GEMM path multiplies dequantized values: (q_x d_x)(q_w d_w) instead of
    // (d_x d_w)(q_x q_w), the same products up to f32 rounding.
    for (b, &d) in xq.chunks_exact_mut(Q8_BLOCK).zip(xd.iter()) {
        for v in b {
            *v *= d;
        }
    }
    gemm_by_chunks(par, rest, out, xq, bias, n, c, oc, accumulate, &|rows, o0| {
        for_parts_rows(par, rows, c, &|r, row| q8_row(row, weight, scales, o0 + r, oc, c, None));
    });
}

/// out = x · weightᵀ + bias through the f32 GEMM, one chunk of output rows at a time:
/// `widen(rows, o0)` fills `rows` (R, C) with weight rows o0..o0 + R as f32.
#[allow(clippy::too_many_arguments)]
fn gemm_by_chunks(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], x: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool, widen: &dyn Fn(&mut [f32], usize)) {
    let ch = chunk_rows(c, oc);
    let (wch, gs) = scratch.split_at_mut(ch * c); // (CH, C) widened weight rows
    let mut o0 = 0;
    while o0 < oc {
        let rows = ch.min(oc - o0);
        let w = &mut wch[..rows * c];
        widen(w, o0);
        let b = bias.map(|b| &b[o0..o0 + rows]);
        gemm_forward(par, gs, &mut out[o0..], oc, x, w, crate::matmul::gemm::PackedB::NONE, b, n, c, rows, accumulate);
        o0 += rows;
    }
}

/// Runs `f(r, row)` over the rows of `x` (R, C), split over the threads.
fn for_parts_rows(par: &dyn Parallel, x: &mut [f32], c: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let rows = x.len() / c;
    let tasks = if x.len() < (1 << 16) { 1 } else { par.threads().max(1) };
    let p = SyncPtr(x.as_mut_ptr());
    par.for_each(tasks, &|task, _thread| {
        for r in task * rows / tasks..(task + 1) * rows / tasks {
            // SAFETY: row r lies inside x, and each row belongs to exactly one task.
            f(r, unsafe { core::slice::from_raw_parts_mut(p.get().add(r * c), c) });
        }
    });
}

fn bias_ptr(bias: Option<&[f32]>) -> *const f32 {
    bias.map_or(core::ptr::null(), |b| b.as_ptr())
}

simd_kernel! {
    /// out[.., o0..o1] (= or +=) for N <= COMPACT_GEMV_ROWS rows of bf16-rounded x (N, C) against
    /// bf16 weight rows (OC, C): matmul's f32 GEMV over bf16 elements. Safety: as matmul's
    /// gemv_cols.
    unsafe fn gemv_bf16_cols(out: *mut f32, x: *const f32, weight: *const u16, bias: *const f32, n: usize, c: usize, oc: usize, o0: usize, o1: usize, accumulate: bool) => gemv_cols_impl
}

simd_kernel! {
    /// out[.., o0..o1] (= or +=) for N <= COMPACT_GEMV_ROWS rows of quantized x (N, C, f32
    /// integers) with block scales xd (N, C/32), against int8 weight rows (OC, C) with
    /// scales (OC, C/32). Safety: as matmul's gemv_cols; C is a multiple of 32.
    unsafe fn gemv_q8_cols(out: *mut f32, xq: *const f32, xd: *const f32, weight: *const i8, scales: *const f32, bias: *const f32, n: usize, c: usize, oc: usize, o0: usize, o1: usize, accumulate: bool) => gemv_q8_cols_impl
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemv_q8_cols_impl<V: F32Vec>(out: *mut f32, xq: *const f32, xd: *const f32, weight: *const i8, scales: *const f32, bias: *const f32, n: usize, c: usize, oc: usize, o0: usize, o1: usize, accumulate: bool) {
    let l = V::LANES;
    let nb = c / Q8_BLOCK;
    for o in o0..o1 {
        // SAFETY: row o < OC of weight and scales (in the interleaved layout, q8_at and
        // q8_scale_at stay inside OC*C and OC*C/32); rows r < N of xq (N, C) and xd (N,
        // C/32); out (N, OC) at rows < N, column o, only this task's.
        unsafe {
            let b = if bias.is_null() { 0.0 } else { *bias.add(o) };
            let mut acc = [V::zero(); COMPACT_GEMV_ROWS];
            let mut wb = [0i8; Q8_BLOCK]; // row o's block, gathered from its 4-byte pieces
            for blk in 0..nb {
                let k0 = blk * Q8_BLOCK;
                for k4 in (0..Q8_BLOCK).step_by(4) {
                    core::ptr::copy_nonoverlapping(weight.add(q8_at(o, k0 + k4, oc, c)), wb.as_mut_ptr().add(k4), 4);
                }
                let dw = *scales.add(q8_scale_at(o, blk, oc, nb));
                for (r, acc) in acc[..n].iter_mut().enumerate() {
                    // Σ q_x q_w over the block: integer products and sums, exact in f32.
                    let mut s = V::zero();
                    let mut k = 0;
                    while k < Q8_BLOCK {
                        s = V::load(xq.add(r * c + k0 + k)).mul_add(V::load_i8(wb.as_ptr().add(k)), s);
                        k += l;
                    }
                    *acc = s.mul_add(V::splat(dw * *xd.add(r * nb + blk)), *acc);
                }
            }
            for (r, acc) in acc[..n].iter().enumerate() {
                let y = out.add(r * oc + o);
                let x = acc.reduce_sum() + b;
                *y = if accumulate { *y + x } else { x };
            }
        }
    }
}

/// out (B,T,C) = widen(wte[ids]) + wpe[t] for a bf16 token table wte (V, C). ids in 0..V
/// (checked by the caller); wpe (maxT, C) with maxT >= T.
pub fn encoder_forward_bf16(out: &mut [f32], ids: &[i32], wte: &[u16], wpe: &[f32], b: usize, t: usize, c: usize) {
    for (bt, o) in out[..b * t * c].chunks_exact_mut(c).enumerate() {
        let id = ids[bt] as usize;
        let pe = &wpe[(bt % t) * c..(bt % t + 1) * c]; // (C)
        for ((y, &h), &p) in o.iter_mut().zip(&wte[id * c..(id + 1) * c]).zip(pe) {
            *y = bf16_widen(h) + p;
        }
    }
}

/// out (B,T,C) = dequantized wte[ids] + wpe[t] for an int8 token table wte (V, C) with
/// scales (V, C/32), interleaved (`q8_at`); C a multiple of 32. ids in 0..V (checked by
/// the caller).
#[allow(clippy::too_many_arguments)]
pub fn encoder_forward_q8(out: &mut [f32], ids: &[i32], wte: &[i8], scales: &[f32], wpe: &[f32], b: usize, t: usize, c: usize, v: usize) {
    for (bt, o) in out[..b * t * c].chunks_exact_mut(c).enumerate() {
        let pe = &wpe[(bt % t) * c..(bt % t + 1) * c]; // (C)
        q8_row(o, wte, scales, ids[bt] as usize, v, c, Some(pe));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_round(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(bf16_round(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (the latter).
        assert_eq!(bf16_round(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(bf16_widen(bf16_round(f32::NAN)).is_nan());
        assert_eq!(bf16_widen(bf16_round(-2.5)), -2.5);
    }

    #[test]
    fn q8_block_of_zeros_and_extremes() {
        let mut x = [0.0f32; 64];
        x[32] = -3.0;
        x[33] = 1.0;
        let (mut q, mut d) = ([0i8; 64], [0f32; 2]);
        q8_quantize(&x, &mut q, &mut d);
        assert_eq!(d[0], 0.0);
        assert!(q[..32].iter().all(|&v| v == 0));
        assert_eq!(q[32], -127);
        assert_eq!(q[33], 42); // 42.33
        assert_eq!(d[1], 3.0 / 127.0);
    }
}
