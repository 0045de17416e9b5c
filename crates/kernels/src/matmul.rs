//! The linear layer and the GEMM under it: a packed, cache-blocked GEMM with a
//! register-tiled SIMD microkernel (BLIS structure), threaded through `Parallel`.
//! See `matmul/gemm.rs` for the blocking and the microkernel.

pub(crate) mod gemm;

use crate::parallel::SyncPtr;
use crate::simd::math::dot_rows_ptr;
use crate::simd::{Elem, F32Vec};
use crate::{simd_kernel, Parallel};
use gemm::{Mat, PackedB, Problem};

/// Scratch floats `matmul_forward` / `matmul_backward` need for these dimensions and
/// thread count (packing buffers for every thread plus shared packed weights).
pub fn matmul_scratch_len(n: usize, c: usize, oc: usize, threads: usize) -> usize {
    let fwd = gemm::scratch_len(n, oc, c, threads); // out = inp · weightᵀ
    let dinp = gemm::scratch_len(n, c, oc, threads); // dinp += dout · weight
    let dweight = gemm::scratch_len(oc, c, n, threads); // dweight += doutᵀ · inp
    fwd.max(dinp).max(dweight)
}

/// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC). Overwrites out, unless
/// `accumulate`: out += inp · weightᵀ + bias (a low-rank branch, LoRA's, adds its product
/// to the base layer's output without a buffer of its own).
/// `scratch` holds at least `matmul_scratch_len(n, c, oc, par.threads())` floats.
#[allow(clippy::too_many_arguments)]
pub fn matmul_forward(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], inp: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool) {
    forward(par, scratch, out, inp, weight, PackedB::NONE, bias, n, c, oc, accumulate);
}

/// matmul_forward and matmul_forward_packed: the GEMV up to GEMV_ROWS rows (reading the
/// weight in place), else the GEMM (packing the weight as it goes, or reading `packed`).
#[allow(clippy::too_many_arguments)]
fn forward(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], inp: &[f32], weight: &[f32], packed: PackedB, bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool) {
    // The GEMM reads through raw pointers: these checks are what keeps it in bounds.
    assert!(out.len() >= n * oc && inp.len() >= n * c && weight.len() >= oc * c, "matmul_forward: buffer too small");
    if let Some(b) = bias {
        assert!(b.len() >= oc, "matmul_forward: bias too small");
    }
    if n <= GEMV_ROWS && c > 0 {
        gemv_forward(par, out, inp, weight, bias, n, c, oc, accumulate);
        return;
    }
    gemm_forward(par, scratch, out, oc, inp, weight, packed, bias, n, c, oc, accumulate);
}

/// Rows of the packed copy of a weight with `oc` rows: OC rounded up to a multiple of 192
/// (gemm.rs's PACKED_ROW_MULTIPLE). A packed weight is (P, C) floats for any such P >= OC.
pub fn packed_weight_rows(oc: usize) -> usize {
    oc.div_ceil(gemm::PACKED_ROW_MULTIPLE) * gemm::PACKED_ROW_MULTIPLE
}

/// packed (P, C) = weight (OC, C) as the forward GEMM packs it, all of it, once: what
/// `matmul_forward_packed` reads instead of packing the weight on every call (about 11%
/// of the lm head's). Its layout is this build's and this instruction set's (gemm.rs's
/// `PackedB`); P is a multiple of 192, at least OC (`packed_weight_rows`).
pub fn pack_weight(par: &dyn Parallel, packed: &mut [f32], weight: &[f32], c: usize, oc: usize, p: usize) {
    assert!(weight.len() >= oc * c, "pack_weight: weight too small");
    assert!(p >= oc && p % gemm::PACKED_ROW_MULTIPLE == 0, "pack_weight: P must be a multiple of 192 and at least OC");
    let weight_t = Mat { ptr: weight.as_ptr(), rs: 1, cs: c }; // weightᵀ: (C, OC) view of (OC, C)
    gemm::pack_b_all(par, weight_t, c, oc, p, packed);
}

/// matmul_forward with the weight's packed copy beside it (`pack_weight`, from the same
/// weight and not stale): the same outputs, bit for bit. Up to GEMV_ROWS rows read the
/// weight in place as matmul_forward does; more rows read the packed copy.
#[allow(clippy::too_many_arguments)]
pub fn matmul_forward_packed(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], inp: &[f32], weight: &[f32], packed: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize, p: usize, accumulate: bool) {
    assert!(p >= oc && p % gemm::PACKED_ROW_MULTIPLE == 0 && packed.len() >= p * c, "matmul_forward_packed: packed must be (P, C) with P a multiple of 192, at least OC");
    let packed = PackedB { ptr: packed.as_ptr(), row_stride: p, first_panel: 0 };
    forward(par, scratch, out, inp, weight, packed, bias, n, c, oc, accumulate);
}

/// out (N,OC) at row stride `ldc` (= or +=, `accumulate`) inp (N,C) · weight (OC,C)ᵀ +
/// bias, through the GEMM: matmul_forward's product, and the compact-weight kernels' over
/// a widened chunk of their weight (compact.rs). `packed`: the weight's packed copy, or
/// PackedB::NONE to pack it as the GEMM goes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_forward(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], ldc: usize, inp: &[f32], weight: &[f32], packed: PackedB, bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool) {
    assert!(n == 0 || out.len() >= (n - 1) * ldc + oc, "matmul: out too small");
    let p = Problem {
        m: n,
        n: oc,
        k: c,
        a: Mat { ptr: inp.as_ptr(), rs: c, cs: 1 },    // inp (N, C)
        b: Mat { ptr: weight.as_ptr(), rs: 1, cs: c }, // weightᵀ: (C, OC) view of (OC, C)
        c: out.as_mut_ptr(),                           // (N, OC), row stride ldc
        ldc,
        accumulate,
        // The GEMM adds the bias only when it overwrites; accumulating, it is added below.
        bias: if accumulate { core::ptr::null() } else { bias.map_or(core::ptr::null(), |b| b.as_ptr()) }, // (OC)
        packed,
    };
    gemm::gemm(par, scratch, p);
    if let (true, Some(b)) = (accumulate, bias) {
        for r in 0..n {
            for (o, &x) in out[r * ldc..r * ldc + oc].iter_mut().zip(&b[..oc]) {
                *o += x;
            }
        }
    }
}

/// dinp (N,C) += dout (N,OC) · weight (OC,C); dweight (OC,C) += doutᵀ · inp (N,C);
/// dbias (OC) += column sums of dout. Accumulates, except that `overwrite_dinp` overwrites
/// dinp (the same bits as zeroing it first): the caller's activation gradient often has no
/// other contribution, and then neither zeroing it nor reading it back is needed.
/// `dweight` and `dbias` may be None: a frozen layer (a LoRA base weight) then costs only
/// the dinp product, a third of a trained layer's backward FLOPs less.
/// `scratch` holds at least `matmul_scratch_len(n, c, oc, par.threads())` floats.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward(par: &dyn Parallel, scratch: &mut [f32], dinp: &mut [f32], dweight: Option<&mut [f32]>, dbias: Option<&mut [f32]>, dout: &[f32], inp: &[f32], weight: &[f32], n: usize, c: usize, oc: usize, overwrite_dinp: bool) {
    assert!(
        dinp.len() >= n * c && dout.len() >= n * oc && inp.len() >= n * c && weight.len() >= oc * c,
        "matmul_backward: buffer too small"
    );
    let dinp_p = Problem {
        m: n,
        n: c,
        k: oc,
        a: Mat { ptr: dout.as_ptr(), rs: oc, cs: 1 }, // dout (N, OC)
        b: Mat { ptr: weight.as_ptr(), rs: c, cs: 1 }, // weight (OC, C)
        c: dinp.as_mut_ptr(),                          // (N, C)
        ldc: c,
        accumulate: !overwrite_dinp,
        bias: core::ptr::null(),
        packed: PackedB::NONE,
    };
    gemm::gemm(par, scratch, dinp_p);
    if let Some(dweight) = dweight {
        assert!(dweight.len() >= oc * c, "matmul_backward: dweight too small");
        let dweight_p = Problem {
            m: oc,
            n: c,
            k: n,
            a: Mat { ptr: dout.as_ptr(), rs: 1, cs: oc }, // doutᵀ: (OC, N) view of (N, OC)
            b: Mat { ptr: inp.as_ptr(), rs: c, cs: 1 },   // inp (N, C)
            c: dweight.as_mut_ptr(),                      // (OC, C)
            ldc: c,
            accumulate: true,
            bias: core::ptr::null(),
            packed: PackedB::NONE,
        };
        gemm::gemm(par, scratch, dweight_p);
    }
    if let Some(dbias) = dbias {
        assert!(dbias.len() >= oc, "matmul_backward: dbias too small");
        bias_backward(par, dbias, dout, n, oc);
    }
}

/// Up to this many rows (token-by-token generation, a batch of sequences decoding
/// together), the forward pass reads the weight in place with dot products: the GEMM's
/// transposing pack of the whole weight (~14 GB/s here) costs more than the product.
/// GPT-2-small f32 decode at 2 threads (Zen 4, both orders): at batch 8 a step took 60 ms
/// through the GEMM and 31 here; at 12, 57 against 50; at 16 they tie (62).
pub(crate) const GEMV_ROWS: usize = 16;

/// Output columns per task of `gemv_forward`: small enough that the 768-column layers of
/// GPT-2 split into a dozen tasks, so two or more threads finish together.
pub(crate) const GEMV_COLS: usize = 64;

/// With more than one input row, the weight row this many rows ahead is prefetched into
/// L2 while this one is used: at 2-8 rows the dot products are slow enough that the
/// hardware prefetchers fall behind (GPT-2-small f32 decode at batch 8: 44 -> 31.6 ms a
/// step; 4 rows ahead timed no better). One row streams at DRAM speed without it.
const PREFETCH_ROWS_AHEAD: usize = 2;

/// For a GEMV with `n` input rows at weight row o of a task's rows ..o1: prefetches row
/// o + PREFETCH_ROWS_AHEAD of the weight (rows of `row_bytes` from `weight`) into L2, when
/// there is more than one input row and that row is the task's.
#[inline(always)]
pub(crate) fn prefetch_row_ahead<V: F32Vec>(weight: *const u8, row_bytes: usize, o: usize, o1: usize, n: usize) {
    if !V::PREFETCH || n < 2 || o + PREFETCH_ROWS_AHEAD >= o1 {
        return;
    }
    // wrapping_add: only addresses for the hint, never dereferenced here.
    let ahead = weight.wrapping_add((o + PREFETCH_ROWS_AHEAD) * row_bytes);
    for line in (0..row_bytes).step_by(64) {
        V::prefetch_l2(ahead.wrapping_add(line) as *const f32); // one 64-byte line
    }
}

/// out (N,OC) = (or +=, `accumulate`) inp (N,C) · weight (OC,C)ᵀ + bias for N <= GEMV_ROWS,
/// split over columns.
#[allow(clippy::too_many_arguments)]
fn gemv_forward(par: &dyn Parallel, out: &mut [f32], inp: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize, accumulate: bool) {
    let dst = SyncPtr(out.as_mut_ptr());
    let bias = bias.map_or(core::ptr::null(), |b| b.as_ptr());
    let bias = SyncPtr(bias as *mut f32);
    for_column_tasks(par, n, c, oc, &|o0, o1| {
        // SAFETY: tasks write disjoint column ranges o0..o1 of out (N, OC); inp holds N*C,
        // weight OC*C and bias (when non-null) OC floats, as matmul_forward checked.
        unsafe { gemv_cols(dst.get(), inp.as_ptr(), weight.as_ptr(), bias.get(), n, c, oc, o0, o1, accumulate) }
    });
}

/// Runs `f(o0, o1)` over the column ranges, about GEMV_COLS each, that the GEMVs (this
/// one and compact.rs's) split an (N, OC) product into; one range for a small product.
pub(crate) fn for_column_tasks(par: &dyn Parallel, n: usize, c: usize, oc: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let tasks = if n * c * oc < (1 << 17) { 1 } else { ceil_div(oc, GEMV_COLS) };
    par.for_each(tasks, &|task, _thread| f(task * oc / tasks, (task + 1) * oc / tasks));
}

simd_kernel! {
    /// out[.., o0..o1] (= or +=, `accumulate`) for N <= GEMV_ROWS rows, dot products along C.
    /// Safety: out (N, OC), inp (N, C), weight (OC, C) and bias (OC, or null) are valid,
    /// o0 <= o1 <= OC, 1 <= N <= GEMV_ROWS, and no one else writes out[.., o0..o1].
    unsafe fn gemv_cols(out: *mut f32, inp: *const f32, weight: *const f32, bias: *const f32, n: usize, c: usize, oc: usize, o0: usize, o1: usize, accumulate: bool) => gemv_cols_impl
}

/// The GEMV over weight rows of f32, or of bf16 bits (compact.rs's widening bf16 GEMV).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_cols_impl<V: F32Vec>(out: *mut f32, inp: *const f32, weight: *const impl Elem, bias: *const f32, n: usize, c: usize, oc: usize, o0: usize, o1: usize, accumulate: bool) {
    // One weight row at a time, streamed in order, which keeps the prefetchers fullest:
    // 4 rows side by side (a 4 × 4 tile of products) read 20-25% slower from DRAM at one
    // input row. The row (C values) then stays in L1 while the input rows meet it, 4 at
    // a time where there are 32 vector registers (AVX-512, NEON: 16 accumulators), 2
    // where there are 16 (AVX2, wasm's simd128 in V8). Each output is `dot_ptr`'s dot
    // product whatever N is, so a sequence decodes to the same bits alone or in a batch.
    let rows_at_once = if V::LANES == 16 || cfg!(target_arch = "aarch64") { 4 } else { 2 };
    let row_bytes = c * pointee_size(weight);
    for o in o0..o1 {
        prefetch_row_ahead::<V>(weight as *const u8, row_bytes, o, o1, n);
        // SAFETY: row o < OC of weight (OC, C); rows r < N of inp (N, C); out (N, OC) is
        // written at rows < N, column o, which only this task writes.
        unsafe {
            let w = weight.add(o * c); // (C,) row o of weight
            let b = if bias.is_null() { 0.0 } else { *bias.add(o) };
            let mut r0 = 0;
            while r0 < n {
                let rows = (n - r0).min(rows_at_once);
                let col = Column { out: out.add(r0 * oc + o), inp: inp.add(r0 * c), w, b, c, oc, accumulate };
                match rows {
                    4 => col.rows::<V, 4>(),
                    3 => col.rows::<V, 3>(),
                    2 => col.rows::<V, 2>(),
                    _ => col.rows::<V, 1>(),
                }
                r0 += rows;
            }
        }
    }
}

/// Bytes of the T a pointer points to (an `impl Elem` has no name to give size_of).
fn pointee_size<T>(_: *const T) -> usize {
    core::mem::size_of::<T>()
}

/// One weight row against a few input rows: out[r, 0] for rows r of inp.
struct Column<E> {
    out: *mut f32,   // (rows, OC): column 0 is this weight row's output
    inp: *const f32, // (rows, C)
    w: *const E,     // (C,)
    b: f32,
    c: usize,
    oc: usize,
    accumulate: bool,
}

impl<E: Elem> Column<E> {
    /// # Safety
    /// R rows of out and inp and the C values of w are valid, and only we write those
    /// outputs.
    #[inline(always)]
    unsafe fn rows<V: F32Vec, const R: usize>(&self) {
        // SAFETY: the caller's contract.
        unsafe {
            let dots = dot_rows_ptr::<V, E, R>(core::array::from_fn(|r| self.inp.add(r * self.c)), self.w, self.c);
            for (r, dot) in dots.into_iter().enumerate() {
                let y = self.out.add(r * self.oc);
                let v = dot + self.b;
                *y = if self.accumulate { *y + v } else { v };
            }
        }
    }
}

/// Columns per dbias task: wide enough that a task's rows of dout are worth a thread.
const DBIAS_COLS: usize = 2048;

/// dbias (OC) += column sums of dout (N, OC), split over column ranges.
pub(crate) fn bias_backward(par: &dyn Parallel, dbias: &mut [f32], dout: &[f32], n: usize, oc: usize) {
    let tasks = if n * oc < (1 << 16) { 1 } else { ceil_div(oc, DBIAS_COLS).min(par.threads().max(1) * 4) };
    let out = SyncPtr(dbias.as_mut_ptr());
    par.for_each(tasks, &|task, _thread| {
        let (j0, j1) = (task * oc / tasks, (task + 1) * oc / tasks);
        // SAFETY: tasks own disjoint column ranges j0..j1 of dbias (OC floats, checked by
        // the caller); dout holds N*OC floats.
        unsafe { colsum_add(out.get().add(j0), dout.as_ptr().add(j0), n, oc, j1 - j0) }
    });
}

pub(crate) fn ceil_div(x: usize, y: usize) -> usize {
    (x + y - 1) / y
}

simd_kernel! {
    /// dst (W) += column sums of src (N rows, row stride ld, W columns).
    /// Safety: both are valid for those floats and no one else touches dst meanwhile.
    unsafe fn colsum_add(dst: *mut f32, src: *const f32, n: usize, ld: usize, w: usize) => colsum_add_impl
}

/// Vectors of columns `colsum_add` sums at once, each in its own register: the sums of
/// one column block are independent chains, and every row of dout is read as one
/// contiguous run (one vector per column block went down the rows with a single add
/// chain: 9-12% of a nanoGPT-size backward pass).
const COLSUM_VECS: usize = 8;

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn colsum_add_impl<V: crate::simd::F32Vec>(dst: *mut f32, src: *const f32, n: usize, ld: usize, w: usize) {
    let l = V::LANES;
    let mut j = 0;
    // SAFETY (all loops): columns j.. < w, rows < n, as the caller promises.
    unsafe {
        while j + COLSUM_VECS * l <= w {
            let mut s = [V::zero(); COLSUM_VECS];
            for i in 0..n {
                let row = src.add(i * ld + j);
                for v in 0..COLSUM_VECS {
                    s[v] = s[v].add(V::load(row.add(v * l)));
                }
            }
            for v in 0..COLSUM_VECS {
                let d = dst.add(j + v * l);
                V::load(d).add(s[v]).store(d);
            }
            j += COLSUM_VECS * l;
        }
        while j + l <= w {
            let mut s = V::zero();
            for i in 0..n {
                s = s.add(V::load(src.add(i * ld + j)));
            }
            V::load(dst.add(j)).add(s).store(dst.add(j));
            j += l;
        }
        while j < w {
            let mut s = 0.0f32;
            for i in 0..n {
                s += *src.add(i * ld + j);
            }
            *dst.add(j) += s;
            j += 1;
        }
    }
}
