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
//! With AVX512_BF16 both products run on compact/bf16_gemm.rs's vdpbf16ps GEMM, over
//! bf16(dout) and bf16(inp) laid out once per call (`backward_dot`). Elsewhere, bf16 × bf16
//! products being exact in f32, they are f32 GEMMs over the rounded operands: a chunk of
//! the weight's rows at a time, widened into scratch next to the matching columns of dout
//! rounded, which costs what the f32 backward costs (plus the rounding).

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
    let widening = n * c + ch * c + n * ch + gemm::scratch_len(n, c, ch, threads).max(gemm::scratch_len(ch, c, n, threads));
    #[cfg(target_arch = "x86_64")]
    let widening = widening.max(dot_scratch_len(n, c, oc, threads));
    widening
}

/// Columns of dout `backward_dot` lays out at a time: all of a transformer layer's, a few
/// thousand of the lm head's (its (N, V) dout would otherwise need twice its size again).
#[cfg(target_arch = "x86_64")]
fn dot_chunk(oc: usize) -> usize {
    if oc <= 4096 {
        oc
    } else {
        1536
    }
}

/// Scratch words of `backward_dot`: bf16(inp) rows (N, C2), bf16(dout) rows (N, CH2) and
/// pairs of its columns (CH, N2), and the GEMM's buffers for depths CH and N.
#[cfg(target_arch = "x86_64")]
fn dot_scratch_len(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    use crate::compact::bf16_gemm::scratch_words;
    let ch = dot_chunk(oc);
    n * c.div_ceil(2) + n * ch.div_ceil(2) + ch * n.div_ceil(2) + scratch_words(ch, threads).max(scratch_words(n, threads))
}

/// matmul_backward_bf16 on the vdpbf16ps GEMM (arguments as there; has_bf16_dot() holds).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn backward_dot(par: &dyn Parallel, scratch: &mut [f32], dinp: &mut [f32], mut dweight: Option<&mut [f32]>, dout: &[f32], inp: &[f32], weight: &[u16], n: usize, c: usize, oc: usize, overwrite_dinp: bool) {
    use crate::compact::bf16_gemm::{self as g, Mat16, Pairs};
    let (ch, c2, n2) = (dot_chunk(oc), c.div_ceil(2) * 2, n.div_ceil(2));
    let ch2 = ch.div_ceil(2) * 2;
    let (xr, rest) = scratch.split_at_mut(n * c2 / 2);
    let (dr, rest) = rest.split_at_mut(n * ch2 / 2);
    let (dt, gs) = rest.split_at_mut(ch * n2);
    // SAFETY: each f32 region is reinterpreted as the u16 or u32 it was sized for; any bit
    // pattern is a valid integer and f32 alignment covers both.
    let (xr, dr, dt) = unsafe {
        (
            core::slice::from_raw_parts_mut(xr.as_mut_ptr() as *mut u16, n * c2), // (N, C2) bf16(inp)
            core::slice::from_raw_parts_mut(dr.as_mut_ptr() as *mut u16, n * ch2), // (N, CH2) bf16(dout) columns o0..
            core::slice::from_raw_parts_mut(dt.as_mut_ptr() as *mut u32, ch * n2), // (CH, N2) the same as pairs of rows
        )
    };
    if dweight.is_some() {
        g::round_rows(par, xr, c2, inp, c, n, c);
    }
    let mut o0 = 0;
    while o0 < oc {
        let rows = ch.min(oc - o0);
        let ldr = rows.div_ceil(2) * 2;
        g::round_rows(par, dr, ldr, &dout[o0..], oc, n, rows);
        // dinp (N, C) (+)= dr (N, rows) · weight rows o0.. (rows, C); the chunks add up in order.
        let p = g::Problem {
            m: n,
            n: c,
            k: rows,
            a: Pairs { ptr: dr.as_ptr() as *const u32, ld: ldr / 2 },
            b: Mat16 { ptr: weight[o0 * c..].as_ptr(), rs: c, cs: 1 },
            c: dinp.as_mut_ptr(),
            ldc: c,
            accumulate: !(overwrite_dinp && o0 == 0),
            bias: core::ptr::null(),
        };
        // SAFETY: shapes checked by the caller; has_bf16_dot() holds; gs holds the GEMM's
        // scratch for depth rows <= CH (dot_scratch_len).
        unsafe { g::gemm(par, gs, p) };
        if let Some(dw) = dweight.as_deref_mut() {
            // dweight rows o0.. (rows, C) += bf16(dout columns)ᵀ (rows, N) · bf16(inp) (N, C).
            g::pair_columns(par, dt, n2, &dout[o0..], oc, n, rows);
            let p = g::Problem {
                m: rows,
                n: c,
                k: n,
                a: Pairs { ptr: dt.as_ptr(), ld: n2 },
                b: Mat16 { ptr: xr.as_ptr(), rs: c2, cs: 1 },
                c: dw[o0 * c..].as_mut_ptr(),
                ldc: c,
                accumulate: true,
                bias: core::ptr::null(),
            };
            // SAFETY: as above, for depth N.
            unsafe { g::gemm(par, gs, p) };
        }
        o0 += rows;
    }
}

/// The backward of `matmul_forward_bf16` (see the module comment): dinp (N,C) += (or,
/// `overwrite_dinp`, =) bf16(dout (N,OC)) · weight (OC,C, bf16); dweight (OC,C, optional)
/// += bf16(dout)ᵀ · bf16(inp (N,C)); dbias (OC, optional) += Σ dout. `scratch` holds at
/// least `matmul_backward_bf16_scratch_len(n, c, oc, par.threads())` floats.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward_bf16(par: &dyn Parallel, scratch: &mut [f32], dinp: &mut [f32], mut dweight: Option<&mut [f32]>, dbias: Option<&mut [f32]>, dout: &[f32], inp: &[f32], weight: &[u16], n: usize, c: usize, oc: usize, overwrite_dinp: bool) {
    assert!(dinp.len() >= n * c && dout.len() >= n * oc && inp.len() >= n * c && weight.len() >= oc * c, "matmul_backward_bf16: buffer too small");
    assert!(dweight.as_ref().is_none_or(|d| d.len() >= oc * c), "matmul_backward_bf16: dweight too small");
    if let Some(dbias) = dbias {
        assert!(dbias.len() >= oc, "matmul_backward_bf16: dbias too small");
        bias_backward(par, dbias, dout, n, oc);
    }
    #[cfg(target_arch = "x86_64")]
    if crate::compact::x86::has_bf16_dot() {
        return backward_dot(par, scratch, dinp, dweight, dout, inp, weight, n, c, oc, overwrite_dinp);
    }
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
            packed: gemm::PackedB::NONE,
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
                packed: gemm::PackedB::NONE,
            };
            gemm::gemm(par, gs, p);
        }
        o0 += rows;
    }
}
