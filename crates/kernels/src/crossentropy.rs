//! Fused softmax + cross-entropy over the vocabulary, with an ignore index. The
//! probabilities are never stored: backward recomputes the softmax from the logits.

use crate::Parallel;

/// losses (N) = -log softmax(logits (N,V))[targets[i]], or 0 where targets[i] == ignore_index.
/// targets (N) in 0..V or == ignore_index (checked by the caller).
pub fn crossentropy_forward(par: &dyn Parallel, losses: &mut [f32], logits: &[f32], targets: &[i32], n: usize, v: usize, ignore_index: i32) {
    let _ = (par, losses, logits, targets, n, v, ignore_index);
    unimplemented!("crossentropy_forward")
}

/// dlogits (N,V) += (softmax(logits) - onehot(target)) * dlosses[i]; rows whose target
/// is ignore_index get nothing. Accumulates.
pub fn crossentropy_backward(par: &dyn Parallel, dlogits: &mut [f32], dlosses: &[f32], logits: &[f32], targets: &[i32], n: usize, v: usize, ignore_index: i32) {
    let _ = (par, dlogits, dlosses, logits, targets, n, v, ignore_index);
    unimplemented!("crossentropy_backward")
}
