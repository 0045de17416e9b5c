//! Residual connection: out = inp1 + inp2.

use crate::simd::F32Vec;
use crate::simd_kernel;

simd_kernel! {
    /// out (N) = inp1 (N) + inp2 (N).
    pub fn residual_forward(out: &mut [f32], inp1: &[f32], inp2: &[f32], n: usize) => residual_forward_impl
}

#[inline(always)]
fn residual_forward_impl<V: F32Vec>(out: &mut [f32], inp1: &[f32], inp2: &[f32], n: usize) {
    let out = &mut out[..n]; // (N)
    let inp1 = &inp1[..n]; // (N)
    let inp2 = &inp2[..n]; // (N)
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and the three slices hold n floats.
        unsafe { V::load(inp1.as_ptr().add(i)).add(V::load(inp2.as_ptr().add(i))).store(out.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        out[i] = inp1[i] + inp2[i];
        i += 1;
    }
}

simd_kernel! {
    /// dinp1 (N) += dout; dinp2 (N) += dout. Accumulates.
    pub fn residual_backward(dinp1: &mut [f32], dinp2: &mut [f32], dout: &[f32], n: usize) => residual_backward_impl
}

#[inline(always)]
fn residual_backward_impl<V: F32Vec>(dinp1: &mut [f32], dinp2: &mut [f32], dout: &[f32], n: usize) {
    let dinp1 = &mut dinp1[..n]; // (N)
    let dinp2 = &mut dinp2[..n]; // (N)
    let dout = &dout[..n]; // (N)
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and the three slices hold n floats.
        unsafe {
            let g = V::load(dout.as_ptr().add(i));
            V::load(dinp1.as_ptr().add(i)).add(g).store(dinp1.as_mut_ptr().add(i));
            V::load(dinp2.as_ptr().add(i)).add(g).store(dinp2.as_mut_ptr().add(i));
        }
        i += l;
    }
    while i < n {
        dinp1[i] += dout[i];
        dinp2[i] += dout[i];
        i += 1;
    }
}
