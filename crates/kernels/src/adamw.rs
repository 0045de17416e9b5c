//! AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias correction.

/// One update of params (N) from grads (N), with first/second moments m (N), v (N):
///   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
///   mhat = m / (1 - b1^step);  vhat = v / (1 - b2^step)
///   param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param)
/// step counts from 1. The caller applies weight_decay = 0 to tensors it exempts.
pub fn adamw_update(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], n: usize, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, step: u32) {
    let _ = (params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step);
    unimplemented!("adamw_update")
}
