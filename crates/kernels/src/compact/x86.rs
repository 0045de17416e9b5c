//! The decode GEMVs of compact.rs in x86 instructions the `F32Vec` vocabulary has no word
//! for: AVX512_BF16's `vdpbf16ps` for bf16 weights, and integer dot products for int8
//! (AVX512_VNNI's `vpdpbusd`; `vpmaddubsw` + `vpmaddwd` on AVX-512BW and on AVX2).
//!
//! Why: the widening loops of compact.rs convert every weight to f32 before an FMA, which
//! at one thread costs more time than reading the weight (bf16 ~14, int8 ~11 GB/s of 24),
//! so the format's saving in bytes was lost to instructions.
//!
//! The int8 kernels compute the spec's integer block sums exactly (any exact integer
//! path gives the same sums) and scale them by d_w · d_x in f32, as the generic path
//! does; they differ from it only in the order of the f32 additions. Each output is one
//! dot product in a fixed order, whatever N and the thread count are.

use super::Q8_BLOCK;
use std::arch::x86_64::*;

/// Bytes of int8 activations per 512-bit step: two blocks of 32.
pub(super) const STEP: usize = 64;

/// How far ahead (bytes) the 512-bit int8 GEMV prefetches its weight into L1. Measured
/// (bench/compact-gemv.js, 1 thread, lm head, A/B over 5 interleaved runs on this Zen 4):
/// 2048 gave 17-22 GB/s against 12-18 without; 1024 in between. The hardware prefetcher
/// alone does not keep enough lines in flight for a loop this busy. (The bf16 kernel is
/// faster without it: 26-31 against 17-19 GB/s; it does half the work per byte.)
const PREFETCH: usize = 2048;

/// C rounded up to whole 64-byte steps: the row stride of the activations prepared by
/// `q8_prepare` (padded with zeros, so a step never reads past a row).
pub(super) fn c64(c: usize) -> usize {
    c.div_ceil(STEP) * STEP
}

/// Floats of scratch `q8_prepare` fills for N rows of C: xs (N, C64) i8, aux (N, C64) u8
/// or (N, C64/4) i32, dxl (N, C64/4) f32, d (N, C/32) f32.
pub(super) fn q8_scratch_floats(n: usize, c: usize) -> usize {
    3 * n * c64(c) / 4 + n * (c / Q8_BLOCK)
}

/// Which integer GEMV runs: decided once per call from the detected level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Q8Path {
    /// AVX512_VNNI: vpdpbusd on (w + 128) as u8 times x as s8, minus 128 · Σ x.
    Vnni,
    /// AVX-512BW: vpmaddubsw on |x| as u8 times sign(x) · w as s8, then vpmaddwd.
    Avx512Bw,
    /// AVX2: the same on 256 bits (vpsignb gives sign(x) · w).
    Avx2,
}

pub(super) fn q8_path() -> Option<Q8Path> {
    use crate::simd::x86::{best, ext, Level, EXT_BW, EXT_VNNI};
    let e = ext();
    match best() {
        Level::Avx512 if e & EXT_VNNI != 0 => Some(Q8Path::Vnni),
        Level::Avx512 if e & EXT_BW != 0 => Some(Q8Path::Avx512Bw),
        Level::Avx2 => Some(Q8Path::Avx2),
        _ => None,
    }
}

pub(crate) fn has_bf16_dot() -> bool {
    use crate::simd::x86::{best, ext, Level, EXT_BF16};
    best() == Level::Avx512 && ext() & EXT_BF16 != 0
}

/// The activations as the integer kernels read them, in `scratch` (q8_scratch_floats):
/// xs (N, C64) the spec's q_x as i8 (zero past C); aux (N, C64 bytes): for Vnni, per
/// 4-byte group −128 · Σ q_x as i32 (the offset's correction, negated: vpdpbusd
/// starts from it, which saves a subtraction per step), else |q_x| as u8; dxl
/// (N, C64/4): for each i32 lane of a 64-byte step, the d_x of its block (lanes 0-7 the
/// first block, 8-15 the second); d (N, C/32) the block scales themselves.
/// Returns (xs, aux, dxl, d) as pointers into scratch.
pub(super) fn q8_prepare(scratch: &mut [f32], inp: &[f32], n: usize, c: usize, path: Q8Path) -> (*const i8, *const u8, *const f32, *const f32) {
    let (cp, nb) = (c64(c), c / Q8_BLOCK);
    let q = n * cp / 4; // floats per region of N·C64 bytes
    assert!(scratch.len() >= 3 * q + n * nb, "matmul_forward_q8: scratch too small");
    let (bytes, rest) = scratch.split_at_mut(2 * q);
    let (dxl, d) = rest.split_at_mut(q);
    let d = &mut d[..n * nb]; // (N, C/32)
    // SAFETY: the first 2·q floats are 8·q = 2·N·C64 bytes, reinterpreted as bytes (any
    // bit pattern is a valid i8/u8, and u8 needs no alignment).
    let bytes = unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut u8, 8 * q) };
    let (xs, aux) = bytes.split_at_mut(n * cp); // (N, C64) each
    // SAFETY: every path of q8_path() runs on a CPU with avx2 and fma (detected by best()).
    unsafe { fill(xs, aux, dxl, d, inp, n, c, path) };
    (xs.as_ptr() as *const i8, aux.as_ptr(), dxl.as_ptr(), d.as_ptr())
}

/// q8_prepare's loops, compiled with AVX2 so that q8_quantize (inlined) rounds with
/// vroundps: baseline x86_64 has no SSE4.1 rounding instruction, so round_ties_even was
/// emulated per activation. A call at C = 768, OC = 64 went from 4.0-4.3 to 3.55 µs
/// (in cache, 1 thread, 4 alternating runs); that cost is per call, whatever OC is. The
/// same rounding (to nearest even), so the same q_x and d_x bits.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn fill(xs: &mut [u8], aux: &mut [u8], dxl: &mut [f32], d: &mut [f32], inp: &[f32], n: usize, c: usize, path: Q8Path) {
    let (cp, nb) = (c64(c), c / Q8_BLOCK);
    xs.fill(0);
    aux.fill(0);
    let mut qb = [0i8; Q8_BLOCK];
    for r in 0..n {
        for blk in 0..nb {
            let k = blk * Q8_BLOCK;
            super::q8_quantize(&inp[r * c + k..r * c + k + Q8_BLOCK], &mut qb, &mut d[r * nb + blk..r * nb + blk + 1]);
            for (i, &v) in qb.iter().enumerate() {
                xs[r * cp + k + i] = v as u8;
            }
            if path != Q8Path::Vnni {
                for (i, &v) in qb.iter().enumerate() {
                    aux[r * cp + k + i] = v.unsigned_abs();
                }
            }
        }
        for lane in 0..cp / 4 {
            // Lane `lane` sums bytes 4·lane..4·lane + 4 of the row: block 4·lane / 32.
            let blk = 4 * lane / Q8_BLOCK;
            dxl[r * cp / 4 + lane] = if blk < nb { d[r * nb + blk] } else { 0.0 };
            if path == Q8Path::Vnni {
                let s: i32 = (0..4).map(|i| xs[r * cp + 4 * lane + i] as i8 as i32).sum();
                let at = r * cp + 4 * lane;
                aux[at..at + 4].copy_from_slice(&(-128 * s).to_ne_bytes());
            }
        }
    }
}

/// Arguments of the int8 GEMV kernels. Shapes: out (N, OC); xs, aux, dxl, d as
/// `q8_prepare` made them; weight (OC, C) i8; scales (OC, C/32); bias (OC) or null.
#[derive(Clone, Copy)]
pub(super) struct Q8Args {
    pub out: *mut f32,
    pub xs: *const i8,
    pub aux: *const u8,
    pub dxl: *const f32,
    pub d: *const f32,
    pub weight: *const i8,
    pub scales: *const f32,
    pub bias: *const f32,
    pub n: usize,
    pub c: usize,
    pub oc: usize,
    pub accumulate: bool,
}

// SAFETY: the kernels' tasks only read through these pointers, except out, where each task
// writes its own columns (gemv_q8's contract); the buffers outlive the for_each.
unsafe impl Sync for Q8Args {}

/// out[.., o0..o1] of the int8 product on `path`, for up to COMPACT_GEMV_ROWS rows in
/// groups of 4 (the registers of one group's accumulators): a task's weight rows come from
/// memory once, for the first group, and from the cache for the others.
///
/// # Safety
/// The pointers of `a` are valid for the shapes above, 1 <= N <= COMPACT_GEMV_ROWS,
/// C % 32 == 0, o0 <= o1 <= OC, no one else writes out[.., o0..o1], and the CPU has
/// `path`'s features (`q8_path` reported it).
pub(super) unsafe fn gemv_q8(a: &Q8Args, o0: usize, o1: usize, path: Q8Path) {
    let (cp, nb) = (c64(a.c), a.c / Q8_BLOCK);
    let mut r0 = 0;
    while r0 < a.n {
        // SAFETY: rows r0.. of every per-row buffer (q8_prepare's layout: xs and aux rows of
        // C64 bytes, dxl a float per 4 of them, d C/32 scales; out rows of OC).
        let g = unsafe { Q8Args { out: a.out.add(r0 * a.oc), xs: a.xs.add(r0 * cp), aux: a.aux.add(r0 * cp), dxl: a.dxl.add(r0 * cp / 4), d: a.d.add(r0 * nb), n: (a.n - r0).min(4), ..*a } };
        // SAFETY (each arm): the caller's contract, for this group; `R` = its rows selects registers per row.
        unsafe {
            match (path, g.n) {
                (Q8Path::Vnni, 1) => q8_avx512::<1, true>(&g, o0, o1),
                (Q8Path::Vnni, 2) => q8_avx512::<2, true>(&g, o0, o1),
                (Q8Path::Vnni, 3) => q8_avx512::<3, true>(&g, o0, o1),
                (Q8Path::Vnni, _) => q8_avx512::<4, true>(&g, o0, o1),
                (Q8Path::Avx512Bw, 1) => q8_avx512::<1, false>(&g, o0, o1),
                (Q8Path::Avx512Bw, 2) => q8_avx512::<2, false>(&g, o0, o1),
                (Q8Path::Avx512Bw, 3) => q8_avx512::<3, false>(&g, o0, o1),
                (Q8Path::Avx512Bw, _) => q8_avx512::<4, false>(&g, o0, o1),
                (Q8Path::Avx2, 1) => q8_avx2::<1>(&g, o0, o1),
                (Q8Path::Avx2, 2) => q8_avx2::<2>(&g, o0, o1),
                (Q8Path::Avx2, 3) => q8_avx2::<3>(&g, o0, o1),
                (Q8Path::Avx2, _) => q8_avx2::<4>(&g, o0, o1),
            }
        }
        r0 += 4;
    }
}

/// Writes y (= or +=) s + b.
#[inline(always)]
unsafe fn put(y: *mut f32, s: f32, b: f32, accumulate: bool) {
    let x = s + b;
    // SAFETY: the caller's y is a valid output element that only it writes.
    unsafe { *y = if accumulate { *y + x } else { x } };
}

/// The 512-bit int8 GEMV for R rows: one weight row at a time, 64 bytes (two blocks) a
/// step, each step's 16 i32 lanes (4 products each, exact) converted to f32 and scaled
/// per lane by d_w · d_x of their block, into two accumulators per row (alternating steps,
/// so consecutive FMAs do not wait on each other). VNNI: one vpdpbusd per step and row;
/// else vpmaddubsw (|x| u8 × sign(x)·w s8: pair sums within ±2·127·128, no saturation,
/// for weights in the format's [-127, 127]) and vpmaddwd by ones.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn q8_avx512<const R: usize, const VNNI: bool>(a: &Q8Args, o0: usize, o1: usize) {
    let (c, cp, nb) = (a.c, c64(a.c), a.c / Q8_BLOCK);
    let steps = cp / STEP;
    // Bytes of the last step that lie inside the row: 64, or 32 when C % 64 == 32.
    let last = c - (steps - 1) * STEP;
    let last_mask: __mmask64 = if last == STEP { !0 } else { (1u64 << last) - 1 };
    // Lane i of a step takes d_w of its block: scale 0 for lanes 0-7, 1 for 8-15.
    let pick = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    // One step j of 64 bytes: the weight's bytes wv (zero past C), d_w per lane dw, into
    // accumulator `u` of every row. The step's bytes and scales lie inside row o.
    #[inline(always)]
    unsafe fn step<const R: usize, const VNNI: bool>(a: &Q8Args, acc: &mut [[__m512; 2]; R], u: usize, wv: __m512i, dw: __m512, at0: usize) {
        let offset = _mm512_set1_epi8(-128); // 0x80: w ^ 0x80 = w + 128 as u8
        let ones = _mm512_set1_epi16(1);
        let cp = c64(a.c);
        let wu = if VNNI { _mm512_xor_si512(wv, offset) } else { wv };
        for (r, acc) in acc.iter_mut().enumerate() {
            let at = r * cp + at0;
            // SAFETY: xs/aux/dxl rows are C64 long (q8_prepare) and at0 < C64.
            unsafe {
                let xv = _mm512_loadu_si512(a.xs.add(at) as *const __m512i); // (64,) q_x
                let isum = if VNNI {
                    // Σ (w + 128) x − 128 Σ x = Σ w x, per 4 bytes; past C both are 0.
                    let negcorr = _mm512_loadu_si512(a.aux.add(at) as *const __m512i); // (16,) i32
                    _mm512_dpbusd_epi32(negcorr, wu, xv)
                } else {
                    let xa = _mm512_loadu_si512(a.aux.add(at) as *const __m512i); // (64,) |q_x| u8
                    let neg = _mm512_movepi8_mask(xv);
                    let ws = _mm512_mask_sub_epi8(wv, neg, _mm512_setzero_si512(), wv); // sign(x)·w
                    _mm512_madd_epi16(_mm512_maddubs_epi16(xa, ws), ones)
                };
                let scale = _mm512_mul_ps(dw, _mm512_loadu_ps(a.dxl.add(at / 4)));
                acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[u]);
            }
        }
    }
    for o in o0..o1 {
        // SAFETY: row o < OC of weight (OC, C) and scales (OC, C/32); full steps lie inside
        // the row, the last one's loads are masked to its C bytes and C/32 scales; out at
        // rows < R, column o, only this task's.
        unsafe {
            let w = a.weight.add(o * c); // (C,) row o, int8
            let wd = a.scales.add(o * nb); // (C/32,) its scales
            // d_w of blocks 2j, 2j + 1 spread over the lanes of step j.
            let dw_at = |j: usize| _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(wd.add(2 * j) as *const f64))));
            let ld = |j: usize| _mm512_loadu_si512(w.add(j * STEP) as *const __m512i);
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            let full = if last == STEP { steps } else { steps - 1 };
            let mut j = 0;
            // Two steps at a time into the two accumulators (fixed indices: registers).
            while j + 2 <= full {
                // Both lines PREFETCH bytes ahead (past row o: the next rows, or past the
                // task's end, harmless: a prefetch never faults).
                _mm_prefetch::<_MM_HINT_T0>(w.add(j * STEP).wrapping_add(PREFETCH));
                _mm_prefetch::<_MM_HINT_T0>(w.add(j * STEP + STEP).wrapping_add(PREFETCH));
                step::<R, VNNI>(a, &mut acc, 0, ld(j), dw_at(j), j * STEP);
                step::<R, VNNI>(a, &mut acc, 1, ld(j + 1), dw_at(j + 1), (j + 1) * STEP);
                j += 2;
            }
            if j < full {
                step::<R, VNNI>(a, &mut acc, 0, ld(j), dw_at(j), j * STEP);
                j += 1;
            }
            if j < steps {
                // C % 64 == 32: one block left, lanes 8-15 zero (weights, scale, x).
                let wv = _mm512_maskz_loadu_epi8(last_mask, w.add(j * STEP));
                let dw = _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(*wd.add(2 * j))); // d_w[2j] in lanes 0-7
                step::<R, VNNI>(a, &mut acc, 1, wv, dw, j * STEP);
            }
            let b = if a.bias.is_null() { 0.0 } else { *a.bias.add(o) };
            for (r, acc) in acc.iter().enumerate() {
                put(a.out.add(r * a.oc + o), _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])), b, a.accumulate);
            }
        }
    }
}

/// The 256-bit int8 GEMV for R rows: one block (32 bytes, 8 i32 lanes) a step, sign(x)·w
/// by vpsignb, |x| u8 × that s8 by vpmaddubsw, pairs summed by vpmaddwd; each block's
/// lanes scaled by d_w · d_x in f32, two accumulators per row.
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_avx2<const R: usize>(a: &Q8Args, o0: usize, o1: usize) {
    let (c, cp, nb) = (a.c, c64(a.c), a.c / Q8_BLOCK);
    let ones = _mm256_set1_epi16(1);
    for o in o0..o1 {
        // SAFETY: row o < OC of weight (OC, C) and scales (OC, C/32); blocks < C/32 lie
        // inside the rows of xs/aux (C64 >= C) and d (C/32); out as in q8_avx512.
        unsafe {
            let w = a.weight.add(o * c); // (C,) row o, int8
            let wd = a.scales.add(o * nb); // (C/32,) its scales
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for blk in 0..nb {
                let wv = _mm256_loadu_si256(w.add(blk * Q8_BLOCK) as *const __m256i); // (32,) i8
                let dw = *wd.add(blk);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let at = r * cp + blk * Q8_BLOCK;
                    let xv = _mm256_loadu_si256(a.xs.add(at) as *const __m256i); // (32,) q_x
                    let xa = _mm256_loadu_si256(a.aux.add(at) as *const __m256i); // (32,) |q_x|
                    let isum = _mm256_madd_epi16(_mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv, xv)), ones);
                    let scale = _mm256_set1_ps(dw * *a.d.add(r * nb + blk));
                    acc[blk & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[blk & 1]);
                }
            }
            let b = if a.bias.is_null() { 0.0 } else { *a.bias.add(o) };
            for (r, acc) in acc.iter().enumerate() {
                let v = _mm256_add_ps(acc[0], acc[1]);
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
                put(a.out.add(r * a.oc + o), _mm_cvtss_f32(s), b, a.accumulate);
            }
        }
    }
}

/// out[.., o0..o1] (= or +=) for N <= COMPACT_GEMV_ROWS rows of bf16 activations xb (N, C) against bf16
/// weight rows (OC, C) with vdpbf16ps: 32 products a step into 16 f32 lanes, four
/// accumulators per row. The products are exact; vdpbf16ps treats subnormal inputs as 0
/// and flushes subnormal results (|x| < 2^-126, far below what a matmul's bf16 carries),
/// the one way it can differ from the widening loop beyond the order of additions.
///
/// # Safety
/// out (N, OC), xb (N, C), weight (OC, C), bias (OC, or null) valid; 1 <= N <= COMPACT_GEMV_ROWS,
/// o0 <= o1 <= OC, no one else writes out[.., o0..o1]; the CPU has avx512bf16/bw/vl
/// (`has_bf16_dot`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemv_bf16_dot(out: *mut f32, xb: *const u16, weight: *const u16, bias: *const f32, n: usize, c: usize, oc: usize, o0: usize, o1: usize, accumulate: bool) {
    const W: usize = 32; // bf16 values per zmm
    let tail = c % W;
    let tail_mask: __mmask32 = if tail == 0 { 0 } else { (1u32 << tail) - 1 };
    // SAFETY: __m512i and __m512bh are both 64 bytes of plain bits.
    let bh = |v: __m512i| unsafe { core::mem::transmute::<__m512i, __m512bh>(v) };
    for o in o0..o1 {
        // SAFETY: row o < OC of weight (OC, C); rows r < N of xb (N, C); the tail's loads
        // are masked to the row; out at rows < N, column o, only this task's.
        unsafe {
            let w = weight.add(o * c); // (C,) row o, bf16
            let b = if bias.is_null() { 0.0 } else { *bias.add(o) };
            for r in 0..n {
                let xr = xb.add(r * c); // (C,) row r, bf16
                let mut acc = [_mm512_setzero_ps(); 4];
                let mut k = 0;
                while k + 4 * W <= c {
                    for (u, acc) in acc.iter_mut().enumerate() {
                        let kk = k + u * W;
                        let xv = _mm512_loadu_si512(xr.add(kk) as *const __m512i);
                        let wv = _mm512_loadu_si512(w.add(kk) as *const __m512i);
                        *acc = _mm512_dpbf16_ps(*acc, bh(xv), bh(wv));
                    }
                    k += 4 * W;
                }
                while k + W <= c {
                    let xv = _mm512_loadu_si512(xr.add(k) as *const __m512i);
                    let wv = _mm512_loadu_si512(w.add(k) as *const __m512i);
                    acc[1] = _mm512_dpbf16_ps(acc[1], bh(xv), bh(wv));
                    k += W;
                }
                if tail != 0 {
                    let xv = _mm512_maskz_loadu_epi16(tail_mask, xr.add(k) as *const i16);
                    let wv = _mm512_maskz_loadu_epi16(tail_mask, w.add(k) as *const i16);
                    acc[2] = _mm512_dpbf16_ps(acc[2], bh(xv), bh(wv));
                }
                let s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
                put(out.add(r * oc + o), s, b, accumulate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{bf16_round, bf16_widen, q8_quantize};
    use super::*;

    /// Deterministic values in about [-1, 1).
    fn vals(n: usize, seed: u32) -> Vec<f32> {
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

    /// Every int8 path this CPU has, against the spec in f64: N = 1..4, C with and without
    /// a half step (C % 64 == 32), bias or not, accumulate or not.
    #[test]
    fn q8_paths_match_the_spec() {
        use crate::simd::x86::{best, ext, Level, EXT_BW, EXT_VNNI};
        let mut paths = vec![];
        if best() == Level::Avx512 && ext() & EXT_VNNI != 0 {
            paths.push(Q8Path::Vnni);
        }
        if best() == Level::Avx512 && ext() & EXT_BW != 0 {
            paths.push(Q8Path::Avx512Bw);
        }
        if best() != Level::Scalar {
            paths.push(Q8Path::Avx2);
        }
        for &(n, c, oc) in &[(1, 32, 3), (2, 96, 17), (3, 768, 40), (4, 160, 9), (1, 3072, 5)] {
            let (nb, x) = (c / Q8_BLOCK, vals(n * c, 7));
            let wf = vals(oc * c, 11);
            let (mut w, mut ws) = (vec![0i8; oc * c], vec![0f32; oc * nb]);
            q8_quantize(&wf, &mut w, &mut ws);
            w[0] = -127; // the format's extremes
            w[1] = 127;
            let (mut xq, mut xd) = (vec![0i8; n * c], vec![0f32; n * nb]);
            q8_quantize(&x, &mut xq, &mut xd);
            let bias = vals(oc, 3);
            for &path in &paths {
                for (with_bias, accumulate) in [(true, false), (false, true)] {
                    let mut scratch = vec![0f32; q8_scratch_floats(n, c)];
                    let (xs, aux, dxl, d) = q8_prepare(&mut scratch, &x, n, c, path);
                    let mut out = vals(n * oc, 5);
                    let before = out.clone();
                    let a = Q8Args { out: out.as_mut_ptr(), xs, aux, dxl, d, weight: w.as_ptr(), scales: ws.as_ptr(), bias: if with_bias { bias.as_ptr() } else { core::ptr::null() }, n, c, oc, accumulate };
                    // SAFETY: the buffers have the shapes of Q8Args; `paths` holds only
                    // what this CPU has; one call writes every column.
                    unsafe { gemv_q8(&a, 0, oc, path) };
                    for r in 0..n {
                        for o in 0..oc {
                            let mut s = 0f64;
                            for b in 0..nb {
                                let dot: i32 = (0..Q8_BLOCK).map(|i| w[o * c + b * Q8_BLOCK + i] as i32 * xq[r * c + b * Q8_BLOCK + i] as i32).sum();
                                s += (ws[o * nb + b] * xd[r * nb + b]) as f64 * dot as f64;
                            }
                            if with_bias {
                                s += bias[o] as f64;
                            }
                            if accumulate {
                                s += before[r * oc + o] as f64;
                            }
                            let got = out[r * oc + o] as f64;
                            assert!((got - s).abs() <= 1e-5 * (1.0 + s.abs()), "{path:?} n={n} c={c} oc={oc} r={r} o={o}: {got} vs {s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bf16_dot_matches_the_widening_sum() {
        if !has_bf16_dot() {
            return;
        }
        for &(n, c, oc) in &[(1, 1, 1), (2, 17, 5), (4, 33, 3), (3, 768, 20), (1, 200, 7)] {
            let x: Vec<u16> = vals(n * c, 1).iter().map(|&v| bf16_round(v)).collect();
            let w: Vec<u16> = vals(oc * c, 2).iter().map(|&v| bf16_round(v)).collect();
            let bias = vals(oc, 3);
            let mut out = vec![0f32; n * oc];
            // SAFETY: the buffers have the documented shapes; has_bf16_dot() was checked.
            unsafe { gemv_bf16_dot(out.as_mut_ptr(), x.as_ptr(), w.as_ptr(), bias.as_ptr(), n, c, oc, 0, oc, false) };
            for r in 0..n {
                for o in 0..oc {
                    let (mut s, mut mag) = (bias[o] as f64, bias[o].abs() as f64);
                    for k in 0..c {
                        let p = bf16_widen(x[r * c + k]) as f64 * bf16_widen(w[o * c + k]) as f64;
                        s += p;
                        mag += p.abs();
                    }
                    let got = out[r * oc + o] as f64;
                    assert!((got - s).abs() <= 1e-6 * (1.0 + mag), "n={n} c={c} oc={oc} r={r} o={o}: {got} vs {s}");
                }
            }
        }
    }
}
