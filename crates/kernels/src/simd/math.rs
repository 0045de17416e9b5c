//! Vector maths on top of `F32Vec` that several kernels share: exp, div and sqrt
//! (`VecMath`, used by GELU, cross-entropy, attention, decode and AdamW), the row
//! reductions of a softmax (decode), dot products, `acc += x` over rows and a scalar ln.

use super::{Elem, F32Vec};

/// Vector exp / div / sqrt. The default methods work lane by lane through `store`/`load`
/// (correct on every backend); x86 and simd128 override them with intrinsics and a
/// polynomial exp.
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

    // SAFETY (whole impl): only reached from the avx512f copies `simd_kernel!` generates
    // after runtime detection.
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
    /// The x86 polynomial exp in simd128 (Cody-Waite reduction with a separate multiply,
    /// as Cephes wrote it): GELU, softmax and cross-entropy were running f32::exp lane by
    /// lane, 7 ns per GELU element.
    #[inline(always)]
    fn exp(self) -> Self {
        use crate::simd::wasm::Simd128;
        use core::arch::wasm32::*;
        let x = f32x4_min(f32x4_max(self.0, f32x4_splat(EXP_LO)), f32x4_splat(EXP_HI));
        // n = round(x / ln2), exact in f32 and in range for the conversion.
        let fx = f32x4_nearest(f32x4_mul(x, f32x4_splat(LOG2E)));
        let n = i32x4_trunc_sat_f32x4(fx);
        let r = f32x4_sub(x, f32x4_mul(fx, f32x4_splat(LN2_HI)));
        let r = f32x4_sub(r, f32x4_mul(fx, f32x4_splat(LN2_LO)));
        let p = exp_poly::<Simd128>(Simd128(r)).0;
        // 2^n built from its exponent bits.
        let pow2n = i32x4_shl(i32x4_add(n, i32x4_splat(127)), 23);
        Simd128(f32x4_mul(p, pow2n))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        crate::simd::wasm::Simd128(core::arch::wasm32::f32x4_sqrt(self.0))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        crate::simd::wasm::Simd128(core::arch::wasm32::f32x4_div(self.0, o.0))
    }
}

/// Maximum of a non-empty row.
#[inline(always)]
pub(crate) fn row_max<V: VecMath>(s: &[f32]) -> f32 {
    let n = s.len();
    let l = V::LANES;
    let mut vm = V::splat(f32::NEG_INFINITY);
    let mut j = 0;
    while j + l <= n {
        // SAFETY: j + LANES <= n = s.len().
        vm = vm.max(unsafe { V::load(s.as_ptr().add(j)) });
        j += l;
    }
    let mut m = vm.reduce_max();
    while j < n {
        m = m.max(s[j]);
        j += 1;
    }
    m
}

/// s = exp(s - m); returns Σ s.
#[inline(always)]
pub(crate) fn exp_sub_sum<V: VecMath>(s: &mut [f32], m: f32) -> f32 {
    let n = s.len();
    let l = V::LANES;
    let vm = V::splat(m);
    let mut acc = V::zero();
    let mut j = 0;
    while j + l <= n {
        // SAFETY: j + LANES <= n = s.len().
        unsafe {
            let p = s.as_mut_ptr().add(j);
            let e = V::load(p).sub(vm).exp();
            e.store(p);
            acc = acc.add(e);
        }
        j += l;
    }
    let mut sum = acc.reduce_sum();
    while j < n {
        let e = (s[j] - m).exp();
        s[j] = e;
        sum += e;
        j += 1;
    }
    sum
}

/// Σ x[k]·y[k] over C floats, with four independent accumulators so the loop runs at load
/// speed rather than at FMA latency.
///
/// # Safety
/// x and y each point to C readable floats.
#[inline(always)]
pub(crate) unsafe fn dot_ptr<V: F32Vec, E: Elem>(x: *const f32, y: *const E, c: usize) -> f32 {
    // SAFETY: the caller's contract.
    unsafe { dot_rows_ptr::<V, E, 1>([x], y, c)[0] }
}

/// `dot_ptr` of each of R rows x[r] with the same y, sharing the loads of y: each result
/// has the bits `dot_ptr(x[r], y, c)` gives alone (the same accumulators, the same order).
///
/// # Safety
/// Each x[r] and y point to C readable floats.
#[inline(always)]
pub(crate) unsafe fn dot_rows_ptr<V: F32Vec, E: Elem, const R: usize>(x: [*const f32; R], y: *const E, c: usize) -> [f32; R] {
    let l = V::LANES;
    let mut acc = [[V::zero(); 4]; R];
    let mut k = 0;
    // SAFETY (every load): k + 4·LANES (or + LANES, or + 1) <= C floats of each row.
    unsafe {
        while k + 4 * l <= c {
            for u in 0..4 {
                let kk = k + u * l;
                let yv = E::load::<V>(y.add(kk));
                for r in 0..R {
                    acc[r][u] = V::load(x[r].add(kk)).mul_add(yv, acc[r][u]);
                }
            }
            k += 4 * l;
        }
        while k + l <= c {
            let yv = E::load::<V>(y.add(k));
            for r in 0..R {
                acc[r][0] = V::load(x[r].add(k)).mul_add(yv, acc[r][0]);
            }
            k += l;
        }
        core::array::from_fn(|r| {
            let a = &acc[r];
            let mut s = a[0].add(a[1]).add(a[2].add(a[3])).reduce_sum();
            for kk in k..c {
                s += *x[r].add(kk) * (*y.add(kk)).widen();
            }
            s
        })
    }
}

/// Σ x ∘ y over x.len() floats (y must hold at least that many).
#[inline(always)]
pub(crate) fn dot<V: F32Vec>(x: &[f32], y: &[f32]) -> f32 {
    let y = &y[..x.len()];
    // SAFETY: x and y both hold x.len() floats.
    unsafe { dot_ptr::<V, f32>(x.as_ptr(), y.as_ptr(), x.len()) }
}

/// acc += x over equal-length rows.
#[inline(always)]
pub(crate) fn acc_into<V: F32Vec>(acc: &mut [f32], x: &[f32]) {
    let n = acc.len();
    let x = &x[..n];
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and both rows hold n floats.
        unsafe { V::load(acc.as_ptr().add(i)).add(V::load(x.as_ptr().add(i))).store(acc.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        acc[i] += x[i];
        i += 1;
    }
}

/// ln x for x >= 1 (a softmax sum: its largest term is exp(0)), within an ulp or so of
/// f32::ln. Plain arithmetic on the bits (Cephes logf), so that the loop over a tile's
/// rows vectorises: f32::ln is a libm call per row. NaN stays NaN.
#[inline(always)]
pub(crate) fn ln_pos(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m 2^e with m in [0.5, 1).
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Then m in [sqrt(1/2), sqrt(2)), z = m - 1.
    let z = if m < core::f32::consts::FRAC_1_SQRT_2 {
        e -= 1;
        m + m - 1.0
    } else {
        m - 1.0
    };
    let e = e as f32;
    let zz = z * z;
    let mut y = 7.037_683_6e-2;
    y = y * z - 1.151_461e-1;
    y = y * z + 1.167_699_9e-1;
    y = y * z - 1.242_014_1e-1;
    y = y * z + 1.424_932_3e-1;
    y = y * z - 1.666_805_8e-1;
    y = y * z + 2.000_071_4e-1;
    y = y * z - 2.499_999_4e-1;
    y = y * z + 3.333_333e-1;
    y = y * z * zz;
    y += LN2_LO * e; // ln 2 = LN2_HI + LN2_LO
    y += -0.5 * zz;
    let r = z + y + LN2_HI * e;
    if x.is_nan() {
        x
    } else {
        r
    }
}
