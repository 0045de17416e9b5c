//! GELU, tanh approximation (GPT-2's "gelu_new"):
//! gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
//!
//! This file also holds `VecMath` (exp, div, sqrt on top of `F32Vec`), which GELU,
//! crossentropy, attention and AdamW share. It lives here because simd/ belongs to
//! another engineer; it is a candidate to move into simd/ as F32Vec methods.
//!
//! We never evaluate tanh directly: 0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + exp(-2u)),
//! which stays accurate (in relative terms) for very negative x, where 1 + tanh(u) would
//! cancel catastrophically.

use crate::simd::F32Vec;
use crate::simd_kernel;

/// Vector exp / div / sqrt. The default methods work lane by lane through `store`/`load`
/// (correct on every backend); x86 overrides them with intrinsics and a polynomial exp.
pub(crate) trait VecMath: F32Vec {
    #[inline(always)]
    fn exp(self) -> Self {
        lanewise1(self, exp_scalar)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        lanewise1(self, f32::sqrt)
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        let mut a = [0.0f32; 16];
        let mut b = [0.0f32; 16];
        debug_assert!(Self::LANES <= 16);
        // SAFETY: every F32Vec here has LANES <= 16, so both arrays hold LANES floats.
        unsafe {
            self.store(a.as_mut_ptr());
            o.store(b.as_mut_ptr());
        }
        for i in 0..Self::LANES {
            a[i] /= b[i];
        }
        // SAFETY: as above.
        unsafe { Self::load(a.as_ptr()) }
    }
}

#[inline(always)]
fn lanewise1<V: F32Vec>(x: V, f: fn(f32) -> f32) -> V {
    let mut a = [0.0f32; 16];
    debug_assert!(V::LANES <= 16);
    // SAFETY: every F32Vec here has LANES <= 16, so `a` holds LANES floats.
    unsafe { x.store(a.as_mut_ptr()) };
    for v in a.iter_mut().take(V::LANES) {
        *v = f(*v);
    }
    // SAFETY: as above.
    unsafe { V::load(a.as_ptr()) }
}

/// Cephes expf polynomial on the reduced argument r in [-ln2/2, ln2/2]: exp(r) to ~1 ulp.
#[inline(always)]
#[allow(dead_code)]
fn exp_poly<V: F32Vec>(r: V) -> V {
    let mut y = V::splat(1.987_569_1e-4);
    y = y.mul_add(r, V::splat(1.398_199_9e-3));
    y = y.mul_add(r, V::splat(8.333_452e-3));
    y = y.mul_add(r, V::splat(4.166_579_6e-2));
    y = y.mul_add(r, V::splat(1.666_666_5e-1));
    y = y.mul_add(r, V::splat(0.5));
    y.mul_add(r.mul(r), r.add(V::splat(1.0)))
}

// Range of the vector exp: below EXP_LO the result is ~1e-38 instead of 0 (harmless for
// softmax and sigmoid), above EXP_HI it saturates at e^88 instead of overflowing.
#[allow(dead_code)]
const EXP_LO: f32 = -87.336_54; // ln(2^-126): 2^n stays a normal number
const EXP_HI: f32 = 88.0; // round(x log2 e) <= 127
#[allow(dead_code)]
const LOG2E: f32 = core::f32::consts::LOG2_E;
#[allow(dead_code)]
const LN2_HI: f32 = 0.693_359_4; // Cody-Waite split of ln 2
#[allow(dead_code)]
const LN2_LO: f32 = -2.121_944_4e-4;

/// f32::exp saturated like the vector exp (e^88 instead of inf), so that x (1 - s) style
/// products never meet inf * 0.
#[inline(always)]
pub(crate) fn exp_scalar(x: f32) -> f32 {
    x.min(EXP_HI).exp()
}

impl VecMath for crate::simd::Scalar {
    #[inline(always)]
    fn exp(self) -> Self {
        crate::simd::Scalar(exp_scalar(self.0))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        crate::simd::Scalar(self.0.sqrt())
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        crate::simd::Scalar(self.0 / o.0)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_math {
    use super::*;
    use crate::simd::x86::{Avx2, Avx512};
    use std::arch::x86_64::*;

    // SAFETY (whole impl): like simd/x86.rs, these are only reached from the avx2+fma
    // copies that `simd_kernel!` generates after runtime detection.
    impl VecMath for Avx2 {
        #[inline(always)]
        fn exp(self) -> Self {
            unsafe {
                let x = _mm256_min_ps(_mm256_max_ps(self.0, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
                // n = round(x / ln2) (cvtps rounds to nearest under the default MXCSR).
                let n = _mm256_cvtps_epi32(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)));
                let fx = _mm256_cvtepi32_ps(n);
                let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(LN2_HI), x);
                let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(LN2_LO), r);
                let p = exp_poly::<Avx2>(Avx2(r)).0;
                // 2^n built from its exponent bits.
                let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
                Avx2(_mm256_mul_ps(p, pow2n))
            }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { Avx2(_mm256_sqrt_ps(self.0)) }
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            unsafe { Avx2(_mm256_div_ps(self.0, o.0)) }
        }
    }

    // AVX-512 intrinsics need Rust 1.89; this module is x86_64-only and never built by
    // the wasm32 toolchain (1.63), like simd/x86.rs.
    // SAFETY (whole impl): only reached from the avx512f copies `simd_kernel!` generates
    // after runtime detection.
    #[allow(clippy::incompatible_msrv)]
    impl VecMath for Avx512 {
        #[inline(always)]
        fn exp(self) -> Self {
            unsafe {
                let x = _mm512_min_ps(_mm512_max_ps(self.0, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
                let n = _mm512_cvtps_epi32(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)));
                let fx = _mm512_cvtepi32_ps(n);
                let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(LN2_HI), x);
                let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(LN2_LO), r);
                let p = exp_poly::<Avx512>(Avx512(r)).0;
                let pow2n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127))));
                Avx512(_mm512_mul_ps(p, pow2n))
            }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { Avx512(_mm512_sqrt_ps(self.0)) }
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            unsafe { Avx512(_mm512_div_ps(self.0, o.0)) }
        }
    }
}

#[cfg(target_arch = "aarch64")]
impl VecMath for crate::simd::neon::Neon {}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl VecMath for crate::simd::wasm::Simd128 {
    #[inline(always)]
    fn sqrt(self) -> Self {
        crate::simd::wasm::Simd128(core::arch::wasm32::f32x4_sqrt(self.0))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        crate::simd::wasm::Simd128(core::arch::wasm32::f32x4_div(self.0, o.0))
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6; // sqrt(2/pi)
const GELU_A: f32 = 0.044715;

simd_kernel! {
    /// out (N) = gelu(inp (N)).
    pub fn gelu_forward(out: &mut [f32], inp: &[f32], n: usize) => gelu_forward_impl
}

#[inline(always)]
fn gelu_forward_impl<V: VecMath>(out: &mut [f32], inp: &[f32], n: usize) {
    let out = &mut out[..n]; // (N)
    let inp = &inp[..n]; // (N)
    let l = V::LANES;
    let k = V::splat(-2.0 * SQRT_2_OVER_PI);
    let ka = V::splat(-2.0 * SQRT_2_OVER_PI * GELU_A);
    let one = V::splat(1.0);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and both slices hold n floats.
        let x = unsafe { V::load(inp.as_ptr().add(i)) };
        // e = exp(-2u), u = sqrt(2/pi) (x + a x^3); gelu = x / (1 + e).
        let x2 = x.mul(x);
        let e = x.mul(ka.mul_add(x2, k)).exp();
        let y = x.div(one.add(e));
        // SAFETY: as above.
        unsafe { y.store(out.as_mut_ptr().add(i)) };
        i += l;
    }
    // Scalar tail (n not a multiple of the lane count).
    while i < n {
        out[i] = gelu_scalar(inp[i]);
        i += 1;
    }
}

#[inline(always)]
fn gelu_scalar(x: f32) -> f32 {
    let e = exp_scalar(-2.0 * SQRT_2_OVER_PI * x * (1.0 + GELU_A * x * x));
    x / (1.0 + e)
}

simd_kernel! {
    /// dinp (N) += gelu'(inp) * dout. Accumulates.
    pub fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize) => gelu_backward_impl
}

// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'(x), u' = sqrt(2/pi)(1 + 3a x^2).
// With s = sigmoid(2u) = 0.5 (1 + tanh u) and 1 - tanh^2 u = 4 s (1 - s), 1 - s = e s:
//   gelu'(x) = s + 2 x s (e s) u'(x),  e = exp(-2u).
#[inline(always)]
fn gelu_backward_impl<V: VecMath>(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize) {
    let dinp = &mut dinp[..n]; // (N)
    let inp = &inp[..n]; // (N)
    let dout = &dout[..n]; // (N)
    let l = V::LANES;
    let k = V::splat(-2.0 * SQRT_2_OVER_PI);
    let ka = V::splat(-2.0 * SQRT_2_OVER_PI * GELU_A);
    let dk = V::splat(2.0 * SQRT_2_OVER_PI);
    let dka = V::splat(2.0 * SQRT_2_OVER_PI * 3.0 * GELU_A);
    let one = V::splat(1.0);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and all three slices hold n floats.
        let (x, g, d) = unsafe { (V::load(inp.as_ptr().add(i)), V::load(dout.as_ptr().add(i)), V::load(dinp.as_ptr().add(i))) };
        let x2 = x.mul(x);
        let e = x.mul(ka.mul_add(x2, k)).exp();
        let s = one.div(one.add(e));
        // 2 u'(x) = 2 sqrt(2/pi) (1 + 3a x^2)
        let du2 = dka.mul_add(x2, dk);
        let grad = x.mul(s).mul(e.mul(s)).mul_add(du2, s);
        // SAFETY: as above.
        unsafe { grad.mul_add(g, d).store(dinp.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        let x = inp[i];
        let e = exp_scalar(-2.0 * SQRT_2_OVER_PI * x * (1.0 + GELU_A * x * x));
        let s = 1.0 / (1.0 + e);
        let du2 = 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_A * x * x);
        dinp[i] += (s + x * s * (e * s) * du2) * dout[i];
        i += 1;
    }
}
