//! GELU, tanh approximation (GPT-2's "gelu_new"):
//! gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

/// out (N) = gelu(inp (N)).
pub fn gelu_forward(out: &mut [f32], inp: &[f32], n: usize) {
    let _ = (out, inp, n);
    unimplemented!("gelu_forward")
}

/// dinp (N) += gelu'(inp) * dout. Accumulates.
pub fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize) {
    let _ = (dinp, inp, dout, n);
    unimplemented!("gelu_backward")
}
