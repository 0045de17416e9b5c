//! The machine's peak fp32 FMA rate, measured: independent FMA chains on the widest
//! vector unit available, enough of them to cover latency. Benchmarks report every
//! kernel as a fraction of this number.

/// Runs about `iters` FMA vector instructions on this thread and returns GFLOPS
/// (2 flops per lane per FMA). On wasm32 there is no clock in std: returns NaN.
pub fn peak_gflops(iters: u64) -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        chains::measure(iters)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = iters;
        f64::NAN
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod chains {
    use crate::simd::F32Vec;
    use crate::simd_kernel;

    /// Independent accumulator chains. Two FMA ports × 4-cycle latency need 8 in flight;
    /// 16 leaves headroom for CPUs with longer latency and still fits 32 zmm / 32 q
    /// registers.
    const CHAINS: usize = 16;

    pub(super) fn measure(iters: u64) -> f64 {
        let rounds = (iters / CHAINS as u64).max(1);
        // A seed the compiler cannot know: with constants it folds chains that start at
        // the fixed point of x*m + a.
        let seed = 2.0 + (std::time::Instant::now().elapsed().subsec_nanos() % 2) as f32 * 1e-3;
        // Warm up: the wide units run slower for a few µs after being idle.
        fma_chains((rounds / 8).max(1), seed);
        let start = std::time::Instant::now();
        let (lanes, sink) = fma_chains(rounds, seed);
        let secs = start.elapsed().as_secs_f64();
        // Using the result keeps the loop alive.
        if sink == f32::INFINITY {
            return f64::NAN;
        }
        2.0 * lanes as f64 * (rounds * CHAINS as u64) as f64 / secs / 1e9
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
}
