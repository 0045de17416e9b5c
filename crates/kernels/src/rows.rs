//! Row primitives: copy, gather and scatter-add whole rows of C floats.
//!
//! The model needs rows moved around in three places: the task head pools the hidden state
//! of one or two tokens per example (a gather, and its backward, a scatter-add), and the
//! KV cache forks a shared prompt prefix into other slots (a copy). Without these,
//! callers improvise: a gather out of `residual_forward` and a tensor of zeros, a copy as a
//! read into JS and a write back. Rows are short and few, so these run on one thread.

/// out (R,C) = inp (R,C), for rows of any element: f32 (`copyRows`) or bf16 bits
/// (`copyRowsBf16`, a slot of a bf16 KV cache).
pub fn copy_rows<T: Copy>(out: &mut [T], inp: &[T], r: usize, c: usize) {
    let n = r * c;
    out[..n].copy_from_slice(&inp[..n]);
}

/// out (F,C) = inp (N,C) at rows (F), each in 0..N; with `accumulate`, out += those rows
/// instead (two gathers then add a pair of rows, in the same bits as one addition).
pub fn gather_rows(out: &mut [f32], inp: &[f32], rows: &[i32], f: usize, c: usize, accumulate: bool) {
    let out = &mut out[..f * c]; // (F, C)
    for (o, &row) in out.chunks_exact_mut(c).zip(&rows[..f]) {
        let src = &inp[row as usize * c..][..c]; // (C)
        if accumulate {
            for (x, &y) in o.iter_mut().zip(src) {
                *x += y;
            }
        } else {
            o.copy_from_slice(src);
        }
    }
}

/// dinp (N,C) at rows (F) += dout (F,C): the backward of gather_rows. Accumulates, in the
/// order f = 0..F, so rows that repeat sum the same way on every backend.
pub fn scatter_add_rows(dinp: &mut [f32], dout: &[f32], rows: &[i32], f: usize, c: usize) {
    let dout = &dout[..f * c]; // (F, C)
    for (d, &row) in dout.chunks_exact(c).zip(&rows[..f]) {
        let dst = &mut dinp[row as usize * c..][..c]; // (C)
        for (x, &y) in dst.iter_mut().zip(d) {
            *x += y;
        }
    }
}
