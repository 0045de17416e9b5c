//! Global gradient-norm clipping: the sum of squares is accumulated in f64 (so the result
//! does not depend on the SIMD width beyond rounding of the f64 partial sums), then the
//! caller scales every gradient by min(1, max_norm / norm).

use crate::simd::F32Vec;
use crate::simd_kernel;

/// Sum of x (N) squared, accumulated in f64.
pub fn sum_squares(x: &[f32], n: usize) -> f64 {
    let x = &x[..n]; // (N)
    // Squares of f32 values are exact in f64, so only the f64 additions round. Eight
    // independent partial sums (fixed order, independent of SIMD width) break the
    // add-latency chain; LLVM vectorises the body across them.
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for ch in &mut chunks {
        for k in 0..8 {
            let v = ch[k] as f64;
            acc[k] += v * v;
        }
    }
    let mut total = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in chunks.remainder() {
        total += (v as f64) * (v as f64);
    }
    total
}

simd_kernel! {
    /// x (N) *= s.
    pub fn scale(x: &mut [f32], n: usize, s: f32) => scale_impl
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
