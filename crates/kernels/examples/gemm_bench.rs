//! Dev tool for tuning the GEMM: GFLOPS of matmul_forward / matmul_backward on the GPT-2
//! shapes, on 1 and 2 threads, as a fraction of this thread's measured peak.
//!
//!   cargo run --release -p ferrogpt-kernels --example gemm_bench [-- fwd|bwd] [bf16] [threads...] [N,C,OC...]
//!
//! `bf16` times the bf16 mixed-precision products instead (matmul_forward_bf16 and
//! matmul_backward_bf16, bf16 weights); %peak stays a fraction of the f32 FMA peak.
//!
//! GEMM_PEAK=<GFLOPS> uses that peak instead of measuring it (for A/B comparisons).
//!
//! The node addon's pool is compiled in (crates/kernels cannot depend on crates/node).

#[path = "../../node/src/pool.rs"]
#[allow(dead_code)]
mod pool;

use ferrogpt_kernels::compact::{bf16_round, matmul_bf16_scratch_len, matmul_forward_bf16};
use ferrogpt_kernels::matmul::{matmul_backward, matmul_forward, matmul_scratch_len};
use ferrogpt_kernels::mixed::{matmul_backward_bf16, matmul_backward_bf16_scratch_len};
use ferrogpt_kernels::peak::peak_gflops;
use ferrogpt_kernels::{Parallel, Serial};
use std::time::Instant;

#[path = "common/clock.rs"]
mod clock;
use clock::{cpu_secs, PROCESS_CPU, THREAD_CPU};

/// Best (wall, process CPU, thread CPU) seconds over repeats of `f` (at least 5 runs and
/// about 0.6 s): noise only adds.
fn best_secs(mut f: impl FnMut()) -> (f64, f64, f64) {
    f();
    let mut best = (f64::MAX, f64::MAX, f64::MAX);
    let start = Instant::now();
    let mut runs = 0;
    while runs < 5 || start.elapsed().as_secs_f64() < 0.6 {
        let (t, p, c) = (Instant::now(), cpu_secs(PROCESS_CPU), cpu_secs(THREAD_CPU));
        f();
        best.0 = best.0.min(t.elapsed().as_secs_f64());
        best.1 = best.1.min(cpu_secs(PROCESS_CPU) - p); // kept for debugging; not printed
        best.2 = best.2.min(cpu_secs(THREAD_CPU) - c);
        runs += 1;
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fwd = !args.iter().any(|a| a == "bwd");
    let bwd = !args.iter().any(|a| a == "fwd");
    let bf16 = args.iter().any(|a| a == "bf16");
    let mut thread_counts: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if thread_counts.is_empty() {
        thread_counts = vec![1, 2];
    }
    // peak_gflops uses wall time; scale it by wall/CPU time of the same run. Measured
    // between shapes too, and the best kept: noise only lowers it.
    let measure_peak = || {
        (0..10)
            .map(|_| {
                let (t, c) = (Instant::now(), cpu_secs(THREAD_CPU));
                let g = peak_gflops(100_000_000);
                g * t.elapsed().as_secs_f64() / (cpu_secs(THREAD_CPU) - c)
            })
            .fold(0.0, f64::max)
    };
    // GEMM_PEAK=<GFLOPS> fixes the reference instead of measuring it: on a loaded machine
    // the measured peak itself varies by ±10% from run to run, which would blur an A/B.
    let fixed_peak: Option<f64> = std::env::var("GEMM_PEAK").ok().and_then(|v| v.parse().ok());
    let mut peak = fixed_peak.unwrap_or_else(measure_peak);
    let mut rows = Vec::new(); // (shape, threads, fwd secs, bwd secs, flops)

    let mut shapes: Vec<(usize, usize, usize)> = vec![(1024, 768, 768), (1024, 768, 3072), (1024, 3072, 768), (1024, 768, 2304), (256, 768, 50257), (64, 768, 768), (17, 100, 33)];
    // Arguments like 1024,768,3072 pick shapes instead of the GPT-2 list.
    let picked: Vec<(usize, usize, usize)> = args
        .iter()
        .filter_map(|a| {
            let d: Vec<usize> = a.split(',').filter_map(|x| x.parse().ok()).collect();
            if d.len() == 3 {
                Some((d[0], d[1], d[2]))
            } else {
                None
            }
        })
        .collect();
    if !picked.is_empty() {
        shapes = picked;
    }
    // GEMM_ROTATE=R cycles through R copies of every operand, as a training step does
    // (each layer's activations are fresh memory): caches then start cold-ish, not hot.
    let rotate: usize = std::env::var("GEMM_ROTATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    for &(n, c, oc) in &shapes {
        // Varied values, as in training, not constants.
        let sets = |len: usize, v: f32| -> Vec<Vec<f32>> {
            let mut x = 0x9e37_79b9u32 ^ len as u32; // xorshift32
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v * (x as f32 / u32::MAX as f32 - 0.5)
            };
            (0..rotate).map(|_| (0..len).map(|_| next()).collect()).collect()
        };
        let inp = sets(n * c, 0.5); // (N, C)
        let weight = sets(oc * c, 0.25); // (OC, C)
        let weight16: Vec<Vec<u16>> = weight.iter().map(|w| w.iter().map(|&x| bf16_round(x)).collect()).collect();
        let bias = vec![0.1f32; oc]; // (OC)
        let mut out = sets(n * oc, 0.0); // (N, OC)
        let mut dinp = sets(n * c, 0.0); // (N, C)
        let mut dweight = sets(oc * c, 0.0); // (OC, C)
        let mut dbias = vec![0f32; oc]; // (OC)
        let flops = 2.0 * (n * c * oc) as f64;
        for &t in &thread_counts {
            let pool = pool::Pool::new(t);
            let par: &dyn Parallel = if t == 1 { &Serial } else { &pool };
            let len = if bf16 { matmul_bf16_scratch_len(n, c, oc, t).max(matmul_backward_bf16_scratch_len(n, c, oc, t)) } else { matmul_scratch_len(n, c, oc, t) };
            let mut scratch = vec![0f32; len];
            let nan = (f64::NAN, f64::NAN, f64::NAN);
            let (mut sf, mut sb) = (nan, nan);
            let mut r = 0;
            if fwd {
                sf = best_secs(|| {
                    r = (r + 1) % rotate;
                    if bf16 {
                        matmul_forward_bf16(par, &mut scratch, &mut out[r], &inp[r], &weight16[r], Some(&bias), n, c, oc, false)
                    } else {
                        matmul_forward(par, &mut scratch, &mut out[r], &inp[r], &weight[r], Some(&bias), n, c, oc, false)
                    }
                });
            }
            if bwd {
                sb = best_secs(|| {
                    r = (r + 1) % rotate;
                    if bf16 {
                        matmul_backward_bf16(par, &mut scratch, &mut dinp[r], Some(&mut dweight[r]), Some(&mut dbias), &out[r], &inp[r], &weight16[r], n, c, oc, false)
                    } else {
                        matmul_backward(par, &mut scratch, &mut dinp[r], Some(&mut dweight[r]), Some(&mut dbias), &out[r], &inp[r], &weight[r], n, c, oc, false)
                    }
                });
            }
            rows.push((format!("{n},{c},{oc}"), t, sf, sb, flops));
        }
    }
    if fixed_peak.is_none() {
        peak = peak.max(measure_peak());
    }
    println!("{}simd {}  peak {:.1} GFLOPS/thread (CPU time)", if bf16 { "bf16 products, " } else { "" }, ferrogpt_kernels::simd::simd_name(), peak);
    println!("GF: by wall time (best run); %: of threads × peak; cpu%: 1 thread only, by thread CPU time");
    println!("{:>16} {:>4} {:>8} {:>6} {:>6} {:>8} {:>6} {:>6}", "N,C,OC", "thr", "fwd GF", "%peak", "cpu%", "bwd GF", "%peak", "cpu%");
    for (shape, t, sf, sb, flops) in rows {
        let rate = |s: (f64, f64, f64), fl: f64| {
            // 1 thread only: with more, the process CPU clock read back impossible rates
            // (over 100% of a core's peak) on this VM.
            let cpu = if t == 1 { 100.0 * fl / s.2 / 1e9 / peak } else { f64::NAN };
            (fl / s.0 / 1e9, 100.0 * fl / s.0 / 1e9 / (peak * t as f64), cpu)
        };
        let (f, b) = (rate(sf, flops), rate(sb, 2.0 * flops));
        println!("{:>16} {:>4} {:>8.1} {:>5.1}% {:>5.1}% {:>8.1} {:>5.1}% {:>5.1}%", shape, t, f.0, f.1, f.2, b.0, b.1, b.2);
    }
}
