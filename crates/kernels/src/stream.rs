//! STREAM's copy and triad (McCalpin), the memory-bandwidth figures the decode benchmarks
//! divide by (feature `bench`): a[i] = b[i], and a[i] = b[i] + s·c[i], over arrays far
//! larger than the caches, split into one contiguous range per thread. Bytes are counted as
//! STREAM counts them: 2 and 3 arrays' worth per pass (the write-allocate reads of a's
//! lines are not counted). Not numerics kernels.

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
