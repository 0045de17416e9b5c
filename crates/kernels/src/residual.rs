//! Residual connection: out = inp1 + inp2.

/// out (N) = inp1 (N) + inp2 (N).
pub fn residual_forward(out: &mut [f32], inp1: &[f32], inp2: &[f32], n: usize) {
    let _ = (out, inp1, inp2, n);
    unimplemented!("residual_forward")
}

/// dinp1 (N) += dout; dinp2 (N) += dout. Accumulates.
pub fn residual_backward(dinp1: &mut [f32], dinp2: &mut [f32], dout: &[f32], n: usize) {
    let _ = (dinp1, dinp2, dout, n);
    unimplemented!("residual_backward")
}
