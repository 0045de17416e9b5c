//! The linear layer and the GEMM under it: a packed, cache-blocked GEMM with a
//! register-tiled SIMD microkernel (BLIS structure), threaded through `Parallel`.

use crate::Parallel;

/// Scratch floats `matmul_forward` / `matmul_backward` need for these dimensions and
/// thread count (packing buffers for every thread plus shared packed weights).
pub fn matmul_scratch_len(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    let _ = (n, c, oc, threads);
    unimplemented!("matmul_scratch_len")
}

/// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC). Overwrites out.
pub fn matmul_forward(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], inp: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize) {
    let _ = (par, scratch, out, inp, weight, bias, n, c, oc);
    unimplemented!("matmul_forward")
}

/// dinp (N,C) += dout (N,OC) · weight (OC,C); dweight (OC,C) += doutᵀ · inp (N,C);
/// dbias (OC) += column sums of dout. Accumulates.
pub fn matmul_backward(par: &dyn Parallel, scratch: &mut [f32], dinp: &mut [f32], dweight: &mut [f32], dbias: Option<&mut [f32]>, dout: &[f32], inp: &[f32], weight: &[f32], n: usize, c: usize, oc: usize) {
    let _ = (par, scratch, dinp, dweight, dbias, dout, inp, weight, n, c, oc);
    unimplemented!("matmul_backward")
}
