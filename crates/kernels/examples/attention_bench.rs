//! Dev tool for tuning the fused attention: ms and GFLOPS of attention_forward /
//! attention_backward on the shapes that matter (nanoGPT, GPT-2 small at T = 256 and
//! 1024), on 1 and 2 threads.
//!
//!   cargo run --release -p ferrogpt-kernels --example attention_bench [-- fwd|bwd|drop] [threads...] [B,NH,T,HS...]
//!
//! `drop` runs with attention dropout (p = 0.1). FLOPs count the causal half only: 4·HS
//! per (query, key <= query) pair forward (q·k and p·v), 10·HS backward (s, dP, dv, dk, dq).
//! Times are the best of many runs: on 1 thread by this thread's CPU time (the machine is
//! shared with compilers), on more by wall time (noisy).
//!
//! Every buffer starts ATTN_OFFSET floats (default 4) past a 64-byte line. The default is
//! where glibc puts large allocations (16 bytes past a page), so where the addon's typed
//! arrays likely are; ATTN_OFFSET=0 gives line-aligned rows, which the kernel reads in place
//! instead of copying.
//!
//! The node addon's pool is compiled in (crates/kernels cannot depend on crates/node).

#[path = "../../node/src/pool.rs"]
#[allow(dead_code)]
mod pool;

use ferrogpt_kernels::attention::{attention_backward, attention_forward, attention_scratch_len};
use ferrogpt_kernels::rng::Dropout;
use ferrogpt_kernels::{Parallel, Serial};
use std::time::Instant;

#[path = "common/clock.rs"]
#[allow(dead_code)] // PROCESS_CPU is for gemm_bench
mod clock;

/// CPU seconds of this thread.
fn thread_cpu_secs() -> f64 {
    clock::cpu_secs(clock::THREAD_CPU)
}

/// Best (wall, thread CPU) seconds over repeats of `f` (at least 10 runs and about 0.5 s):
/// noise only adds.
fn best_secs(mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut best = (f64::MAX, f64::MAX);
    let start = Instant::now();
    let mut runs = 0;
    while runs < 10 || start.elapsed().as_secs_f64() < 0.5 {
        let (t, c) = (Instant::now(), thread_cpu_secs());
        f();
        best.0 = best.0.min(t.elapsed().as_secs_f64());
        best.1 = best.1.min(thread_cpu_secs() - c);
        runs += 1;
    }
    best
}

/// n floats starting `offset` floats past a 64-byte line.
struct Buf {
    v: Vec<f32>,
    at: usize,
    n: usize,
}

impl Buf {
    fn new(n: usize, offset: usize) -> Buf {
        let v = vec![0f32; n + 32];
        let at = v.as_ptr().align_offset(64) % 16 + offset;
        Buf { v, at, n }
    }
    fn get(&self) -> &[f32] {
        &self.v[self.at..self.at + self.n]
    }
    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.v[self.at..self.at + self.n]
    }
}

/// Deterministic values in [-1, 1).
fn fill(v: &mut [f32], mut s: u32) {
    for x in v.iter_mut() {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *x = (s >> 8) as f32 / 8_388_608.0 - 1.0;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fwd = !args.iter().any(|a| a == "bwd");
    let bwd = !args.iter().any(|a| a == "fwd");
    let dropout = if args.iter().any(|a| a == "drop") { Dropout { p: 0.1, seed: 1234, stream: 7 } } else { Dropout::NONE };
    let offset: usize = std::env::var("ATTN_OFFSET").ok().and_then(|s| s.parse().ok()).unwrap_or(4) % 16;
    let mut thread_counts: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if thread_counts.is_empty() {
        thread_counts = vec![1, 2];
    }
    // (B, NH, T, HS): nanoGPT, GPT-2 small at T = 256 and at T = 1024.
    let mut shapes: Vec<(usize, usize, usize, usize)> = vec![(12, 4, 64, 32), (4, 12, 256, 64), (4, 12, 1024, 64)];
    // Arguments like 12,4,64,32 pick shapes instead.
    let picked: Vec<(usize, usize, usize, usize)> = args
        .iter()
        .filter_map(|a| {
            let d: Vec<usize> = a.split(',').filter_map(|x| x.parse().ok()).collect();
            if d.len() == 4 {
                Some((d[0], d[1], d[2], d[3]))
            } else {
                None
            }
        })
        .collect();
    if !picked.is_empty() {
        shapes = picked;
    }
    println!("simd {}  dropout p = {}  buffers {} floats past a line", ferrogpt_kernels::simd::simd_name(), dropout.p, offset);
    println!("1 thread: thread CPU time; 2+ threads: wall time");
    println!("{:>16} {:>4} {:>9} {:>7} {:>9} {:>7}", "B,NH,T,HS", "thr", "fwd ms", "GF", "bwd ms", "GF");
    for &(b, nh, t, hs) in &shapes {
        let c = nh * hs;
        let mut qkv = Buf::new(b * t * 3 * c, offset); // (B,T,3C)
        let mut dout = Buf::new(b * t * c, offset); // (B,T,C)
        fill(qkv.get_mut(), 1);
        fill(dout.get_mut(), 2);
        let mut out = Buf::new(b * t * c, offset); // (B,T,C)
        let mut lse = Buf::new(b * nh * t, offset); // (B,NH,T)
        let mut dqkv = Buf::new(b * t * 3 * c, offset); // (B,T,3C)
        let pairs = (b * nh * t * (t + 1) / 2) as f64;
        let (ffl, bfl) = (4.0 * hs as f64 * pairs, 10.0 * hs as f64 * pairs);
        for &th in &thread_counts {
            let pool = pool::Pool::new(th);
            let par: &dyn Parallel = if th == 1 { &Serial } else { &pool };
            let mut scratch = Buf::new(attention_scratch_len(b, t, c, nh, th), offset);
            attention_forward(par, scratch.get_mut(), out.get_mut(), lse.get_mut(), qkv.get(), b, t, c, nh, dropout);
            let pick = |s: (f64, f64)| if th == 1 { s.1 } else { s.0 };
            let (mut sf, mut sb) = (f64::NAN, f64::NAN);
            if fwd {
                sf = pick(best_secs(|| attention_forward(par, scratch.get_mut(), out.get_mut(), lse.get_mut(), qkv.get(), b, t, c, nh, dropout)));
            }
            if bwd {
                sb = pick(best_secs(|| attention_backward(par, scratch.get_mut(), dqkv.get_mut(), dout.get(), qkv.get(), out.get(), lse.get(), b, t, c, nh, dropout, false)));
            }
            println!("{:>16} {:>4} {:>9.3} {:>7.1} {:>9.3} {:>7.1}", format!("{b},{nh},{t},{hs}"), th, sf * 1e3, ffl / sf / 1e9, sb * 1e3, bfl / sb / 1e9);
        }
    }
}
