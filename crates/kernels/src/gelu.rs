//! GELU, tanh approximation (GPT-2's "gelu_new"):
//! gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
//!
//! We never evaluate tanh directly: 0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + exp(-2u)),
//! which stays accurate (in relative terms) for very negative x, where 1 + tanh(u) would
//! cancel catastrophically.

use crate::parallel::for_parts;
use crate::simd::math::{exp_scalar, VecMath};
use crate::{simd_kernel, Parallel};

const SQRT_2_OVER_PI: f32 = 0.797_884_6; // sqrt(2/pi)
const GELU_A: f32 = 0.044715;

/// out (N) = gelu(inp (N)), split across `par`'s threads when large (the same bits).
pub fn gelu_forward(par: &dyn Parallel, out: &mut [f32], inp: &[f32], n: usize) {
    let inp = &inp[..n];
    for_parts(par, &mut out[..n], &|lo, out| gelu_forward_part(out, &inp[lo..lo + out.len()], out.len()));
}

simd_kernel! {
    /// out (N) = gelu(inp (N)), on this thread.
    fn gelu_forward_part(out: &mut [f32], inp: &[f32], n: usize) => gelu_forward_impl
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

/// dinp (N) += gelu'(inp) * dout: accumulates, or overwrites dinp when `overwrite` (the
/// same bits as zeroing it first). Split across `par`'s threads when large (the same bits).
pub fn gelu_backward(par: &dyn Parallel, dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize, overwrite: bool) {
    let (inp, dout) = (&inp[..n], &dout[..n]);
    for_parts(par, &mut dinp[..n], &|lo, d| gelu_backward_part(d, &inp[lo..lo + d.len()], &dout[lo..lo + d.len()], d.len(), overwrite));
}

simd_kernel! {
    /// gelu_backward on this thread.
    fn gelu_backward_part(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize, overwrite: bool) => gelu_backward_impl
}

// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'(x), u' = sqrt(2/pi)(1 + 3a x^2).
// With s = sigmoid(2u) = 0.5 (1 + tanh u) and 1 - tanh^2 u = 4 s (1 - s), 1 - s = e s:
//   gelu'(x) = s + 2 x s (e s) u'(x),  e = exp(-2u).
#[inline(always)]
fn gelu_backward_impl<V: VecMath>(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize, overwrite: bool) {
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
        let (x, g) = unsafe { (V::load(inp.as_ptr().add(i)), V::load(dout.as_ptr().add(i))) };
        // SAFETY: as above.
        let d = if overwrite { V::zero() } else { unsafe { V::load(dinp.as_ptr().add(i)) } };
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
        let d = if overwrite { 0.0 } else { dinp[i] };
        dinp[i] = d + (s + x * s * (e * s) * du2) * dout[i];
        i += 1;
    }
}
