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

/// The body is plain Rust: compiled inside simd_kernel!'s target_feature wrappers, LLVM
/// vectorises it for AVX2 / AVX-512 (the SSE2 baseline was ~20% slower; one thread is
/// then close to what one core can read from memory, ~9 GB/s on the dev machine).
/// `V` only selects that wrapper; the arithmetic (eight f64 chains, fixed order, no FMA)
/// is the same on every ISA.
#[inline(always)]
#[allow(unknown_lints, clippy::extra_unused_type_parameters)]
fn sum_squares_impl<V: F32Vec>(x: &[f32], n: usize) -> f64 {
    let x = &x[..n]; // (N)
    // Squares of f32 values are exact in f64, so only the f64 additions round. 32
    // independent partial sums (fixed order, independent of SIMD width) break the
    // add-latency chain: eight would be a single AVX-512 register, one dependent add per 8
    // floats (~2 floats/cycle); 32 are four chains. LLVM vectorises the body across them.
    let mut chunks = x.chunks_exact(K);
    let mut acc = [0.0f64; K];
    #[cfg(target_arch = "x86_64")]
    let done = match V::LANES {
        // SAFETY: on x86-64, V has 16 lanes only as simd::x86::Avx512 and 8 only as Avx2,
        // which simd_kernel! runs only after detecting those features.
        16 => unsafe { x86::partial_sums_avx512(x, &mut acc) },
        // SAFETY: as above.
        8 => unsafe { x86::partial_sums_avx2(x, &mut acc) },
        _ => false,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    if !done {
        for ch in &mut chunks {
            // As an array, so LLVM sees K known floats.
            let ch: &[f32; K] = ch.try_into().expect("chunks_exact yields K floats");
            for k in 0..K {
                let v = ch[k] as f64;
                acc[k] += v * v;
            }
        }
    }
    // Pairwise, in a fixed order.
    let mut w = K;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] += acc[k + w];
        }
    }
    let mut total = acc[0];
    for &v in chunks.remainder() {
        total += (v as f64) * (v as f64);
    }
    total
}

/// Partial sums of `sum_squares_impl`.
const K: usize = 32;

/// sum_squares_impl's K partial sums with explicit intrinsics: from plain Rust, LLVM
/// vectorised them two lanes at a time (with spills): 7 GB/s a thread. The same
/// arithmetic in the same order (partial sum k takes x[K i + k]², a multiply then an add),
/// so the result is the same bits.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::K;
    use core::arch::x86_64::*;

    /// acc[k] += Σ_i x[K i + k]² over the whole K-float chunks of x; returns true.
    ///
    /// # Safety
    /// The CPU has avx512f.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn partial_sums_avx512(x: &[f32], acc: &mut [f64; K]) -> bool {
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
        true
    }

    /// As partial_sums_avx512, with AVX2 (eight registers of four).
    ///
    /// # Safety
    /// The CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn partial_sums_avx2(x: &[f32], acc: &mut [f64; K]) -> bool {
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
        true
    }
}

/// x (N) *= s.
pub fn scale(par: &dyn Parallel, x: &mut [f32], n: usize, s: f32) {
    for_parts(par, &mut x[..n], &|part| scale_part(part, part.len(), s));
}

/// x (N) = 0, whatever it held (NaN and inf included). A memset, split across threads:
/// zeroing the gradients and gradient activations of GPT-2 small is 130 ms a step, and
/// one core alone does not saturate memory.
pub fn zero(par: &dyn Parallel, x: &mut [f32], n: usize) {
    for_parts(par, &mut x[..n], &|part| part.fill(0.0));
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
