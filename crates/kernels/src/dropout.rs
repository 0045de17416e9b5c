//! Inverted dropout driven by the counter-based RNG in `rng`: element i is kept when
//! `rng::keep(p, seed, stream, i)`, and kept elements are scaled by 1/(1-p). The mask is
//! never stored: backward recomputes it from (seed, stream).

/// out (N) = keep_i ? inp_i / (1-p) : 0. p in [0,1); p == 0 copies.
pub fn dropout_forward(out: &mut [f32], inp: &[f32], n: usize, p: f32, seed: u32, stream: u32) {
    let _ = (out, inp, n, p, seed, stream);
    unimplemented!("dropout_forward")
}

/// dinp (N) += keep_i ? dout_i / (1-p) : 0. Accumulates.
pub fn dropout_backward(dinp: &mut [f32], dout: &[f32], n: usize, p: f32, seed: u32, stream: u32) {
    let _ = (dinp, dout, n, p, seed, stream);
    unimplemented!("dropout_backward")
}
