//! Fused causal multi-head self-attention, flash-style: forward streams over key tiles
//! with an online softmax and never holds more than one (tile x tile) score block per
//! head and thread; it saves only the log-sum-exp of each row. Backward recomputes the
//! scores from qkv and lse. Scale 1/sqrt(HS). Optional dropout on the attention weights,
//! keyed by index ((b*NH + h)*T + t)*T + s (wrapping u32) in the counter RNG.

use crate::rng::Dropout;
use crate::Parallel;

/// Scratch floats attention forward/backward need (per-thread tiles) for these dims.
pub fn attention_scratch_len(b: usize, t: usize, c: usize, nh: usize, threads: usize) -> usize {
    let _ = (b, t, c, nh, threads);
    unimplemented!("attention_scratch_len")
}

/// out (B,T,C) = causal softmax(q kᵀ / sqrt(HS)) v per head, where qkv (B,T,3C) holds
/// q, k, v side by side, each (B,T,NH,HS); lse (B,NH,T) = log-sum-exp of each score row.
/// Overwrites out and lse.
pub fn attention_forward(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], lse: &mut [f32], qkv: &[f32], b: usize, t: usize, c: usize, nh: usize, dropout: Dropout) {
    let _ = (par, scratch, out, lse, qkv, b, t, c, nh, dropout);
    unimplemented!("attention_forward")
}

/// dqkv (B,T,3C) += gradient of the forward above, from dout (B,T,C), qkv, out and lse.
/// Accumulates.
pub fn attention_backward(par: &dyn Parallel, scratch: &mut [f32], dqkv: &mut [f32], dout: &[f32], qkv: &[f32], out: &[f32], lse: &[f32], b: usize, t: usize, c: usize, nh: usize, dropout: Dropout) {
    let _ = (par, scratch, dqkv, dout, qkv, out, lse, b, t, c, nh, dropout);
    unimplemented!("attention_backward")
}
