//! The bf16 GEMM: C (M,N) f32 = A (M,K) bf16 · B (K,N) bf16 [+ bias], or C += it, with
//! AVX512_BF16's `vdpbf16ps`, which multiplies pairs of bf16 and adds both products into an
//! f32 lane: 32 multiply-adds an instruction against the f32 FMA's 16, at the same rate on
//! Zen 4. It serves the compact forward past COMPACT_GEMV_ROWS rows (a prompt, a batch
//! being scored) and both products of bf16 mixed-precision training (mixed.rs).
//!
//! The structure is matmul/gemm.rs's, in pairs of k:
//!
//! ```text
//! A as pairs (M, K2)  u32 = A[i, 2p] | A[i, 2p+1] << 16, K2 = ceil(K/2), zero-padded;
//!                     made once per call by the caller (`round_rows`, `pair_columns`),
//!                     read in place by the microkernel (one broadcast per row and pair)
//! for each task (column block × row range, handed out as threads come free):
//!   for pc in K2 by KC2:
//!     pack B[2pc.., j0..j1] -> NR-column panels (KC2, NR) u32, this thread's scratch
//!     for ir in its rows by MR:              A micro-panel (MR, KC2): 9 KB, in L1
//!       for jr in its columns by NR:         B panels stream from L2
//!         microkernel: MR × NR tile of C in 24 zmm accumulators for all of KC2
//! ```
//!
//! Each task packs its own B block, so a block split over row ranges is packed once per
//! range; the ranges are at least ROW_TASK_MIN rows, so that costs under 1% of the
//! multiply-adds. vdpbf16ps flushes denormal inputs and results to zero and rounds the sum
//! of each pair once: within the tolerances of the f32 path, which computes the same
//! products exactly and adds them one at a time.

use super::bf16_round;
use crate::matmul::gemm::{balanced_block, pack_transposed, split_front, Out};
use crate::parallel::SyncPtr;
use crate::simd::x86::Avx512;
use crate::Parallel;
use std::arch::x86_64::*;

/// Micro-tile rows (broadcast pairs of A per step).
const MR: usize = 6;
/// Micro-tile columns in zmm (16 f32 each): 6 × 4 = 24 accumulators + 4 of B + 1 of A.
const NV: usize = 4;
const NR: usize = NV * 16;
/// Pairs of k per packed slice: 768 values of k, the f32 GEMM's KC.
const KC2: usize = 384;
/// NR panels per column block: a (KC2, 320) u32 block is 480 KB, about half of Zen 4's
/// 1 MB L2 (the f32 GEMM's 1 MB block was measured no better there).
const NC_PANELS: usize = 5;
/// Fewest rows a row range of a task covers (see the module comment).
const ROW_TASK_MIN: usize = 96;
/// Below this many multiply-adds the product runs on the calling thread.
const SERIAL_FMAS: usize = 1 << 17;
/// u32 of alignment slack per thread: its buffers start on 64-byte boundaries.
const ALIGN: usize = 16;

/// A as pairs: row i of K2 u32 at `ptr + i * ld`.
#[derive(Clone, Copy)]
pub(crate) struct Pairs {
    pub ptr: *const u32,
    pub ld: usize,
}

/// A read-only strided bf16 matrix: element (k, j) at `ptr[k*rs + j*cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat16 {
    pub ptr: *const u16,
    pub rs: usize,
    pub cs: usize,
}

/// One product: C (M, N, row stride ldc) (+)= A (M, K) · B (K, N) + bias (N, or null).
#[derive(Clone, Copy)]
pub(crate) struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Pairs,
    pub b: Mat16,
    pub c: *mut f32,
    pub ldc: usize,
    /// C += A·B (+ bias) when true; otherwise C = A·B (+ bias).
    pub accumulate: bool,
    pub bias: *const f32,
}

// SAFETY: a Problem is built from slices that outlive the `gemm` call, which returns only
// after every task has (for_each joins); tasks read A, B and bias and write disjoint tiles
// of C.
unsafe impl Send for Problem {}
// SAFETY: see Send.
unsafe impl Sync for Problem {}

/// u32 of scratch per thread: a packed B block and an edge panel of A.
fn per_thread(k: usize) -> usize {
    let kc2 = balanced_block(k.div_ceil(2), KC2, 1);
    ALIGN + kc2 * NC_PANELS * NR + MR * kc2
}

/// Scratch floats (4-byte words) `gemm` needs for a product of depth K on `threads`.
pub(crate) fn scratch_words(k: usize, threads: usize) -> usize {
    threads.max(1) * per_thread(k)
}

/// C (+)= A·B [+ bias] on `par`'s threads, with `scratch_words(p.k, par.threads())` words
/// of `scratch`.
///
/// # Safety
/// The Problem's pointers hold its shapes (A: M rows of ceil(K/2) pairs; B: K × N; C: M
/// rows of N at stride ldc; bias N floats or null); no one else touches C meanwhile; the
/// CPU has avx512f/bw/vl/bf16 (`x86::has_bf16_dot`).
pub(crate) unsafe fn gemm(par: &dyn Parallel, scratch: &mut [f32], p: Problem) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    let par: &dyn Parallel = if p.m * p.n * p.k < SERIAL_FMAS { &crate::Serial } else { par };
    let threads = par.threads().max(1);
    let per = per_thread(p.k);
    assert!(scratch.len() >= threads * per, "bf16 gemm: scratch too small");
    let np = p.n.div_ceil(NR); // NR panels of C
    let col_tasks = np.div_ceil(NC_PANELS);
    // Too few column blocks to keep every thread busy to the end: split rows as well.
    let row_tasks = (4 * threads).div_ceil(col_tasks).clamp(1, p.m.div_ceil(ROW_TASK_MIN).max(1));
    let mp = p.m.div_ceil(MR);
    let base = SyncPtr(scratch.as_mut_ptr() as *mut u32);
    let p = &p;
    par.for_each(col_tasks * row_tasks, &|task, thread| {
        // Row ranges of one column block are neighbouring tasks: threads running them at
        // once pack the same B block, read from DRAM once and shared in L3.
        let (q0, q1) = split_front(np, col_tasks, task / row_tasks);
        let (r0, r1) = split_front(mp, row_tasks, task % row_tasks);
        // SAFETY: concurrent tasks have distinct threads (for_each's contract), so their
        // `per`-word slices of scratch (checked above) are disjoint; tasks write disjoint
        // tiles (rows r0..r1 × columns q0..q1 panels) of C.
        unsafe {
            let mine = base.get().add(thread * per);
            let skew = (mine as usize / 4).wrapping_neg() % ALIGN;
            run_task(p, mine.add(skew), q0 * NR, (q1 * NR).min(p.n), r0 * MR, (r1 * MR).min(p.m));
        }
    });
}

/// Columns j0..j1 and rows i0..i1 of C, with `buf` for the packed B block and A's edge.
///
/// # Safety
/// As `gemm`; buf has per_thread(K) - ALIGN words of this thread's own.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
unsafe fn run_task(p: &Problem, buf: *mut u32, j0: usize, j1: usize, i0: usize, i1: usize) {
    let k2 = p.k.div_ceil(2);
    let kcb = balanced_block(k2, KC2, 1);
    let bbuf = buf; // (kb2, NR) panels of columns j0..j1
    let abuf = buf.add(kcb * NC_PANELS * NR); // (MR, kb2) edge rows of A
    let mut pc = 0;
    while pc < k2 {
        let kb2 = kcb.min(k2 - pc);
        let panels = (j1 - j0).div_ceil(NR);
        for q in 0..panels {
            let j = j0 + q * NR;
            pack_b_panel(p.b, p.k, j, NR.min(j1 - j), 2 * pc, kb2, bbuf.add(q * NR * kb2));
        }
        let first = pc == 0;
        let mut i = i0;
        while i < i1 {
            let mvalid = MR.min(i1 - i);
            let (ap, lda) = if mvalid == MR {
                (p.a.ptr.add(i * p.a.ld + pc), p.a.ld)
            } else {
                for r in 0..MR {
                    for t in 0..kb2 {
                        *abuf.add(r * kb2 + t) = if r < mvalid { *p.a.ptr.add((i + r) * p.a.ld + pc + t) } else { 0 };
                    }
                }
                (abuf as *const u32, kb2)
            };
            for q in 0..panels {
                let j = j0 + q * NR;
                let out = Out {
                    c: p.c.add(i * p.ldc + j),
                    ldc: p.ldc,
                    mvalid,
                    nvalid: NR.min(j1 - j),
                    overwrite: first && !p.accumulate,
                    bias: if first && !p.bias.is_null() { p.bias.add(j) } else { core::ptr::null() },
                };
                microkernel(kb2, ap, lda, bbuf.add(q * NR * kb2), out);
            }
            i += MR;
        }
        pc += kb2;
    }
}

/// Packs columns j0..j0+nvalid of B, pairs of k from k0 (even), into dst (kb2, NR):
/// dst[t*NR + j] = B[k0+2t, j0+j] | B[k0+2t+1, j0+j] << 16, zero past K and past nvalid.
///
/// # Safety
/// B holds K rows and the columns; dst has kb2*NR writable words; the CPU has AVX-512.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[inline]
unsafe fn pack_b_panel(b: Mat16, k: usize, j0: usize, nvalid: usize, k0: usize, kb2: usize, dst: *mut u32) {
    let whole_pairs = k0 + 2 * kb2 <= k;
    if b.cs == 1 {
        // Rows of B are contiguous (inp in dweight, the weight in dinp): interleave them.
        for t in 0..kb2 {
            let (ka, d) = (k0 + 2 * t, dst.add(t * NR));
            let r0 = b.ptr.add(ka * b.rs + j0);
            let second = ka + 1 < k;
            if nvalid == NR && second {
                let r1 = r0.add(b.rs);
                for v in 0..NV {
                    let lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(r0.add(16 * v) as *const __m256i));
                    let hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(r1.add(16 * v) as *const __m256i));
                    _mm512_storeu_si512(d.add(16 * v) as *mut __m512i, _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi)));
                }
            } else {
                for j in 0..NR {
                    let lo = if j < nvalid { *r0.add(j) as u32 } else { 0 };
                    let hi = if j < nvalid && second { *r0.add(b.rs + j) as u32 } else { 0 };
                    *d.add(j) = lo | hi << 16;
                }
            }
        }
    } else if b.rs == 1 && b.cs % 2 == 0 && whole_pairs && (b.ptr as usize) % 4 == 0 {
        // Columns of B are contiguous (the weight transposed, forward): each column's pairs
        // are whole u32s, so this is the f32 GEMM's 32-bit transpose. (An odd K or a
        // weight at an odd u16 offset takes the general loop below.)
        let src = b.ptr.add(j0 * b.cs + k0) as *const f32;
        pack_transposed::<Avx512>(src, b.cs / 2, nvalid, NR, kb2, dst as *mut f32);
    } else {
        for t in 0..kb2 {
            let ka = k0 + 2 * t;
            for j in 0..NR {
                let at = |kk: usize| if j < nvalid && kk < k { *b.ptr.add(kk * b.rs + (j0 + j) * b.cs) as u32 } else { 0 };
                *dst.add(t * NR + j) = at(ka) | at(ka + 1) << 16;
            }
        }
    }
}

/// C tile (+)= A (MR rows of kb2 pairs, row stride lda) · packed B panel (kb2, NR).
///
/// # Safety
/// MR rows of kb2 words at a + i*lda, kb2*NR words at b, and `out`'s tile are valid; the
/// CPU has avx512bf16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn microkernel(kb2: usize, a: *const u32, lda: usize, b: *const u32, out: Out) {
    // SAFETY: __m512i and __m512bh are both 64 bytes of plain bits.
    let bh = |v: __m512i| unsafe { core::mem::transmute::<__m512i, __m512bh>(v) };
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut rows = [a; MR];
    for i in 0..MR {
        rows[i] = a.add(i * lda);
    }
    for t in 0..kb2 {
        let bp = b.add(t * NR);
        let mut bv = [bh(_mm512_setzero_si512()); NV];
        for v in 0..NV {
            bv[v] = bh(_mm512_loadu_si512(bp.add(16 * v) as *const __m512i));
        }
        for i in 0..MR {
            let av = bh(_mm512_set1_epi32(*rows[i].add(t) as i32));
            for v in 0..NV {
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
            }
        }
    }
    let Out { c, ldc, mvalid, nvalid, overwrite, bias } = out;
    let mut bvec = [_mm512_setzero_ps(); NV];
    if !bias.is_null() && nvalid == NR {
        for v in 0..NV {
            bvec[v] = _mm512_loadu_ps(bias.add(16 * v));
        }
    }
    if mvalid == MR && nvalid == NR {
        for i in 0..MR {
            for v in 0..NV {
                let d = c.add(i * ldc + 16 * v);
                let x = _mm512_add_ps(acc[i][v], bvec[v]);
                _mm512_storeu_ps(d, if overwrite { x } else { _mm512_add_ps(_mm512_loadu_ps(d), x) });
            }
        }
    } else {
        let mut tmp = [0f32; MR * NR];
        for i in 0..MR {
            for v in 0..NV {
                _mm512_storeu_ps(tmp.as_mut_ptr().add(i * NR + 16 * v), acc[i][v]);
            }
        }
        for i in 0..mvalid {
            for j in 0..nvalid {
                let d = c.add(i * ldc + j);
                let x = tmp[i * NR + j] + if bias.is_null() { 0.0 } else { *bias.add(j) };
                *d = if overwrite { x } else { *d + x };
            }
        }
    }
}

/// dst (M rows at stride ld u16, ld even) = bf16(src (M, K) at row stride lds), zero-padded
/// to an even length: rows of A as pairs (Pairs { ld: ld / 2 }) or of B (Mat16 { rs: ld,
/// cs: 1 }).
pub(crate) fn round_rows(par: &dyn Parallel, dst: &mut [u16], ld: usize, src: &[f32], lds: usize, m: usize, k: usize) {
    assert!(ld % 2 == 0 && ld >= k && dst.len() >= m * ld && (m == 0 || src.len() >= (m - 1) * lds + k), "round_rows: bad shapes");
    let d = SyncPtr(dst.as_mut_ptr());
    let tasks = if m * k < (1 << 16) { 1 } else { par.threads().max(1) * 4 };
    par.for_each(tasks, &|task, _| {
        for i in task * m / tasks..(task + 1) * m / tasks {
            // SAFETY: row i (ld u16) lies in dst (checked above); each row is one task's.
            let row = unsafe { core::slice::from_raw_parts_mut(d.get().add(i * ld), ld) };
            round_into(&mut row[..k], &src[i * lds..i * lds + k]);
            row[k..].fill(0);
        }
    });
}

/// dst (N, OC) rows ld words = pairs of rows of bf16(src (K, N) at row stride lds): dst[o,
/// t] = bf16(src[2t, o]) | bf16(src[2t+1, o]) << 16, zero past K. This is Aᵀ as pairs for
/// the dweight product (A = doutᵀ), made from dout by one pass.
pub(crate) fn pair_columns(par: &dyn Parallel, dst: &mut [u32], ld: usize, src: &[f32], lds: usize, k: usize, n: usize) {
    let k2 = k.div_ceil(2);
    assert!(ld >= k2 && dst.len() >= n * ld && (k == 0 || src.len() >= (k - 1) * lds + n), "pair_columns: bad shapes");
    let d = SyncPtr(dst.as_mut_ptr());
    // Tasks own ranges of dst's rows (columns of src), so their writes never meet; BAND
    // columns at a time keeps the band of dst being written (BAND rows of ld words) in L2.
    const BAND: usize = 256;
    let bands = n.div_ceil(BAND);
    let tasks = if n * k < (1 << 16) { 1 } else { bands };
    par.for_each(tasks, &|task, _| {
        let (o0, o1) = if tasks == 1 { (0, n) } else { (task * BAND, ((task + 1) * BAND).min(n)) };
        for t in 0..k2 {
            let r0 = &src[2 * t * lds..];
            for o in o0..o1 {
                let lo = bf16_round(r0[o]) as u32;
                let hi = if 2 * t + 1 < k { bf16_round(r0[lds + o]) as u32 } else { 0 };
                // SAFETY: o < n and t < k2 <= ld: inside dst; row o is this task's only.
                unsafe { *d.get().add(o * ld + t) = lo | hi << 16 };
            }
        }
    });
}

/// bf16_round over a slice, compiled for AVX-512 where the CPU has it, so that it runs 16
/// at a time.
fn round_into(dst: &mut [u16], src: &[f32]) {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn wide(dst: &mut [u16], src: &[f32]) {
        for (h, &x) in dst.iter_mut().zip(src) {
            *h = bf16_round(x);
        }
    }
    if super::x86::has_bf16_dot() {
        // SAFETY: has_bf16_dot() found AVX-512 (with BW and VL).
        unsafe { wide(dst, src) }
    } else {
        for (h, &x) in dst.iter_mut().zip(src) {
            *h = bf16_round(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{bf16_widen, x86::has_bf16_dot, test_vals as vals};
    use super::*;

    /// Every B layout the callers use (rows contiguous, columns contiguous, an odd stride),
    /// odd and even K, edge tiles in both directions, more than one K slice, bias and
    /// accumulate: against f64 sums of the widened bf16 operands.
    #[test]
    fn bf16_gemm_matches_f64() {
        if !has_bf16_dot() {
            eprintln!("bf16 gemm: this CPU has no AVX512_BF16; not run");
            return;
        }
        for &(m, n, k) in &[(1usize, 1usize, 1usize), (7, 65, 3), (13, 130, 800), (6, 64, 2), (20, 321, 769), (97, 700, 100)] {
            let k2 = k.div_ceil(2);
            let af = vals(m * k, 1);
            let mut ab = vec![0u16; m * 2 * k2];
            round_rows(&crate::Serial, &mut ab, 2 * k2, &af, k, m, k);
            let bf = vals(k * n, 2);
            let b_rows: Vec<u16> = bf.iter().map(|&x| bf16_round(x)).collect(); // (K, N)
            let b_cols: Vec<u16> = (0..n * k).map(|i| b_rows[(i % k) * n + i / k]).collect(); // (N, K)
            let bias = vals(n, 3);
            let bmats = [Mat16 { ptr: b_rows.as_ptr(), rs: n, cs: 1 }, Mat16 { ptr: b_cols.as_ptr(), rs: 1, cs: k }];
            for (layout, b) in bmats.iter().enumerate() {
                for (with_bias, accumulate) in [(true, false), (false, true), (true, true)] {
                    let mut c = vals(m * n, 4);
                    let before = c.clone();
                    let mut scratch = vec![0f32; scratch_words(k, 1)];
                    let p = Problem { m, n, k, a: Pairs { ptr: ab.as_ptr() as *const u32, ld: k2 }, b: *b, c: c.as_mut_ptr(), ldc: n, accumulate, bias: if with_bias { bias.as_ptr() } else { core::ptr::null() } };
                    // SAFETY: the buffers have the Problem's shapes; has_bf16_dot() checked.
                    unsafe { gemm(&crate::Serial, &mut scratch, p) };
                    for i in 0..m {
                        for j in 0..n {
                            let (mut s, mut mag) = (0f64, 0f64);
                            for kk in 0..k {
                                let x = bf16_widen(ab[i * 2 * k2 + kk]) as f64 * bf16_widen(b_rows[kk * n + j]) as f64;
                                s += x;
                                mag += x.abs();
                            }
                            if with_bias {
                                s += bias[j] as f64;
                            }
                            if accumulate {
                                s += before[i * n + j] as f64;
                            }
                            let got = c[i * n + j] as f64;
                            assert!((got - s).abs() <= 1e-5 * (1.0 + mag), "layout {layout} m={m} n={n} k={k} ({i},{j}): {got} vs {s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pair_columns_transposes_pairs_of_rows() {
        let (k, n, lds) = (5, 3, 4);
        let src: Vec<f32> = (0..k * lds).map(|i| i as f32).collect();
        let mut dst = vec![7u32; n * 3];
        pair_columns(&crate::Serial, &mut dst, 3, &src, lds, k, n);
        for o in 0..n {
            for t in 0..3 {
                let lo = bf16_round(src[2 * t * lds + o]) as u32;
                let hi = if 2 * t + 1 < k { bf16_round(src[(2 * t + 1) * lds + o]) as u32 } else { 0 };
                assert_eq!(dst[o * 3 + t], lo | hi << 16);
            }
        }
    }
}
