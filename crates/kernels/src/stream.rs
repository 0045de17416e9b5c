//! The memory-bandwidth probes the decode benchmarks divide by (feature `bench`), each over
//! arrays far larger than the caches, split into one contiguous range per thread:
//! - STREAM's copy and triad (McCalpin): a[i] = b[i], and a[i] = b[i] + s·c[i]. Bytes are
//!   counted as STREAM counts them: 2 and 3 arrays' worth per pass (the write-allocate
//!   reads of a's lines are not counted);
//! - `stream_read`: Σ x, each float read once (the addon's memoryBandwidth).
//! Not numerics kernels.

use crate::parallel::SyncPtr;
use crate::simd::F32Vec;
use crate::{simd_kernel, Parallel};

/// a = b (copy) or a = b + s·c (triad, when `c` is given), split over the pool's threads.
pub fn stream_pass(par: &dyn Parallel, a: &mut [f32], b: &[f32], c: Option<&[f32]>, s: f32) {
    let n = a.len();
    assert!(b.len() >= n && c.is_none_or(|c| c.len() >= n), "stream_pass: arrays too small");
    let threads = par.threads().max(1);
    let dst = SyncPtr(a.as_mut_ptr());
    let cp = c.map_or(core::ptr::null(), |c| c.as_ptr());
    let cp = SyncPtr(cp as *mut f32);
    par.for_each(threads, &|task, _thread| {
        let (lo, hi) = (task * n / threads, (task + 1) * n / threads);
        // SAFETY: tasks own disjoint ranges lo..hi of a; b and c hold at least n floats.
        unsafe {
            let c = cp.get();
            stream_range(dst.get().add(lo), b.as_ptr().add(lo), if c.is_null() { c } else { c.add(lo) }, s, hi - lo)
        }
    });
}

simd_kernel! {
    /// a (N) = b (or b + s·c when c is not null). Safety: the three hold N floats; a is this task's.
    unsafe fn stream_range(a: *mut f32, b: *const f32, c: *const f32, s: f32, n: usize) => stream_range_impl
}

#[inline(always)]
fn stream_range_impl<V: F32Vec>(a: *mut f32, b: *const f32, c: *const f32, s: f32, n: usize) {
    let l = V::LANES;
    let sv = V::splat(s);
    let mut i = 0;
    // SAFETY (both loops): i + LANES <= n, or i < n, inside the caller's arrays.
    unsafe {
        if c.is_null() {
            while i + l <= n {
                V::load(b.add(i)).store(a.add(i));
                i += l;
            }
            while i < n {
                *a.add(i) = *b.add(i);
                i += 1;
            }
        } else {
            while i + l <= n {
                V::load(c.add(i)).mul_add(sv, V::load(b.add(i))).store(a.add(i));
                i += l;
            }
            while i < n {
                *a.add(i) = *b.add(i) + s * *c.add(i);
                i += 1;
            }
        }
    }
}

/// Σ x over x (N), split over the pool's threads; `partials` holds at least `threads`
/// floats. A read-bandwidth probe (each float is read once).
pub fn stream_read(par: &dyn Parallel, partials: &mut [f32], x: &[f32]) -> f64 {
    let threads = par.threads().max(1);
    assert!(partials.len() >= threads, "stream_read: partials too small");
    let n = x.len();
    let sums = SyncPtr(partials.as_mut_ptr());
    par.for_each(threads, &|task, _thread| {
        let (lo, hi) = (task * n / threads, (task + 1) * n / threads);
        // SAFETY: lo..hi lies inside x; task < threads <= partials.len(), and only this
        // task writes partials[task].
        unsafe { *sums.get().add(task) = sum_range(x.as_ptr().add(lo), hi - lo) }
    });
    partials[..threads].iter().map(|&p| p as f64).sum()
}

simd_kernel! {
    /// Σ x (N). Safety: x holds N floats.
    unsafe fn sum_range(x: *const f32, n: usize) -> f32 => sum_range_impl
}

#[inline(always)]
fn sum_range_impl<V: F32Vec>(x: *const f32, n: usize) -> f32 {
    let l = V::LANES;
    let mut acc = [V::zero(); 4];
    let mut i = 0;
    // SAFETY (both loops): i + 4·LANES <= n, or i < n, inside x.
    unsafe {
        while i + 4 * l <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                *a = a.add(V::load(x.add(i + u * l)));
            }
            i += 4 * l;
        }
        let mut s = acc[0].add(acc[1]).add(acc[2].add(acc[3])).reduce_sum();
        while i < n {
            s += *x.add(i);
            i += 1;
        }
        s
    }
}
