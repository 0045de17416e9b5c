//! The machine's peak fp32 FMA rate, measured: independent FMA chains on the widest
//! vector unit available, enough of them to cover latency. Benchmarks report every
//! kernel as a fraction of this number.
//!
//! On wasm32 std has no clock: JS times `fma_work` itself (performance.now() around the
//! call) and turns it into GFLOPS with `fma_lanes`:
//! GFLOPS = 2 · fma_lanes() · iters / seconds / 1e9.

use crate::simd::F32Vec;
use crate::simd_kernel;

/// Independent accumulator chains. Two FMA ports × 4-cycle latency need 8 in flight; 16
/// leaves headroom for CPUs with longer latency and still fits 32 zmm / 32 q registers.
/// On simd128 (a multiply, then a dependent add) 12 and 16 chains time the same in V8.
const CHAINS: usize = 16;

/// Runs about `iters` FMA vector instructions on this thread and returns GFLOPS
/// (2 flops per lane per FMA). On wasm32 there is no clock in std: returns NaN (time
/// `fma_work` from JS instead).
pub fn peak_gflops(iters: u64) -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        measure(iters)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = iters;
        f64::NAN
    }
}

/// The untimed loop behind `peak_gflops`: about `iters` vector multiply-adds (rounded
/// down to a multiple of the chain count, at least one round) on this thread. Returns a
/// value derived from every chain so that the work cannot be optimised away; callers
/// only need to keep it (e.g. return it to JS).
pub fn fma_work(iters: u64) -> f32 {
    let rounds = (iters / CHAINS as u64).max(1);
    // A seed the compiler cannot know (it depends on the argument): with constants it
    // folds chains that start at the fixed point of x*m + a.
    let seed = 2.0 + (iters % 2) as f32 * 1e-3;
    fma_chains(rounds, seed).1
}

/// f32 lanes per vector multiply-add in `fma_work` (16 AVX-512, 8 AVX2, 4 NEON and
/// simd128, 1 scalar).
pub fn fma_lanes() -> usize {
    fma_chains(0, 0.0).0
}

/// Vector multiply-adds `fma_work(iters)` actually runs.
pub fn fma_work_count(iters: u64) -> u64 {
    (iters / CHAINS as u64).max(1) * CHAINS as u64
}

#[cfg(not(target_arch = "wasm32"))]
fn measure(iters: u64) -> f64 {
    // Warm up: the wide units run slower for a few µs after being idle.
    fma_work((iters / 8).max(1));
    // A volatile read: a constant `iters` (as in the benchmarks) must not make the seed
    // a compile-time constant.
    let iters = std::hint::black_box(iters);
    let start = std::time::Instant::now();
    let sink = fma_work(iters);
    let secs = start.elapsed().as_secs_f64();
    // Using the result keeps the loop alive.
    if sink == f32::INFINITY {
        return f64::NAN;
    }
    2.0 * fma_lanes() as f64 * fma_work_count(iters) as f64 / secs / 1e9
}

simd_kernel! {
    /// CHAINS independent FMA chains for `rounds` rounds: (lanes, sum of the results).
    fn fma_chains(rounds: u64, seed: f32) -> (usize, f32) => fma_chains_impl
}

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn fma_chains_impl<V: F32Vec>(rounds: u64, seed: f32) -> (usize, f32) {
    // x = x*m + a stays bounded (fixed point a/(1-m)): no denormals or infinities.
    let m = V::splat(0.999_999);
    let a = V::splat(1e-6);
    let mut acc = [V::zero(); CHAINS];
    // Distinct, run-time starting values: a chain that starts at a known constant
    // can be partly folded away by the compiler.
    for i in 0..CHAINS {
        acc[i] = V::splat(seed + i as f32);
    }
    for _ in 0..rounds {
        for i in 0..CHAINS {
            acc[i] = acc[i].mul_add(m, a);
        }
    }
    let mut s = V::zero();
    for i in 0..CHAINS {
        s = s.add(acc[i]);
    }
    (V::LANES, s.reduce_sum())
}
