//! Helpers shared by the kernel test files: a scoped-thread `Parallel` and a seeded RNG.
#![allow(dead_code)] // each test file uses its own subset

use ferrogpt_kernels::Parallel;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A multi-threaded `Parallel` on scoped threads, pulling tasks from a shared counter.
pub struct Threads(pub usize);

impl Parallel for Threads {
    fn threads(&self) -> usize {
        self.0
    }
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for th in 0..self.0 {
                let next = &next;
                s.spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= tasks {
                        break;
                    }
                    f(k, th);
                });
            }
        });
    }
}

/// Seeded xorshift: uniform floats in [lo, hi).
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u32() as f32 / 4_294_967_296.0)
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}
