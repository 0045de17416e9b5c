//! Fused softmax + cross-entropy over the vocabulary, with an ignore index. The
//! probabilities are never stored: backward recomputes the softmax from the logits.

use crate::parallel::SyncPtr;
use crate::simd::math::{exp_scalar, VecMath};
use crate::Parallel;

/// losses (N) = -log softmax(logits (N,V))[targets[i]], or 0 where targets[i] == ignore_index.
/// targets (N) in 0..V or == ignore_index (checked by the caller).
pub fn crossentropy_forward(par: &dyn Parallel, losses: &mut [f32], logits: &[f32], targets: &[i32], n: usize, v: usize, ignore_index: i32) {
    let losses = &mut losses[..n]; // (N)
    let logits = &logits[..n * v]; // (N,V)
    let targets = &targets[..n]; // (N)
    let lp = SyncPtr(losses.as_mut_ptr());
    // Rows are independent: one task per row (a row is V ~ 50k floats of work).
    par.for_each(n, &|i, _thread| {
        let tgt = targets[i];
        let loss = if tgt == ignore_index {
            0.0
        } else {
            let row = &logits[i * v..(i + 1) * v]; // (V)
            let (mx, sum) = imp::max_and_sumexp(row);
            // -log(exp(x_t - max) / sum) = max + ln(sum) - x_t
            (mx - row[tgt as usize]) + sum.ln()
        };
        // SAFETY: task i is the only writer of losses[i], and i < n = losses.len().
        unsafe { *lp.get().add(i) = loss };
    });
}

/// dlogits (N,V) += (softmax(logits) - onehot(target)) * dlosses[i]; rows whose target
/// is ignore_index get nothing. Accumulates, or overwrites dlogits when `overwrite` (the
/// same bits as zeroing it first): a language-model head's dlogits is a per-call buffer
/// of N·V floats (206 MB at GPT-2 small), and neither zeroing it nor reading it back is
/// then needed.
#[allow(clippy::too_many_arguments)]
pub fn crossentropy_backward(par: &dyn Parallel, dlogits: &mut [f32], dlosses: &[f32], logits: &[f32], targets: &[i32], n: usize, v: usize, ignore_index: i32, overwrite: bool) {
    let dlogits = &mut dlogits[..n * v]; // (N,V)
    let dlosses = &dlosses[..n]; // (N)
    let logits = &logits[..n * v]; // (N,V)
    let targets = &targets[..n]; // (N)
    let dp = SyncPtr(dlogits.as_mut_ptr());
    par.for_each(n, &|i, _thread| {
        // SAFETY: task i alone touches dlogits row i, which lies inside the (N,V) buffer.
        let drow = unsafe { std::slice::from_raw_parts_mut(dp.get().add(i * v), v) }; // (V)
        let tgt = targets[i];
        if tgt == ignore_index {
            if overwrite {
                drow.fill(0.0);
            }
            return;
        }
        let row = &logits[i * v..(i + 1) * v]; // (V)
        let (mx, sum) = imp::max_and_sumexp(row);
        let dl = dlosses[i];
        imp::softmax_grad(drow, row, mx, dl / sum, overwrite);
        drow[tgt as usize] -= dl;
    });
}

mod imp {
    use super::*;

    crate::simd_kernel! {
        /// (max of row, sum of exp(row - max)).
        pub fn max_and_sumexp(row: &[f32]) -> (f32, f32) => max_and_sumexp_impl
    }

    crate::simd_kernel! {
        /// drow += exp(row - mx) * k, or drow = exp(row - mx) * k when `overwrite`.
        pub fn softmax_grad(drow: &mut [f32], row: &[f32], mx: f32, k: f32, overwrite: bool) => softmax_grad_impl
    }
}

#[inline(always)]
fn max_and_sumexp_impl<V: VecMath>(row: &[f32]) -> (f32, f32) {
    let n = row.len();
    let l = V::LANES;
    // Max first (numerical stability: every exponent is <= 0).
    let mut vmax = V::splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n = row.len().
        vmax = vmax.max(unsafe { V::load(row.as_ptr().add(i)) });
        i += l;
    }
    let mut mx = vmax.reduce_max();
    while i < n {
        mx = mx.max(row[i]);
        i += 1;
    }
    let vm = V::splat(mx);
    // Two accumulators hide the add latency behind the exp.
    let (mut s0, mut s1) = (V::zero(), V::zero());
    let mut i = 0;
    while i + 2 * l <= n {
        // SAFETY: i + 2 LANES <= n.
        unsafe {
            s0 = s0.add(V::load(row.as_ptr().add(i)).sub(vm).exp());
            s1 = s1.add(V::load(row.as_ptr().add(i + l)).sub(vm).exp());
        }
        i += 2 * l;
    }
    while i + l <= n {
        // SAFETY: i + LANES <= n.
        s0 = s0.add(unsafe { V::load(row.as_ptr().add(i)) }.sub(vm).exp());
        i += l;
    }
    let mut sum = s0.add(s1).reduce_sum();
    while i < n {
        sum += exp_scalar(row[i] - mx);
        i += 1;
    }
    (mx, sum)
}

#[inline(always)]
fn softmax_grad_impl<V: VecMath>(drow: &mut [f32], row: &[f32], mx: f32, k: f32, overwrite: bool) {
    let n = row.len();
    let drow = &mut drow[..n];
    let l = V::LANES;
    let (vm, vk) = (V::splat(mx), V::splat(k));
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and both rows hold n floats.
        unsafe {
            let p = V::load(row.as_ptr().add(i)).sub(vm).exp();
            let d = if overwrite { V::zero() } else { V::load(drow.as_ptr().add(i)) };
            p.mul_add(vk, d).store(drow.as_mut_ptr().add(i));
        }
        i += l;
    }
    while i < n {
        let d = if overwrite { 0.0 } else { drow[i] };
        drow[i] = d + exp_scalar(row[i] - mx) * k;
        i += 1;
    }
}
