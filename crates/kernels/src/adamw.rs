//! AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias correction.

use crate::parallel::{for_ranges, SyncPtr};
use crate::simd::math::VecMath;
use crate::Parallel;

/// One update of params (N) from grads (N), with first/second moments m (N), v (N):
///   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
///   param = param (1 - lr weight_decay) - lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
/// step counts from 1. The caller applies weight_decay = 0 to tensors it exempts.
/// Memory-bound (7 floats of traffic per parameter), so large updates are split across
/// `par`'s threads in the fixed ranges of `for_ranges`; results are the same on any number
/// of threads.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update(par: &dyn Parallel, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], n: usize, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, step: u32) {
    // Bias corrections in f64: 1 - b2^step is tiny for small steps and b2 close to 1.
    let step = step.max(1) as i32;
    // PyTorch's form: p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), with
    // the bias corrections folded into constants: one division and one square root per
    // element, where m / bc1, v / bc2 and the update took three divisions.
    let bc1 = 1.0 - (beta1 as f64).powi(step);
    let bc2 = 1.0 - (beta2 as f64).powi(step);
    let step_size = (lr as f64 / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let decay = (1.0 - lr as f64 * weight_decay as f64) as f32;
    let (params, grads, m, v) = (&mut params[..n], &grads[..n], &mut m[..n], &mut v[..n]); // (N) each
    let (p, mm, vv) = (SyncPtr(params.as_mut_ptr()), SyncPtr(m.as_mut_ptr()), SyncPtr(v.as_mut_ptr()));
    for_ranges(par, n, &|lo, hi| {
        // SAFETY: lo..hi lies inside the three (N) buffers and no other range overlaps it.
        let (p, mm, vv) = unsafe {
            (
                core::slice::from_raw_parts_mut(p.get().add(lo), hi - lo),
                core::slice::from_raw_parts_mut(mm.get().add(lo), hi - lo),
                core::slice::from_raw_parts_mut(vv.get().add(lo), hi - lo),
            )
        };
        imp::adamw_kernel(p, &grads[lo..hi], mm, vv, hi - lo, beta1, beta2, eps, step_size, inv_sqrt_bc2, decay);
    });
}

// A private module keeps the dispatched kernel out of the public API.
mod imp {
    use super::adamw_impl;
    crate::simd_kernel! {
        /// The elementwise body of `adamw_update`, given lr / bc1, 1 / sqrt(bc2) and 1 - lr·wd.
        pub fn adamw_kernel(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], n: usize, beta1: f32, beta2: f32, eps: f32, step_size: f32, inv_sqrt_bc2: f32, decay: f32) => adamw_impl
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adamw_impl<V: VecMath>(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], n: usize, beta1: f32, beta2: f32, eps: f32, step_size: f32, inv_sqrt_bc2: f32, decay: f32) {
    let params = &mut params[..n]; // (N)
    let grads = &grads[..n]; // (N)
    let m = &mut m[..n]; // (N)
    let v = &mut v[..n]; // (N)
    let l = V::LANES;
    let (b1, b2) = (V::splat(beta1), V::splat(beta2));
    let (ob1, ob2) = (V::splat(1.0 - beta1), V::splat(1.0 - beta2));
    let (vstep, vinv, vdecay, veps) = (V::splat(step_size), V::splat(inv_sqrt_bc2), V::splat(decay), V::splat(eps));
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and all four slices hold n floats.
        unsafe {
            let g = V::load(grads.as_ptr().add(i));
            let p = V::load(params.as_ptr().add(i));
            let mi = b1.mul(V::load(m.as_ptr().add(i))).add(ob1.mul(g));
            let vi = b2.mul(V::load(v.as_ptr().add(i))).add(ob2.mul(g.mul(g)));
            mi.store(m.as_mut_ptr().add(i));
            vi.store(v.as_mut_ptr().add(i));
            let denom = vi.sqrt().mul(vinv).add(veps);
            p.mul(vdecay).sub(vstep.mul(mi.div(denom))).store(params.as_mut_ptr().add(i));
        }
        i += l;
    }
    while i < n {
        let g = grads[i];
        let mi = beta1 * m[i] + (1.0 - beta1) * g;
        let vi = beta2 * v[i] + (1.0 - beta2) * (g * g);
        m[i] = mi;
        v[i] = vi;
        let denom = vi.sqrt() * inv_sqrt_bc2 + eps;
        params[i] = params[i] * decay - step_size * (mi / denom);
        i += 1;
    }
}
