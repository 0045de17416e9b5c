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
//! dot product in a fixed order, whatever N and the thread count are. They read the
//! weight in compact.rs's interleaved layout (`q8_at`): 16 rows side by side.

use super::Q8_BLOCK;
use std::arch::x86_64::*;

/// Which integer GEMV runs: decided once per call from the detected level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Q8Path {
    /// AVX512_VNNI: vpdpbusd on (w + 128) as u8 times x as s8, from −128 · Σ x.
    Vnni,
    /// AVX-512BW: vpmaddubsw on |x| as u8 times sign(x) · w as s8, then vpmaddwd.
    Avx512Bw,
    /// AVX2: the same on 256 bits, a group's 16 rows as two halves of 8 (vpsignb gives
    /// sign(x) · w).
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

/// Floats of scratch `q8_prepare` fills for N rows of C: xs (N, C) i8, and per block of
/// 32 its scale d_x and −128 · Σ q_x (the VNNI offset's correction), (N, C/32) each.
pub(super) fn q8_scratch_floats(n: usize, c: usize) -> usize {
    n * c.div_ceil(4) + 2 * n * (c / Q8_BLOCK)
}

/// The activations as the integer kernels read them, quantized by the spec, in `scratch`
/// (q8_scratch_floats): xs (N, C) q_x as i8, d (N, C/32) their scales, corr (N, C/32)
/// −128 · Σ q_x over each block as i32 (vpdpbusd starts each block's sum from it).
/// Returns (xs, d, corr) as pointers into scratch.
pub(super) fn q8_prepare(scratch: &mut [f32], inp: &[f32], n: usize, c: usize) -> (*const i8, *const f32, *const i32) {
    let nb = c / Q8_BLOCK;
    assert!(scratch.len() >= q8_scratch_floats(n, c), "matmul_forward_q8: scratch too small");
    let (bytes, rest) = scratch.split_at_mut(n * c.div_ceil(4));
    let (d, corr) = rest.split_at_mut(n * nb);
    // SAFETY: the first region's floats are reinterpreted as N·C bytes (any bit pattern is
    // a valid i8), the last's as N·C/32 i32 (same size and alignment as f32).
    let xs = unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut i8, n * c) };
    let corr = unsafe { core::slice::from_raw_parts_mut(corr.as_mut_ptr() as *mut i32, n * nb) };
    // SAFETY: every path of q8_path() runs on a CPU with avx2 and fma (detected by best()).
    unsafe { fill(xs, &mut d[..n * nb], corr, inp, n, c) };
    (xs.as_ptr(), d.as_ptr(), corr.as_ptr())
}

/// q8_prepare's loop, compiled with AVX2 so that q8_quantize (inlined) rounds with
/// vroundps (baseline x86_64 emulates round_ties_even per value): the same rounding, so
/// the same q_x and d_x bits.
#[target_feature(enable = "avx2,fma")]
unsafe fn fill(xs: &mut [i8], d: &mut [f32], corr: &mut [i32], inp: &[f32], n: usize, c: usize) {
    super::q8_quantize(&inp[..n * c], xs, d);
    for (s, q) in corr.iter_mut().zip(xs.chunks_exact(Q8_BLOCK)) {
        *s = -128 * q.iter().map(|&v| v as i32).sum::<i32>();
    }
}

/// Arguments of the int8 GEMV kernels. Shapes: out (N, OC); xs, d, corr as `q8_prepare`
/// made them; weight (OC, C) and scales (OC, C/32) in the interleaved layout of
/// compact.rs's `q8_at`; bias (OC) or null.
#[derive(Clone, Copy)]
pub(super) struct Q8Args {
    pub out: *mut f32,
    pub xs: *const i8,
    pub d: *const f32,
    pub corr: *const i32,
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

/// out[.., rows of groups g0..g1] of the int8 product on `path`, for up to
/// COMPACT_GEMV_ROWS activation rows, 4 at a time, over 4 groups at a time: each group
/// comes from memory once, for the first 4 rows, and from L1/L2 for the others.
///
/// The weight's layout puts 16 rows side by side, 4 bytes each (`q8_at`), so one 512-bit
/// load holds 4 values of k for 16 outputs: with the activations' 4 bytes broadcast, one
/// vpdpbusd adds 64 products into 16 outputs' block sums, with no horizontal sums and one
/// conversion and scale per block of 32 and 16 outputs. (Row by row, each 64 bytes also
/// needed a conversion, a scale and its permutation: 2.5 times the instructions a byte.)
///
/// # Safety
/// The pointers of `a` are valid for the shapes above, 1 <= N <= COMPACT_GEMV_ROWS,
/// C % 32 == 0, g0 <= g1 <= ceil(OC/16), no one else writes out's columns of those groups,
/// and the CPU has `path`'s features (`q8_path` reported it).
pub(super) unsafe fn gemv_q8(a: &Q8Args, g0: usize, g1: usize, path: Q8Path) {
    const CHUNK: usize = 4; // groups: 48 KB at C = 768, 192 KB at 3072
    let nb = a.c / Q8_BLOCK;
    let mut c0 = g0;
    while c0 < g1 {
        let c1 = (c0 + CHUNK).min(g1);
        let mut r0 = 0;
        while r0 < a.n {
            // SAFETY: rows r0.. of the per-row buffers (xs rows of C bytes, d and corr C/32)
            // and of out.
            let g = unsafe { Q8Args { out: a.out.add(r0 * a.oc), xs: a.xs.add(r0 * a.c), d: a.d.add(r0 * nb), corr: a.corr.add(r0 * nb), n: (a.n - r0).min(4), ..*a } };
            // SAFETY (each arm): the caller's contract, for these activation rows.
            unsafe {
                match (path, g.n) {
                    // One row (decoding one sequence) streams the weight from DRAM: the 4
                    // groups side by side as 4 streams where a group is long (C >= 2048:
                    // 48 KB), else one group at a time, one stream, which the prefetchers
                    // keep fuller (in-process A/B on GPT-2's shapes: +10-20% at C = 768,
                    // -8% at 3072).
                    (Q8Path::Vnni, 1) if a.c >= 2048 => q8_avx512::<1, 4, true>(&g, c0, c1),
                    (Q8Path::Vnni, 1) => q8_avx512::<1, 1, true>(&g, c0, c1),
                    (Q8Path::Vnni, 2) => q8_avx512::<2, 2, true>(&g, c0, c1),
                    (Q8Path::Vnni, 3) => q8_avx512::<3, 1, true>(&g, c0, c1),
                    (Q8Path::Vnni, _) => q8_avx512::<4, 1, true>(&g, c0, c1),
                    (Q8Path::Avx512Bw, 1) => q8_avx512::<1, 4, false>(&g, c0, c1),
                    (Q8Path::Avx512Bw, 2) => q8_avx512::<2, 2, false>(&g, c0, c1),
                    (Q8Path::Avx512Bw, 3) => q8_avx512::<3, 1, false>(&g, c0, c1),
                    (Q8Path::Avx512Bw, _) => q8_avx512::<4, 1, false>(&g, c0, c1),
                    (Q8Path::Avx2, 1) => q8_avx2::<1>(&g, c0, c1),
                    (Q8Path::Avx2, 2) => q8_avx2::<2>(&g, c0, c1),
                    (Q8Path::Avx2, 3) => q8_avx2::<3>(&g, c0, c1),
                    (Q8Path::Avx2, _) => q8_avx2::<4>(&g, c0, c1),
                }
            }
            r0 += 4;
        }
        c0 = c1;
    }
}

/// Writes y (= or +=) s + b.
#[inline(always)]
unsafe fn put(y: *mut f32, s: f32, b: f32, accumulate: bool) {
    let x = s + b;
    // SAFETY: the caller's y is a valid output element that only it writes.
    unsafe { *y = if accumulate { *y + x } else { x } };
}

/// Writes y[0..r] (= or +=) lanes[0..r] + bias[0..r] (bias null: 0).
#[inline(always)]
unsafe fn put_lanes(y: *mut f32, lanes: &[f32], bias: *const f32, r: usize, accumulate: bool) {
    for (j, &s) in lanes[..r].iter().enumerate() {
        // SAFETY: the caller's y[0..r] are valid outputs only it writes; bias has r floats
        // there when non-null.
        unsafe {
            let x = s + if bias.is_null() { 0.0 } else { *bias.add(j) };
            *y.add(j) = if accumulate { *y.add(j) + x } else { x };
        }
    }
}

/// The 512-bit int8 GEMV for R activation rows and G weight groups at a time (R·G
/// independent accumulator chains, so consecutive vpdpbusd do not wait on each other);
/// groups past a multiple of G, and a partial last group (masked lanes), go one at a time.
/// VNNI: vpdpbusd on w ^ 0x80 = w + 128 as u8, each block's sum started from −128 · Σ x;
/// else vpmaddubsw (|x| u8 × sign(x)·w s8: pair sums within ±2·127·127) and vpmaddwd.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn q8_avx512<const R: usize, const G: usize, const VNNI: bool>(a: &Q8Args, g0: usize, g1: usize) {
    let full = a.oc / 16; // groups with all 16 rows
    let mut g = g0;
    while g + G <= g1.min(full) {
        q8_avx512_groups::<R, G, VNNI>(a, g, 16);
        g += G;
    }
    while g < g1 {
        q8_avx512_groups::<R, 1, VNNI>(a, g, 16.min(a.oc - 16 * g));
        g += 1;
    }
}

/// Groups g.., G of them, each of `rows` rows (16, or fewer for the last when G = 1).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn q8_avx512_groups<const R: usize, const G: usize, const VNNI: bool>(a: &Q8Args, g: usize, rows: usize) {
    let (c, nb) = (a.c, a.c / Q8_BLOCK);
    let mask: __mmask16 = if rows == 16 { !0 } else { (1u16 << rows) - 1 };
    let offset = _mm512_set1_epi8(-128);
    let ones = _mm512_set1_epi16(1);
    // Group gi's weights: C/4 steps of 4·rows bytes; its scales: C/32 blocks of rows floats.
    let mut w = [a.weight; G];
    let mut s = [a.scales; G];
    for gi in 0..G {
        w[gi] = a.weight.add(16 * (g + gi) * c);
        s[gi] = a.scales.add(16 * (g + gi) * nb);
    }
    let step = 4 * rows;
    let mut acc = [[_mm512_setzero_ps(); G]; R];
    // With one row and one group, alternate steps go to a second sum, so that consecutive
    // vpdpbusd do not wait on each other.
    let split = usize::from(R * G == 1);
    for b in 0..nb {
        let mut isum = [[[_mm512_setzero_si512(); 2]; G]; R];
        if VNNI {
            for r in 0..R {
                let start = _mm512_set1_epi32(*a.corr.add(r * nb + b));
                isum[r] = [[start, _mm512_setzero_si512()]; G];
            }
        }
        for t in 0..Q8_BLOCK / 4 {
            let k4 = b * (Q8_BLOCK / 4) + t; // values 4·k4.. of k
            let mut xb = [_mm512_setzero_si512(); R];
            for r in 0..R {
                xb[r] = _mm512_set1_epi32((a.xs.add(r * c + 4 * k4) as *const i32).read_unaligned());
            }
            for gi in 0..G {
                let p = w[gi].add(k4 * step);
                let wv = if rows == 16 { _mm512_loadu_si512(p as *const __m512i) } else { _mm512_maskz_loadu_epi32(mask, p as *const i32) };
                let h = t & split;
                if VNNI {
                    let wu = _mm512_xor_si512(wv, offset);
                    for r in 0..R {
                        isum[r][gi][h] = _mm512_dpbusd_epi32(isum[r][gi][h], wu, xb[r]);
                    }
                } else {
                    for r in 0..R {
                        let neg = _mm512_movepi8_mask(xb[r]);
                        let ws = _mm512_mask_sub_epi8(wv, neg, _mm512_setzero_si512(), wv); // sign(x)·w
                        let pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(xb[r]), ws);
                        isum[r][gi][h] = _mm512_add_epi32(isum[r][gi][h], _mm512_madd_epi16(pairs, ones));
                    }
                }
            }
        }
        for gi in 0..G {
            let dw = _mm512_maskz_loadu_ps(mask, s[gi].add(b * rows)); // (rows,) d_w of block b
            for r in 0..R {
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.add(r * nb + b)));
                let sum = if split == 1 { _mm512_add_epi32(isum[r][gi][0], isum[r][gi][1]) } else { isum[r][gi][0] };
                acc[r][gi] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r][gi]);
            }
        }
    }
    let mut lanes = [0f32; 16];
    for r in 0..R {
        for gi in 0..G {
            let o = 16 * (g + gi);
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r][gi]);
            let bias = if a.bias.is_null() { a.bias } else { a.bias.add(o) };
            put_lanes(a.out.add(r * a.oc + o), &lanes, bias, rows, a.accumulate);
        }
    }
}

/// The 256-bit int8 GEMV for R activation rows, one group at a time as two halves of 8
/// rows (32 bytes a step each): sign(x)·w by vpsignb, |x| u8 × that s8 by vpmaddubsw,
/// pairs summed by vpmaddwd; each block's sums scaled by d_w · d_x in f32.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn q8_avx2<const R: usize>(a: &Q8Args, g0: usize, g1: usize) {
    let (c, nb) = (a.c, a.c / Q8_BLOCK);
    let ones = _mm256_set1_epi16(1);
    for g in g0..g1 {
        let rows = 16.min(a.oc - 16 * g);
        let (w, s) = (a.weight.add(16 * g * c), a.scales.add(16 * g * nb));
        let step = 4 * rows;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for b in 0..nb {
            let mut isum = [[_mm256_setzero_si256(); 2]; R];
            for t in 0..Q8_BLOCK / 4 {
                let k4 = b * (Q8_BLOCK / 4) + t;
                let p = w.add(k4 * step);
                // Rows past `rows` read as zeros (the last group's partial halves).
                let mut half = [[0i32; 8]; 2];
                let wv = if rows == 16 {
                    [_mm256_loadu_si256(p as *const __m256i), _mm256_loadu_si256(p.add(32) as *const __m256i)]
                } else {
                    core::ptr::copy_nonoverlapping(p, half.as_mut_ptr() as *mut i8, step);
                    [_mm256_loadu_si256(half[0].as_ptr() as *const __m256i), _mm256_loadu_si256(half[1].as_ptr() as *const __m256i)]
                };
                for r in 0..R {
                    let xb = _mm256_set1_epi32((a.xs.add(r * c + 4 * k4) as *const i32).read_unaligned());
                    let xa = _mm256_abs_epi8(xb);
                    for h in 0..2 {
                        let pairs = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv[h], xb));
                        isum[r][h] = _mm256_add_epi32(isum[r][h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            let mut dws = [0f32; 16];
            core::ptr::copy_nonoverlapping(s.add(b * rows), dws.as_mut_ptr(), rows);
            for h in 0..2 {
                let dw = _mm256_loadu_ps(dws.as_ptr().add(8 * h));
                for r in 0..R {
                    let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.add(r * nb + b)));
                    acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][h]), scale, acc[r][h]);
                }
            }
        }
        let mut lanes = [0f32; 16];
        for r in 0..R {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[r][1]);
            let bias = if a.bias.is_null() { a.bias } else { a.bias.add(16 * g) };
            put_lanes(a.out.add(r * a.oc + 16 * g), &lanes, bias, rows, a.accumulate);
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
    for o in o0..o1 {
        // As matmul's f32 GEMV, whose structure this is.
        crate::matmul::prefetch_row_ahead::<crate::simd::x86::Avx512>(weight as *const u8, 2 * c, o, o1, n);
        // SAFETY: row o < OC of weight (OC, C); rows r < N of xb (N, C); out at rows < N,
        // column o, only this task's.
        unsafe {
            let w = weight.add(o * c); // (C,) row o, bf16
            let b = if bias.is_null() { 0.0 } else { *bias.add(o) };
            // Each row meets the weight row 4 at a time, sharing its loads; each output has
            // the bits it has alone (its own accumulators, the same order).
            let mut r0 = 0;
            while r0 < n {
                let rows = (n - r0).min(4);
                let (y, x) = (out.add(r0 * oc + o), xb.add(r0 * c));
                match rows {
                    4 => bf16_dot_rows::<4>(y, x, w, b, c, oc, accumulate),
                    3 => bf16_dot_rows::<3>(y, x, w, b, c, oc, accumulate),
                    2 => bf16_dot_rows::<2>(y, x, w, b, c, oc, accumulate),
                    _ => bf16_dot_rows::<1>(y, x, w, b, c, oc, accumulate),
                }
                r0 += rows;
            }
        }
    }
}

/// out[r, 0] (= or +=) xb[r] · w + b for R rows of xb (R, C) against one bf16 weight row w
/// (C,), each with 4 accumulators over whole 128-value steps, then one over 32-value steps,
/// then the masked tail.
///
/// # Safety
/// R rows of out (row stride OC) and of xb (row stride C), and the C values of w, are
/// valid; the CPU has avx512bf16/bw/vl.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn bf16_dot_rows<const R: usize>(out: *mut f32, xb: *const u16, w: *const u16, b: f32, c: usize, oc: usize, accumulate: bool) {
    const W: usize = 32; // bf16 values per zmm
    let tail = c % W;
    let tail_mask: __mmask32 = if tail == 0 { 0 } else { (1u32 << tail) - 1 };
    // SAFETY: __m512i and __m512bh are both 64 bytes of plain bits.
    let bh = |v: __m512i| unsafe { core::mem::transmute::<__m512i, __m512bh>(v) };
    // SAFETY (every load and store): k + 4W, k + W <= C in the loops, the tail masked to
    // the row; rows r < R, as the caller promises.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let mut k = 0;
        while k + 4 * W <= c {
            for u in 0..4 {
                let kk = k + u * W;
                let wv = bh(_mm512_loadu_si512(w.add(kk) as *const __m512i));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xv = _mm512_loadu_si512(xb.add(r * c + kk) as *const __m512i);
                    acc[u] = _mm512_dpbf16_ps(acc[u], bh(xv), wv);
                }
            }
            k += 4 * W;
        }
        while k + W <= c {
            let wv = bh(_mm512_loadu_si512(w.add(k) as *const __m512i));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_loadu_si512(xb.add(r * c + k) as *const __m512i);
                acc[1] = _mm512_dpbf16_ps(acc[1], bh(xv), wv);
            }
            k += W;
        }
        if tail != 0 {
            let wv = bh(_mm512_maskz_loadu_epi16(tail_mask, w.add(k) as *const i16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_epi16(tail_mask, xb.add(r * c + k) as *const i16);
                acc[2] = _mm512_dpbf16_ps(acc[2], bh(xv), wv);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
            put(out.add(r * oc), s, b, accumulate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{bf16_round, bf16_widen, q8_quantize, test_vals as vals};
    use super::*;

    /// Every int8 path this CPU has, against the spec in f64: N = 1..6 (one and two groups
    /// of activation rows), OC with a partial last group of rows and with enough groups for
    /// the 4-group step, bias or not, accumulate or not.
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
        assert!(!paths.is_empty() || best() == Level::Scalar);
        for &(n, c, oc) in &[(1, 32, 3), (2, 96, 17), (3, 768, 40), (4, 160, 9), (1, 3072, 5), (1, 2048, 70), (1, 64, 100), (2, 32, 64), (5, 128, 70), (6, 64, 16), (9, 64, 150)] {
            let (nb, x) = (c / Q8_BLOCK, vals(n * c, 7));
            let wf = vals(oc * c, 11);
            let (mut w, mut ws) = (vec![0i8; oc * c], vec![0f32; oc * nb]);
            q8_quantize(&wf, &mut w, &mut ws);
            w[0] = -127; // the format's extremes
            w[1] = 127;
            let (wi, wsi) = crate::compact::q8_interleave(&w, &ws, oc, c);
            let (mut xq, mut xd) = (vec![0i8; n * c], vec![0f32; n * nb]);
            q8_quantize(&x, &mut xq, &mut xd);
            let bias = vals(oc, 3);
            for &path in &paths {
                for (with_bias, accumulate) in [(true, false), (false, true)] {
                    let mut scratch = vec![0f32; q8_scratch_floats(n, c)];
                    let (xs, d, corr) = q8_prepare(&mut scratch, &x, n, c);
                    let mut out = vals(n * oc, 5);
                    let before = out.clone();
                    let a = Q8Args { out: out.as_mut_ptr(), xs, d, corr, weight: wi.as_ptr(), scales: wsi.as_ptr(), bias: if with_bias { bias.as_ptr() } else { core::ptr::null() }, n, c, oc, accumulate };
                    // SAFETY: the buffers have the shapes of Q8Args; `paths` holds only
                    // what this CPU has; one call writes every group.
                    unsafe { gemv_q8(&a, 0, oc.div_ceil(16), path) };
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
        for &(n, c, oc) in &[(1, 1, 1), (2, 17, 5), (4, 33, 3), (3, 768, 20), (1, 200, 7), (16, 300, 9), (7, 129, 6)] {
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
                // Row r alone gives the bits it has in the batch.
                let mut alone = vec![0f32; oc];
                // SAFETY: as above, for one row.
                unsafe { gemv_bf16_dot(alone.as_mut_ptr(), x.as_ptr().add(r * c), w.as_ptr(), bias.as_ptr(), 1, c, oc, 0, oc, false) };
                assert!(alone.iter().zip(&out[r * oc..(r + 1) * oc]).all(|(a, b)| a.to_bits() == b.to_bits()), "n={n} c={c} oc={oc}: row {r} alone differs");
            }
        }
    }
}
