//! Inverted dropout driven by the counter-based RNG in `rng`: element i is kept when
//! `rng::keep(p, seed, stream, i)`, and kept elements are scaled by 1/(1-p). The mask is
//! never stored: backward recomputes it from (seed, stream).

use crate::rng::keep;

/// out (N) = keep_i ? inp_i / (1-p) : 0. p in [0,1); p == 0 copies.
pub fn dropout_forward(out: &mut [f32], inp: &[f32], n: usize, p: f32, seed: u32, stream: u32) {
    let out = &mut out[..n]; // (N)
    let inp = &inp[..n]; // (N)
    if p == 0.0 {
        // No random numbers at all: identical to the reference's no-dropout path.
        out.copy_from_slice(inp);
        return;
    }
    let s = 1.0 / (1.0 - p);
    for i in 0..n {
        // The index wraps at 2^32 like the TypeScript reference (u32 arithmetic).
        out[i] = if keep(p, seed, stream, i as u32) { inp[i] * s } else { 0.0 };
    }
}

/// dinp (N) += keep_i ? dout_i / (1-p) : 0. Accumulates.
pub fn dropout_backward(dinp: &mut [f32], dout: &[f32], n: usize, p: f32, seed: u32, stream: u32) {
    let dinp = &mut dinp[..n]; // (N)
    let dout = &dout[..n]; // (N)
    if p == 0.0 {
        for i in 0..n {
            dinp[i] += dout[i];
        }
        return;
    }
    let s = 1.0 / (1.0 - p);
    for i in 0..n {
        // Same (seed, stream, i) as the forward pass, so the same mask.
        if keep(p, seed, stream, i as u32) {
            dinp[i] += dout[i] * s;
        }
    }
}
