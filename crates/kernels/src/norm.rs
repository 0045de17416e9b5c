//! Global gradient-norm clipping: the sum of squares is accumulated in f64 (so the result
//! does not depend on the SIMD width beyond rounding of the f64 partial sums), then the
//! caller scales every gradient by min(1, max_norm / norm).
//!
//! Both run over the whole parameter buffer (124M floats for GPT-2 small), memory-bound, so
//! they split it across threads. The split of sum_squares depends on n only (GROUPS fixed
//! ranges whose sums are added in order), never on the thread count, so the norm is the
//! same bit for bit on any number of threads and on every backend built from this crate.

use crate::parallel::{for_parts, SyncPtr, RANGE_PAR_MIN};
use crate::simd::F32Vec;
use crate::simd_kernel;
use crate::Parallel;

/// Fixed number of ranges sum_squares sums separately (then adds in order).
const GROUPS: usize = 64;

/// Sum of x (N) squared, accumulated in f64. Deterministic for a given n (see above).
pub fn sum_squares(par: &dyn Parallel, x: &[f32], n: usize) -> f64 {
    let x = &x[..n]; // (N)
    if n < RANGE_PAR_MIN {
        return sum_squares_part(x, n);
    }
    // GROUPS ranges of whole 8-float blocks (the last takes the remainder).
    let per = (n / GROUPS + 7) / 8 * 8;
    let mut sums = [0.0f64; GROUPS];
    let out = SyncPtr(sums.as_mut_ptr());
    par.for_each(GROUPS, &|g, _| {
        let lo = (g * per).min(n);
        let hi = if g + 1 == GROUPS { n } else { ((g + 1) * per).min(n) };
        let s = sum_squares_part(&x[lo..hi], hi - lo);
        // SAFETY: slot g of `sums` (GROUPS floats, alive until for_each returns) is written
        // by task g only.
        unsafe { *out.get().add(g) = s };
    });
    let mut total = 0.0f64;
    for s in sums.iter() {
        total += *s;
    }
    total
}

simd_kernel! {
    /// Σ x² of one range, in f64.
    fn sum_squares_part(x: &[f32], n: usize) -> f64 => sum_squares_impl
}

/// Squares of f32 values are exact in f64, so only the f64 additions round: K = 32
/// independent partial sums (partial sum k takes x[K i + k]², a multiply then an add, no
/// FMA) break the add-latency chain, then are added pairwise in a fixed order, then the
/// remainder. The same arithmetic on every instruction set, so the same bits; `V` picks
/// how the partial sums are formed.
#[inline(always)]
fn sum_squares_impl<V: F32Vec>(x: &[f32], n: usize) -> f64 {
    let x = &x[..n]; // (N)
    let mut acc = partial_sums::<V>(x);
    let mut w = K;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] += acc[k + w];
        }
    }
    let mut total = acc[0];
    for &v in x.chunks_exact(K).remainder() {
        total += (v as f64) * (v as f64);
    }
    total
}

/// sum_squares_impl's K partial sums over the whole K-float chunks of x.
#[inline(always)]
#[allow(unknown_lints, clippy::extra_unused_type_parameters)]
fn partial_sums<V: F32Vec>(x: &[f32]) -> [f64; K] {
    #[cfg(target_arch = "x86_64")]
    match V::LANES {
        // SAFETY: on x86-64, V has 16 lanes only as simd::x86::Avx512 and 8 only as Avx2,
        // which simd_kernel! runs only after detecting those features.
        16 => return unsafe { x86::partial_sums_avx512(x) },
        // SAFETY: as above.
        8 => return unsafe { x86::partial_sums_avx2(x) },
        _ => {}
    }
    let mut acc = [0.0f64; K];
    for ch in x.chunks_exact(K) {
        // As an array, so LLVM sees K known floats.
        let ch: &[f32; K] = ch.try_into().expect("chunks_exact yields K floats");
        for k in 0..K {
            let v = ch[k] as f64;
            acc[k] += v * v;
        }
    }
    acc
}

/// Partial sums of `sum_squares_impl`.
const K: usize = 32;

/// partial_sums with explicit intrinsics: from plain Rust, LLVM vectorised them two lanes
/// at a time (with spills), 7 GB/s a thread; these reach 10. The same arithmetic in the
/// same order, so the same bits.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::K;
    use core::arch::x86_64::*;

    /// Partial sum k = Σ_i x[K i + k]² over the whole K-float chunks of x.
    ///
    /// # Safety
    /// The CPU has avx512f.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn partial_sums_avx512(x: &[f32]) -> [f64; K] {
        let mut acc = [0.0f64; K];
        let mut s = [_mm512_setzero_pd(); K / 8]; // s[g] lane j = partial sum 8g + j
        for ch in x.chunks_exact(K) {
            for (g, sg) in s.iter_mut().enumerate() {
                let v = _mm512_cvtps_pd(_mm256_loadu_ps(ch.as_ptr().add(8 * g)));
                *sg = _mm512_add_pd(*sg, _mm512_mul_pd(v, v));
            }
        }
        for (g, sg) in s.iter().enumerate() {
            _mm512_storeu_pd(acc.as_mut_ptr().add(8 * g), *sg);
        }
        acc
    }

    /// As partial_sums_avx512, with AVX2 (eight registers of four).
    ///
    /// # Safety
    /// The CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn partial_sums_avx2(x: &[f32]) -> [f64; K] {
        let mut acc = [0.0f64; K];
        let mut s = [_mm256_setzero_pd(); K / 4]; // s[g] lane j = partial sum 4g + j
        for ch in x.chunks_exact(K) {
            for (g, sg) in s.iter_mut().enumerate() {
                let v = _mm256_cvtps_pd(_mm_loadu_ps(ch.as_ptr().add(4 * g)));
                *sg = _mm256_add_pd(*sg, _mm256_mul_pd(v, v));
            }
        }
        for (g, sg) in s.iter().enumerate() {
            _mm256_storeu_pd(acc.as_mut_ptr().add(4 * g), *sg);
        }
        acc
    }
}

/// x (N) *= s.
pub fn scale(par: &dyn Parallel, x: &mut [f32], n: usize, s: f32) {
    for_parts(par, &mut x[..n], &|_, part| scale_part(part, part.len(), s));
}

/// x (N) = 0, whatever it held (NaN and inf included). A memset, split across threads:
/// zeroing the gradients and gradient activations of GPT-2 small is 130 ms a step, and
/// one core alone does not saturate memory.
pub fn zero(par: &dyn Parallel, x: &mut [f32], n: usize) {
    for_parts(par, &mut x[..n], &|_, part| part.fill(0.0));
}

simd_kernel! {
    /// x (N) *= s, on one thread.
    fn scale_part(x: &mut [f32], n: usize, s: f32) => scale_impl
}

#[inline(always)]
fn scale_impl<V: F32Vec>(x: &mut [f32], n: usize, s: f32) {
    let x = &mut x[..n]; // (N)
    let l = V::LANES;
    let sv = V::splat(s);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n = x.len().
        unsafe { V::load(x.as_ptr().add(i)).mul(sv).store(x.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        x[i] *= s;
        i += 1;
    }
}
