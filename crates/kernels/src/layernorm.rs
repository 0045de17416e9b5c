//! LayerNorm over the last dimension, eps = 1e-5 (GPT-2).

/// out (N,C) = (inp - mean) * rstd * weight + bias; also stores mean (N) and rstd (N)
/// for the backward pass. inp (N,C), weight (C), bias (C).
pub fn layernorm_forward(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], weight: &[f32], bias: &[f32], n: usize, c: usize) {
    let _ = (out, mean, rstd, inp, weight, bias, n, c);
    unimplemented!("layernorm_forward")
}

/// Accumulates dinp (N,C), dweight (C), dbias (C) from dout (N,C), using inp, weight and
/// the saved mean (N) and rstd (N).
pub fn layernorm_backward(dinp: &mut [f32], dweight: &mut [f32], dbias: &mut [f32], dout: &[f32], inp: &[f32], weight: &[f32], mean: &[f32], rstd: &[f32], n: usize, c: usize) {
    let _ = (dinp, dweight, dbias, dout, inp, weight, mean, rstd, n, c);
    unimplemented!("layernorm_backward")
}
