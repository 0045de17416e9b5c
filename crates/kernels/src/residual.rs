//! Residual connection: out = inp1 + inp2.

use crate::parallel::{for_parts, for_ranges, SyncPtr};
use crate::simd::F32Vec;
use crate::{simd_kernel, Parallel};

/// out (N) = inp1 (N) + inp2 (N), split across `par`'s threads when large.
pub fn residual_forward(par: &dyn Parallel, out: &mut [f32], inp1: &[f32], inp2: &[f32], n: usize) {
    let (inp1, inp2) = (&inp1[..n], &inp2[..n]);
    for_parts(par, &mut out[..n], &|lo, o| residual_forward_part(o, &inp1[lo..lo + o.len()], &inp2[lo..lo + o.len()], o.len()));
}

simd_kernel! {
    /// residual_forward on this thread.
    fn residual_forward_part(out: &mut [f32], inp1: &[f32], inp2: &[f32], n: usize) => residual_forward_impl
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

/// dinp1 (N) += dout; dinp2 (N) += dout. Accumulates. Split across `par`'s threads when large.
pub fn residual_backward(par: &dyn Parallel, dinp1: &mut [f32], dinp2: &mut [f32], dout: &[f32], n: usize) {
    let (d1, d2, dout) = (SyncPtr(dinp1[..n].as_mut_ptr()), SyncPtr(dinp2[..n].as_mut_ptr()), &dout[..n]);
    for_ranges(par, n, &|lo, hi| {
        // SAFETY: lo..hi lies inside dinp1 and dinp2 (N each) and no other range overlaps it.
        let (d1, d2) = unsafe { (core::slice::from_raw_parts_mut(d1.get().add(lo), hi - lo), core::slice::from_raw_parts_mut(d2.get().add(lo), hi - lo)) };
        residual_backward_part(d1, d2, &dout[lo..hi], hi - lo)
    });
}

simd_kernel! {
    /// residual_backward on this thread.
    fn residual_backward_part(dinp1: &mut [f32], dinp2: &mut [f32], dout: &[f32], n: usize) => residual_backward_impl
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
