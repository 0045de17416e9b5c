//! bf16 mixed-precision training (`precision: 'bf16'`): the weights the GEMMs read are a
//! bf16 copy of the f32 master weights, re-rounded once per optimizer step (`round_bf16`);
//! gradients, AdamW's state, LayerNorm, softmax and the reductions stay f32. The forward
//! product is compact.rs's `matmul_forward_bf16`; this is its backward, with bf16 operands
//! and f32 accumulation, as PyTorch's autocast and llm.c's bf16 build compute it:
//!
//! ```text
//! dinp    (N,C)  (+)= bf16(dout) · weight          weight (OC,C) bf16
//! dweight (OC,C)  += bf16(dout)ᵀ · bf16(inp)
//! dbias   (OC)    += Σ_n dout                       (f32, unrounded)
//! ```
//!
//! bf16 × bf16 products are exact in f32, so these equal f32 GEMMs over bf16-rounded
//! operands. That is how they run for now: a chunk of the weight's rows at a time, widened
//! into scratch next to the matching columns of dout rounded, through the f32 GEMM, which
//! costs what the f32 backward costs (plus the rounding). A GEMM that packs to bf16 pairs and
//! multiplies with AVX512_BF16's `vdpbf16ps` (twice the f32 FMA rate) is what will make it
//! faster; the results must then stay within the same tolerances.

use crate::compact::{bf16_round, bf16_widen, chunk_rows};
use crate::matmul::bias_backward;
use crate::matmul::gemm::{self, Mat, Problem};
use crate::Parallel;

/// x (N) rounded to bf16: the once-per-step copy of the master weights the GEMMs read.
pub fn round_bf16(par: &dyn Parallel, out: &mut [u16], x: &[f32], n: usize) {
    let (out, x) = (&mut out[..n], &x[..n]);
    let tasks = if n < (1 << 16) { 1 } else { par.threads().max(1) * 4 };
    let dst = crate::parallel::SyncPtr(out.as_mut_ptr());
    par.for_each(tasks, &|task, _thread| {
        let (lo, hi) = (task * n / tasks, (task + 1) * n / tasks);
        // SAFETY: tasks write disjoint ranges lo..hi of out (N).
        let o = unsafe { core::slice::from_raw_parts_mut(dst.get().add(lo), hi - lo) };
        for (y, &v) in o.iter_mut().zip(&x[lo..hi]) {
            *y = bf16_round(v);
        }
    });
}

/// Scratch floats `matmul_backward_bf16` needs: inp rounded (N, C), a chunk of the weight
/// widened (CH, C), the matching columns of dout rounded (N, CH), and the GEMM's scratch.
pub fn matmul_backward_bf16_scratch_len(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    let ch = chunk_rows(c, oc).min(oc);
    n * c + ch * c + n * ch + gemm::scratch_len(n, c, ch, threads).max(gemm::scratch_len(ch, c, n, threads))
}

/// The backward of `matmul_forward_bf16` (see the module comment): dinp (N,C) += (or,
/// `overwrite_dinp`, =) bf16(dout (N,OC)) · weight (OC,C, bf16); dweight (OC,C, optional)
/// += bf16(dout)ᵀ · bf16(inp (N,C)); dbias (OC, optional) += Σ dout. `scratch` holds at
/// least `matmul_backward_bf16_scratch_len(n, c, oc, par.threads())` floats.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward_bf16(par: &dyn Parallel, scratch: &mut [f32], dinp: &mut [f32], mut dweight: Option<&mut [f32]>, dbias: Option<&mut [f32]>, dout: &[f32], inp: &[f32], weight: &[u16], n: usize, c: usize, oc: usize, overwrite_dinp: bool) {
    assert!(dinp.len() >= n * c && dout.len() >= n * oc && inp.len() >= n * c && weight.len() >= oc * c, "matmul_backward_bf16: buffer too small");
    assert!(dweight.as_ref().is_none_or(|d| d.len() >= oc * c), "matmul_backward_bf16: dweight too small");
    let ch = chunk_rows(c, oc).min(oc);
    let (xr, rest) = scratch.split_at_mut(n * c); // (N, C) bf16(inp)
    let (wch, rest) = rest.split_at_mut(ch * c); // (CH, C) weight rows o0.. widened
    let (dr, gs) = rest.split_at_mut(n * ch); // (N, CH) bf16(dout) columns o0..
    if dweight.is_some() {
        for (r, &x) in xr.iter_mut().zip(&inp[..n * c]) {
            *r = bf16_widen(bf16_round(x));
        }
    }
    let mut o0 = 0;
    while o0 < oc {
        let rows = ch.min(oc - o0);
        for (w, &h) in wch[..rows * c].iter_mut().zip(&weight[o0 * c..(o0 + rows) * c]) {
            *w = bf16_widen(h);
        }
        for (i, row) in dr[..n * rows].chunks_exact_mut(rows).enumerate() {
            for (d, &g) in row.iter_mut().zip(&dout[i * oc + o0..i * oc + o0 + rows]) {
                *d = bf16_widen(bf16_round(g));
            }
        }
        // dinp (N, C) (+)= dr (N, rows) · wch (rows, C); the chunks add up in order.
        let p = Problem {
            m: n,
            n: c,
            k: rows,
            a: Mat { ptr: dr.as_ptr(), rs: rows, cs: 1 },
            b: Mat { ptr: wch.as_ptr(), rs: c, cs: 1 },
            c: dinp.as_mut_ptr(),
            ldc: c,
            accumulate: !(overwrite_dinp && o0 == 0),
            bias: core::ptr::null(),
        };
        gemm::gemm(par, gs, p);
        if let Some(dw) = dweight.as_deref_mut() {
            // dweight rows o0.. (rows, C) += drᵀ (rows, N) · xr (N, C).
            let p = Problem {
                m: rows,
                n: c,
                k: n,
                a: Mat { ptr: dr.as_ptr(), rs: 1, cs: rows },
                b: Mat { ptr: xr.as_ptr(), rs: c, cs: 1 },
                c: dw[o0 * c..].as_mut_ptr(),
                ldc: c,
                accumulate: true,
                bias: core::ptr::null(),
            };
            gemm::gemm(par, gs, p);
        }
        o0 += rows;
    }
    if let Some(dbias) = dbias {
        assert!(dbias.len() >= oc, "matmul_backward_bf16: dbias too small");
        bias_backward(par, dbias, dout, n, oc);
    }
}
