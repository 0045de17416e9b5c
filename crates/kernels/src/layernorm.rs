//! LayerNorm over the last dimension, eps = 1e-5 (GPT-2).

use crate::parallel::{SyncPtr, RANGE, RANGE_PAR_MIN};
use crate::simd::F32Vec;
use crate::{simd_kernel, Parallel};

const EPS: f32 = 1e-5;

/// Sum of a row, vectorised (one vector accumulator plus a scalar tail).
#[inline(always)]
fn row_sum<V: F32Vec>(x: &[f32]) -> f32 {
    let n = x.len();
    let l = V::LANES;
    let mut acc = V::zero();
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n = x.len().
        acc = acc.add(unsafe { V::load(x.as_ptr().add(i)) });
        i += l;
    }
    let mut s = acc.reduce_sum();
    while i < n {
        s += x[i];
        i += 1;
    }
    s
}

/// out (N,C) = (inp - mean) * rstd * weight + bias; also stores mean (N) and rstd (N) for
/// the backward pass. inp (N,C), weight (C), bias (C). Rows are independent: large calls
/// split them across `par`'s threads (the same bits).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(par: &dyn Parallel, out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], weight: &[f32], bias: &[f32], n: usize, c: usize) {
    let (out, mean, rstd, inp) = (&mut out[..n * c], &mut mean[..n], &mut rstd[..n], &inp[..n * c]);
    let rows = (RANGE / c.max(1)).max(1); // per task
    if n * c < RANGE_PAR_MIN || par.threads() <= 1 || n <= rows {
        layernorm_forward_rows(out, mean, rstd, inp, weight, bias, n, c);
        return;
    }
    let (o, m, r) = (SyncPtr(out.as_mut_ptr()), SyncPtr(mean.as_mut_ptr()), SyncPtr(rstd.as_mut_ptr()));
    par.for_each((n + rows - 1) / rows, &|task, _| {
        let (r0, r1) = (task * rows, ((task + 1) * rows).min(n));
        let k = r1 - r0;
        // SAFETY: rows r0..r1 of out (N,C), mean (N) and rstd (N): inside them, and no
        // other task's.
        let (o, m, r) = unsafe {
            (
                core::slice::from_raw_parts_mut(o.get().add(r0 * c), k * c),
                core::slice::from_raw_parts_mut(m.get().add(r0), k),
                core::slice::from_raw_parts_mut(r.get().add(r0), k),
            )
        };
        layernorm_forward_rows(o, m, r, &inp[r0 * c..r1 * c], weight, bias, k, c);
    });
}

simd_kernel! {
    /// layernorm_forward on this thread.
    fn layernorm_forward_rows(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], weight: &[f32], bias: &[f32], n: usize, c: usize) => layernorm_forward_impl
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn layernorm_forward_impl<V: F32Vec>(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], weight: &[f32], bias: &[f32], n: usize, c: usize) {
    let weight = &weight[..c]; // (C)
    let bias = &bias[..c]; // (C)
    let l = V::LANES;
    for row in 0..n {
        let x = &inp[row * c..(row + 1) * c]; // (C)
        let o = &mut out[row * c..(row + 1) * c]; // (C)
        // Two passes (mean, then squared deviations) rather than E[x^2] - E[x]^2, which
        // cancels badly when |mean| >> std.
        let m = row_sum::<V>(x) / c as f32;
        let vm = V::splat(m);
        let mut acc = V::zero();
        let mut i = 0;
        while i + l <= c {
            // SAFETY: i + LANES <= c = x.len().
            let d = unsafe { V::load(x.as_ptr().add(i)) }.sub(vm);
            acc = d.mul_add(d, acc);
            i += l;
        }
        let mut var = acc.reduce_sum();
        while i < c {
            let d = x[i] - m;
            var += d * d;
            i += 1;
        }
        var /= c as f32;
        let s = 1.0 / (var + EPS).sqrt();
        let vs = V::splat(s);
        let mut i = 0;
        while i + l <= c {
            // SAFETY: i + LANES <= c and x, o, weight, bias all hold c floats.
            unsafe {
                let nx = V::load(x.as_ptr().add(i)).sub(vm).mul(vs);
                nx.mul_add(V::load(weight.as_ptr().add(i)), V::load(bias.as_ptr().add(i))).store(o.as_mut_ptr().add(i));
            }
            i += l;
        }
        while i < c {
            o[i] = (x[i] - m) * s * weight[i] + bias[i];
            i += 1;
        }
        mean[row] = m;
        rstd[row] = s;
    }
}

simd_kernel! {
    /// Accumulates dinp (N,C), dweight (C), dbias (C) from dout (N,C), using inp, weight and
    /// the saved mean (N) and rstd (N).
    pub fn layernorm_backward(dinp: &mut [f32], dweight: &mut [f32], dbias: &mut [f32], dout: &[f32], inp: &[f32], weight: &[f32], mean: &[f32], rstd: &[f32], n: usize, c: usize) => layernorm_backward_impl
}

// With xhat = (x - mean) rstd and g = weight * dout:
//   dinp = rstd (g - mean(g) - xhat mean(g xhat)),  dweight += xhat dout,  dbias += dout.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn layernorm_backward_impl<V: F32Vec>(dinp: &mut [f32], dweight: &mut [f32], dbias: &mut [f32], dout: &[f32], inp: &[f32], weight: &[f32], mean: &[f32], rstd: &[f32], n: usize, c: usize) {
    let weight = &weight[..c]; // (C)
    let dweight = &mut dweight[..c]; // (C)
    let dbias = &mut dbias[..c]; // (C)
    let l = V::LANES;
    for row in 0..n {
        let x = &inp[row * c..(row + 1) * c]; // (C)
        let dy = &dout[row * c..(row + 1) * c]; // (C)
        let dx = &mut dinp[row * c..(row + 1) * c]; // (C)
        let (m, s) = (mean[row], rstd[row]);
        let (vm, vs) = (V::splat(m), V::splat(s));
        // Pass 1: the two row means.
        let mut a_g = V::zero();
        let mut a_gx = V::zero();
        let mut i = 0;
        while i + l <= c {
            // SAFETY: i + LANES <= c and x, dy, weight hold c floats.
            unsafe {
                let xh = V::load(x.as_ptr().add(i)).sub(vm).mul(vs);
                let g = V::load(weight.as_ptr().add(i)).mul(V::load(dy.as_ptr().add(i)));
                a_g = a_g.add(g);
                a_gx = g.mul_add(xh, a_gx);
            }
            i += l;
        }
        let (mut sg, mut sgx) = (a_g.reduce_sum(), a_gx.reduce_sum());
        while i < c {
            let xh = (x[i] - m) * s;
            let g = weight[i] * dy[i];
            sg += g;
            sgx += g * xh;
            i += 1;
        }
        let mg = sg / c as f32;
        let mgx = sgx / c as f32;
        let (vmg, vmgx) = (V::splat(mg), V::splat(mgx));
        // Pass 2: accumulate the three gradients.
        let mut i = 0;
        while i + l <= c {
            // SAFETY: i + LANES <= c and every row/vector here holds c floats.
            unsafe {
                let xh = V::load(x.as_ptr().add(i)).sub(vm).mul(vs);
                let d = V::load(dy.as_ptr().add(i));
                let g = V::load(weight.as_ptr().add(i)).mul(d);
                V::load(dbias.as_ptr().add(i)).add(d).store(dbias.as_mut_ptr().add(i));
                xh.mul_add(d, V::load(dweight.as_ptr().add(i))).store(dweight.as_mut_ptr().add(i));
                let t = g.sub(vmg).sub(xh.mul(vmgx)).mul(vs);
                V::load(dx.as_ptr().add(i)).add(t).store(dx.as_mut_ptr().add(i));
            }
            i += l;
        }
        while i < c {
            let xh = (x[i] - m) * s;
            let d = dy[i];
            let g = weight[i] * d;
            dbias[i] += d;
            dweight[i] += xh * d;
            dx[i] += (g - mg - xh * mgx) * s;
            i += 1;
        }
    }
}
