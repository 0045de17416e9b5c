//! The machine's peak fp32 FMA rate, measured: independent FMA chains on the widest
//! vector unit available, enough of them to cover latency. Benchmarks report every
//! kernel as a fraction of this number.

/// Runs about `iters` FMA vector instructions on this thread and returns GFLOPS
/// (2 flops per lane per FMA).
pub fn peak_gflops(iters: u64) -> f64 {
    let _ = iters;
    unimplemented!("peak_gflops")
}
