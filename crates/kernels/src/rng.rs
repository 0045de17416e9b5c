//! Counter-based random numbers: the value at `index` depends only on (seed, stream, index),
//! so every backend (Rust native, Rust wasm, TypeScript reference) produces the same
//! dropout mask, in any order and on any number of threads. Only 32-bit wrapping
//! multiplies, xors and shifts are used, so TypeScript reproduces it with Math.imul.
//!
//! Specification (the TypeScript reference must match it bit for bit):
//!   mix32(x):  x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
//!   random_u32(seed, stream, index) = mix32(mix32(mix32(index ^ seed) ^ stream) + 0x9e3779b9)
//!   uniform(seed, stream, index)    = (random_u32(..) >> 8) as f32 * 2^-24      in [0, 1)
//!   keep(p, seed, stream, index)    = uniform(..) >= p

pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

pub fn random_u32(seed: u32, stream: u32, index: u32) -> u32 {
    mix32(mix32(mix32(index ^ seed) ^ stream).wrapping_add(0x9e37_79b9))
}

pub fn uniform(seed: u32, stream: u32, index: u32) -> f32 {
    (random_u32(seed, stream, index) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Whether dropout with drop probability `p` keeps element `index`.
pub fn keep(p: f32, seed: u32, stream: u32, index: u32) -> bool {
    uniform(seed, stream, index) >= p
}

/// Dropout settings passed to kernels that drop internally (attention weights).
/// `p == 0.0` means no dropout (and no random numbers drawn).
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f32,
    pub seed: u32,
    pub stream: u32,
}

impl Dropout {
    pub const NONE: Dropout = Dropout { p: 0.0, seed: 0, stream: 0 };
}
