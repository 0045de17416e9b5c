//! Fused causal multi-head self-attention, flash-style: forward streams over key tiles
//! with an online softmax and never holds more than one (tile x tile) score block per
//! head and thread; it saves only the log-sum-exp of each row. Backward recomputes the
//! scores from qkv and lse. Scale 1/sqrt(HS). Optional dropout on the attention weights,
//! keyed by index ((b*NH + h)*T + t)*T + s (wrapping u32) in the counter RNG.
//!
//! Layout: qkv (B,T,3C) holds, for each token, q (C) | k (C) | v (C), and each of those is
//! (NH,HS). A row of q/k/v for head h is therefore HS contiguous floats at stride 3C.
//!
//! Every product is one register-blocked kernel (`mk`): an (R x NV vectors) block of the
//! result stays in registers while k runs, each step loading NV vectors of a row-major B
//! and broadcasting R elements of A, which it reads through strides (so no operand needs
//! transposing for it). It serves two shapes: score blocks (k = HS, vectors along the
//! tile; 4 rows x 4 vectors on AVX-512) and the products with a score block (k along the
//! tile, vectors along HS; 8 x 2 at HS = 32, 4 x 4 at HS = 64). The kernels are compiled
//! once per instruction set (`simd_kernel!` in `kern`), not inlined into every call site.
//!
//! Forward: one task per (b, h, query tile of TL rows); a head with T <= TILE is one task
//! and one tile. The query tile is transposed into scratch (HS,LD) once (LD = TL rounded
//! up to 16 floats). Per key tile the scores are computed transposed, Sᵀ (keys x
//! queries), so that every per-query softmax statistic is a vector across lanes: the
//! running max m, running sum l and rescale factor alpha need no horizontal reductions,
//! and the score kernel's epilogue applies the causal mask (-inf) and takes the column
//! maxima while the block is still in registers. On the diagonal tile a key row skips the
//! query vectors wholly before it. A second pass turns Sᵀ into Pᵀ = exp(Sᵀ - m) in place
//! (exact zeros where masked or skipped), sums l, then drops. Then O (TL,HS) = alpha ∘ O +
//! P V, whose A operand is Pᵀ read down its columns; on the last (diagonal) key tile the
//! same product scales by 1/l and writes `out` directly, so at T <= TILE nothing is ever
//! rescaled and O never touches scratch. lse = m + ln l.
//!
//! Backward (FlashAttention-2): one task per (b, h) pair, so a task owns every dq, dk, dv
//! element of its head and no two threads ever write the same dqkv float. Per key tile
//! (k and v transposed into scratch (HS,LD)) and per query tile at or below it, row
//! blocks of queries compute with the scores in registers
//!   P = exp(s - lse_i) (masked: 0), dP = Z ∘ (dO_i · vᵀ), dS = P ∘ (dP - D_i) (x scale),
//! where Z is the dropout factor (keep ? 1/(1-p) : 0, or 1 without dropout), and store
//! Z P and dS of the whole (query tile x key tile) block row-major in scratch (two
//! (TL,LD) blocks; on the diagonal, key vectors past a row block's last query are stored
//! as zeros rather than computed). With dropout, O_i = Σ_j Z_ij P_ij v_j, so D_i =
//! dO_i · O_i is still Σ_j P_ij dP_ij. Then dv_j += Σ_i Z P dO_i, dk_j += Σ_i dS q_i (key
//! rows x HS) and dq_i += Σ_j dS k_j (query rows x HS, straight into dqkv), each skipping
//! the masked triangle of the diagonal tile. dk and dv of a key tile with several query
//! tiles accumulate in scratch and are added to dqkv after its last one; the last key tile
//! has only its own query tile and accumulates into dqkv directly.
//!
//! Alignment: scratch is used from its first 64-byte line on, and every tile in it starts
//! on one. The products read their B rows (v forward; q, dO and k backward) once per row
//! block; when the caller's rows do not start on 64-byte lines (vector loads that
//! straddle two lines cost two each time) they are first copied into aligned scratch,
//! by the score kernel row block by row block as it reads them (so the memory reads
//! overlap its FMAs), or right after the transpose for k. Aligned rows are read in place.
//!
//! Scratch per thread (HS = 64, TL = 64): forward 16.7k floats, backward 36.9k + T floats.

use crate::rng::{keep, Dropout};
use crate::simd::math::{acc_into, dot, ln_pos, VecMath};
use crate::Parallel;

/// Tile edge (query rows per forward task, keys per tile), capped at T.
const TILE: usize = 64;

/// Widest SIMD vector of any backend, in floats: tile rows are padded to a multiple of it.
const MAXL: usize = 16;

const NEG_INF: f32 = f32::NEG_INFINITY;
/// `load(NEG_LO[MAXL - o..])`: lanes k < o are -inf, the rest 0 (o <= LANES): added to a
/// score vector whose first o lanes are causally masked.
static NEG_LO: [f32; 2 * MAXL] = [
    NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, //
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
];
/// `load(ZERO_LO[MAXL - o..])`: lanes k < o are 0, the rest 1 (o <= LANES).
static ZERO_LO: [f32; 2 * MAXL] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, //
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
];
/// `load(ONE_LO[MAXL - o..])`: lanes k < o are 1, the rest 0 (o <= LANES).
static ONE_LO: [f32; 2 * MAXL] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, //
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
];

/// The vector of a lane-prefix table above for prefix length o (clamped to 0..=LANES).
#[inline(always)]
fn prefix_mask<V: VecMath>(table: &[f32; 2 * MAXL], o: usize) -> V {
    let o = o.min(V::LANES);
    // SAFETY: MAXL - o + LANES <= 2 * MAXL since LANES <= MAXL.
    unsafe { V::load(table.as_ptr().add(MAXL - o)) }
}

fn tile_len(t: usize) -> usize {
    TILE.min(t).max(1)
}

/// Leading dimension of tile-indexed rows: TL rounded up to whole vectors of every
/// backend (a whole line), so that a row can always be computed to the next vector boundary.
fn tile_ld(tl: usize) -> usize {
    al(tl)
}

/// n rounded up to whole 64-byte lines, so that every scratch tile starts on one: a vector
/// load that straddles two lines costs two.
fn al(n: usize) -> usize {
    (n + MAXL - 1) / MAXL * MAXL
}

/// Floats of per-thread scratch the forward pass uses.
fn fwd_floats(t: usize, hs: usize) -> usize {
    let tl = tile_len(t);
    let ld = tile_ld(tl);
    hs * ld // qt: query tile transposed (HS,LD)
        + tl * ld // st: scores / probabilities, transposed (TL keys, LD queries)
        + al(tl * hs) // vc: aligned copy of the value rows, if they need one (TL,HS)
        + al(tl * hs) // acc: output accumulator (TL,HS)
        + 5 * ld // m, tile max, l, alpha, 1/l (LD) each
}

/// Floats of per-thread scratch the backward pass uses.
fn bwd_floats(t: usize, hs: usize) -> usize {
    let tl = tile_len(t);
    let ld = tile_ld(tl);
    2 * hs * ld // kt, vt: key and value tiles transposed (HS,LD) each
        + 3 * al(tl * hs) // kc, qc, dc: aligned copies of k, q, dO rows, if needed (TL,HS) each
        + 2 * al(tl * hs) // dk, dv accumulators of the key tile (TL,HS) each
        + 2 * tl * ld // Z P and dS of one (query tile, key tile) block (TL,LD) each
        + t // D: rowsum(dO ∘ O) for every query row of the head (T)
}

fn per_thread(t: usize, hs: usize) -> usize {
    al(fwd_floats(t, hs).max(bwd_floats(t, hs)))
}

/// The 64-byte aligned part of the caller's scratch (per-thread slices of `per` floats
/// then start on a line too).
fn align_scratch(scratch: &mut [f32]) -> &mut [f32] {
    let skip = scratch.as_ptr().align_offset(64);
    // align_offset may give up (usize::MAX); then unaligned is merely slower.
    let skip = if skip < MAXL { skip } else { 0 };
    let n = scratch.len();
    &mut scratch[skip.min(n)..]
}

/// Scratch floats attention forward/backward need (per-thread tiles) for these dims.
pub fn attention_scratch_len(b: usize, t: usize, c: usize, nh: usize, threads: usize) -> usize {
    let _ = b; // tiles are per thread, not per batch element
    let hs = c.checked_div(nh).unwrap_or(0);
    // MAXL more per thread: the slack `align_scratch` may skip.
    threads.max(1) * (per_thread(t, hs) + MAXL)
}

/// out (B,T,C) = causal softmax(q kᵀ / sqrt(HS)) v per head, where qkv (B,T,3C) holds
/// q, k, v side by side, each (B,T,NH,HS); lse (B,NH,T) = log-sum-exp of each score row.
/// Overwrites out and lse.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(par: &dyn Parallel, scratch: &mut [f32], out: &mut [f32], lse: &mut [f32], qkv: &[f32], b: usize, t: usize, c: usize, nh: usize, dropout: Dropout) {
    if b == 0 || t == 0 || c == 0 {
        return;
    }
    debug_assert!(nh > 0 && c % nh == 0);
    let out = &mut out[..b * t * c]; // (B,T,C)
    let lse = &mut lse[..b * nh * t]; // (B,NH,T)
    let qkv = &qkv[..b * t * 3 * c]; // (B,T,3C)
    let args = kern::Args { out: out.as_mut_ptr(), lse: lse.as_mut_ptr(), ..task_args(par, scratch, qkv, b, t, c, nh, dropout) };
    par.for_each(b * nh * args.ntiles, &|task, thread| kern::forward_task(&args, task, thread));
}

/// dqkv (B,T,3C) += gradient of the forward above, from dout (B,T,C), qkv, out and lse.
/// Accumulates, or overwrites dqkv when `overwrite` (the same bits as zeroing it first).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(par: &dyn Parallel, scratch: &mut [f32], dqkv: &mut [f32], dout: &[f32], qkv: &[f32], out: &[f32], lse: &[f32], b: usize, t: usize, c: usize, nh: usize, dropout: Dropout, overwrite: bool) {
    if b == 0 || t == 0 || c == 0 {
        return;
    }
    debug_assert!(nh > 0 && c % nh == 0);
    let dqkv = &mut dqkv[..b * t * 3 * c]; // (B,T,3C)
    let dout = &dout[..b * t * c]; // (B,T,C)
    let qkv = &qkv[..b * t * 3 * c]; // (B,T,3C)
    let out = &out[..b * t * c]; // (B,T,C)
    let lse = &lse[..b * nh * t]; // (B,NH,T)
    let args = kern::Args {
        dqkv: dqkv.as_mut_ptr(),
        dout: dout.as_ptr(),
        outp: out.as_ptr(),
        lsep: lse.as_ptr(),
        overwrite,
        ..task_args(par, scratch, qkv, b, t, c, nh, dropout)
    };
    par.for_each(b * nh, &|task, thread| kern::backward_task(&args, task, thread));
}

/// The task arguments both passes share (dims, tiling, this call's aligned scratch, qkv),
/// with every pass-specific pointer null: each pass fills in its own.
#[allow(clippy::too_many_arguments)]
fn task_args(par: &dyn Parallel, scratch: &mut [f32], qkv: &[f32], b: usize, t: usize, c: usize, nh: usize, dropout: Dropout) -> kern::Args {
    let hs = c / nh;
    let per = per_thread(t, hs);
    let scratch = align_scratch(scratch);
    // A real assert: the tasks index scratch through raw pointers.
    assert!(scratch.len() >= par.threads().max(1) * per, "attention scratch too small");
    let tl = tile_len(t);
    kern::Args {
        out: core::ptr::null_mut(),
        lse: core::ptr::null_mut(),
        dqkv: core::ptr::null_mut(),
        dout: core::ptr::null(),
        outp: core::ptr::null(),
        lsep: core::ptr::null(),
        qkv: qkv.as_ptr(),
        scratch: scratch.as_mut_ptr(),
        per,
        b,
        t,
        c,
        nh,
        hs,
        tl,
        ntiles: (t + tl - 1) / tl,
        dropout,
        overwrite: false,
    }
}

/// The dropout index of (b*NH + h, query i, key j), in wrapping u32 arithmetic like the
/// TypeScript reference: ((bh*T + i)*T + j) mod 2^32. Returns the row base (j = 0).
#[inline(always)]
fn drop_row_base(bh: usize, t: usize, i: usize) -> u32 {
    (bh as u32).wrapping_mul(t as u32).wrapping_add(i as u32).wrapping_mul(t as u32)
}

mod kern {
    use super::*;

    /// Everything a task needs, as raw pointers: tasks on different threads write
    /// disjoint parts of out/lse (forward) or dqkv (backward), which `&mut` slices cannot
    /// express.
    pub struct Args {
        pub out: *mut f32,    // (B,T,C), forward only
        pub lse: *mut f32,    // (B,NH,T), forward only
        pub dqkv: *mut f32,   // (B,T,3C), backward only
        pub dout: *const f32, // (B,T,C), backward only
        pub outp: *const f32, // (B,T,C), backward only
        pub lsep: *const f32, // (B,NH,T), backward only
        pub qkv: *const f32,  // (B,T,3C)
        pub scratch: *mut f32, // (threads, per), 64-byte aligned
        pub per: usize,
        pub b: usize,
        pub t: usize,
        pub c: usize,
        pub nh: usize,
        pub hs: usize,
        pub tl: usize,
        pub ntiles: usize,
        pub dropout: Dropout,
        pub overwrite: bool, // backward: the first write of each dqkv row stores
    }
    // SAFETY: the pointers come from slices that outlive `par.for_each`; tasks only read
    // the shared inputs and write regions no other task writes (see the task bodies), and
    // each thread uses only its own scratch slice.
    unsafe impl Sync for Args {}

    crate::simd_kernel! {
        /// One (b, h, query tile) of the forward pass.
        pub fn forward_task(a: &Args, task: usize, thread: usize) => forward_task_impl
    }

    crate::simd_kernel! {
        /// One (b, h) pair of the backward pass.
        pub fn backward_task(a: &Args, task: usize, thread: usize) => backward_task_impl
    }

    // The register-blocked kernels are compiled once per instruction set here, not inlined
    // at every call site: inlined, each site instantiated every block shape and the
    // backward task alone grew to ~100 KB of code, far past L1i.

    crate::simd_kernel! {
        /// Sᵀ of one (key tile, query tile) block, see `fwd_scores_impl`.
        pub unsafe fn fwd_scores(g: &ScoreArgs, nk: usize, nqv: usize) => fwd_scores_impl
    }

    crate::simd_kernel! {
        /// P and dS of one (query tile, key tile) block, see `bwd_scores_impl`.
        pub unsafe fn bwd_scores(g: &BwdArgs, nq: usize, nk: usize, nkv: usize) => bwd_scores_impl
    }

    crate::simd_kernel! {
        /// One product with a (tile x HS) result, see `prod_impl`.
        pub unsafe fn prod(p: &Prod, nr: usize, kr: KRange) => prod_impl
    }
}

use kern::Args;

/// Whether rows at `ptr` (row stride `stride` floats) all start on a 64-byte line, so that
/// the products can read them in place as whole vectors. Otherwise they are first copied
/// into (aligned) scratch: a vector load that straddles two lines costs two, and a product
/// reads its rows once per row block. Aligned, the copy costs more than it saves.
fn rows_aligned<V: VecMath>(ptr: *const f32, stride: usize) -> bool {
    V::LANES == 1 || (ptr as usize % 64 == 0 && stride % MAXL == 0)
}

#[inline(always)]
fn forward_task_impl<V: VecMath>(a: &Args, task: usize, thread: usize) {
    let (t, c, nh, hs, tl) = (a.t, a.c, a.nh, a.hs, a.tl);
    let c3 = 3 * c;
    let l = V::LANES;
    // Late query tiles have the most key tiles: hand them out first for load balance.
    let bh = task / a.ntiles;
    let qt = a.ntiles - 1 - task % a.ntiles;
    let (b, h) = (bh / nh, bh % nh);
    debug_assert!(b < a.b);
    // SAFETY: the caller checked scratch holds threads * per floats and `thread` is
    // unique among concurrent tasks, so this slice is ours alone.
    let scr = unsafe { core::slice::from_raw_parts_mut(a.scratch.add(thread * a.per), a.per) };
    let ld = tile_ld(tl);
    let (qtr, rest) = scr.split_at_mut(hs * ld); // (HS,LD)
    let (st, rest) = rest.split_at_mut(tl * ld); // (TL keys, LD queries)
    let (vc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    let (acc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    let (mrow, rest) = rest.split_at_mut(ld); // (LD) running max
    let (mtile, rest) = rest.split_at_mut(ld); // (LD) max over the current key tile
    let (lrow, rest) = rest.split_at_mut(ld); // (LD) running sum
    let (alpha, rest) = rest.split_at_mut(ld); // (LD) rescale factor of this key tile
    let invl = &mut rest[..ld]; // (LD) 1 / l, for the last key tile
    // SAFETY: qkv holds B*T*3C floats (checked by the slicing in attention_forward) and
    // is only read.
    let qkv = unsafe { core::slice::from_raw_parts(a.qkv, a.b * t * c3) }; // (B,T,3C)
    let qoff = b * t * c3 + h * hs; // q of (b, 0, h); k at +C, v at +2C
    let scale = 1.0 / (hs as f32).sqrt();
    let dropout = a.dropout;

    let i0 = qt * tl;
    let i1 = (i0 + tl).min(t);
    let nq = i1 - i0;
    let nqv = (nq + l - 1) / l; // query vectors
    let qw = nqv * l; // <= LD
    transpose_tile::<V>(qtr, qkv, qoff + i0 * c3, c3, nq, hs, ld);
    // Padding queries (lanes nq..qw) get finite scores rather than stale scratch (NaN,
    // denormals): they never reach out or lse, and lanes do not mix.
    zero_cols(qtr, hs, ld, nq, qw);
    mrow[..qw].fill(NEG_INF);
    lrow[..qw].fill(0.0);
    for ktile in 0..=qt {
        let j0 = ktile * tl;
        let j1 = (j0 + tl).min(t);
        let nk = j1 - j0;
        let diag = ktile == qt;
        let (koff, voff) = (qoff + c + j0 * c3, qoff + 2 * c + j0 * c3);
        assert!(voff + (nk - 1) * c3 + hs <= qkv.len() && nk * hs <= vc.len() && nk * ld <= st.len());
        // P V reads the value tile once per row block. If its rows need copying, the
        // score kernel copies them on the way, block by block, so that the reads from
        // memory overlap its FMAs.
        let vdirect = rows_aligned::<V>(qkv[voff..].as_ptr(), c3);
        let (vb, vld) = if vdirect { (qkv[voff..].as_ptr(), c3) } else { (vc.as_ptr(), hs) };
        mtile[..qw].fill(NEG_INF);
        let g = ScoreArgs {
            out: st.as_mut_ptr(),
            ld,
            mt: mtile.as_mut_ptr(),
            b: qtr.as_ptr(),
            a: qkv[koff..].as_ptr(),
            ars: c3,
            hs,
            diag,
            scale,
            cp_src: if vdirect { core::ptr::null() } else { qkv[voff..].as_ptr() },
            cp_dst: vc.as_mut_ptr(),
        };
        // SAFETY: key and value rows j0..j1 of head h (HS floats at stride 3C) lie inside
        // qkv (asserted above); qtr is (HS,LD) with nqv*LANES <= LD; st holds nk rows of
        // LD, mtile and vc hold LD and nk*HS floats: the bounds `fwd_scores_impl` needs.
        unsafe { kern::fwd_scores(&g, nk, nqv) };
        // Online softmax, one vector of queries at a time: m_new = max(m, tile max),
        // alpha = exp(m - m_new) (on the first tile exp(-inf): unused, O starts at zero).
        for v in (0..qw).step_by(l) {
            // SAFETY: v + LANES <= qw <= LD, the length of mrow, mtile and alpha.
            unsafe {
                let mo = V::load(mrow.as_ptr().add(v));
                let mn = mo.max(V::load(mtile.as_ptr().add(v)));
                mn.store(mrow.as_mut_ptr().add(v));
                mo.sub(mn).exp().store(alpha.as_mut_ptr().add(v));
            }
        }
        let drop = DropRows::new(dropout, bh, t, i0, j0);
        fwd_softmax::<V>(st, ld, mrow, lrow, alpha, nk, nqv, diag, drop);
        if diag {
            for ii in 0..nq {
                invl[ii] = 1.0 / lrow[ii];
            }
        }
        // O = alpha ∘ O + P V; on the last (diagonal) tile it is scaled by 1/l into out.
        // Causal: on the diagonal, query rows r0..r0+rr see keys < r0+rr (the rest of
        // that triangle is exact zeros in P).
        let p = Prod {
            a: st.as_ptr(),
            ars: 1,
            aks: ld,
            b: vb,
            ldb: vld,
            n: hs,
            cin: if ktile > 0 { acc.as_ptr() } else { core::ptr::null() },
            ldcin: hs,
            pre: alpha.as_ptr(),
            // SAFETY (pointer arithmetic): row i0 of out for head h lies inside out.
            cout: if diag { unsafe { a.out.add((b * t + i0) * c + h * hs) } } else { acc.as_mut_ptr() },
            ldcout: if diag { c } else { hs },
            post: if diag { invl.as_ptr() } else { core::ptr::null() },
        };
        debug_assert!(nq <= tl && nk <= tl);
        // SAFETY: A reads st[r + k*LD] for r < nq, k < nk: inside the (TL,LD) block; B
        // reads nk value rows (in place, asserted above, or the copy in vc); alpha/invl
        // hold LD >= nq floats; cin/cout are nq rows of HS floats of acc (TL,HS), or of
        // out for rows i0..i1 of head h in batch b, which this task alone writes (tasks
        // split out by (b, h, query tile)).
        unsafe { kern::prod(&p, nq, if diag { KRange::Below(nk) } else { KRange::All(nk) }) };
    }
    // lse holds B*NH*T floats; this task alone writes entries (b,h,i0..i1).
    // SAFETY: see above.
    let lse = unsafe { core::slice::from_raw_parts_mut(a.lse.add((b * nh + h) * t + i0), nq) }; // (nq)
    for (ii, x) in lse.iter_mut().enumerate() {
        *x = mrow[ii] + ln_pos(lrow[ii]);
    }
}

#[inline(always)]
fn backward_task_impl<V: VecMath>(a: &Args, task: usize, thread: usize) {
    let (t, c, nh, hs, tl) = (a.t, a.c, a.nh, a.hs, a.tl);
    let c3 = 3 * c;
    let l = V::LANES;
    let bh = task;
    let (b, h) = (bh / nh, bh % nh);
    debug_assert!(b < a.b);
    // SAFETY: as in the forward pass, this thread's scratch slice is ours alone.
    let scr = unsafe { core::slice::from_raw_parts_mut(a.scratch.add(thread * a.per), a.per) };
    let ld = tile_ld(tl);
    let (kt, rest) = scr.split_at_mut(hs * ld); // (HS,LD)
    let (vt, rest) = rest.split_at_mut(hs * ld); // (HS,LD)
    // Aligned copies of the rows the products read, when the caller's are not.
    let (kc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    let (qc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    let (dc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    let (dkacc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    let (dvacc, rest) = rest.split_at_mut(al(tl * hs)); // (TL,HS)
    // Per (query tile, key tile) block, the dropped probabilities Z P and dS (pre-scaled),
    // row-major: dv/dk read them down columns, dq along rows (`prod` takes strides).
    let (pblk, rest) = rest.split_at_mut(tl * ld); // (TL queries, LD keys)
    let (dsblk, rest) = rest.split_at_mut(tl * ld); // (TL queries, LD keys)
    let drow = &mut rest[..t]; // (T)
    // SAFETY: the inputs hold the lengths sliced in attention_backward and are only read.
    let (qkv, dout, outp, lse) = unsafe {
        (
            core::slice::from_raw_parts(a.qkv, a.b * t * c3),  // (B,T,3C)
            core::slice::from_raw_parts(a.dout, a.b * t * c),  // (B,T,C)
            core::slice::from_raw_parts(a.outp, a.b * t * c),  // (B,T,C)
            core::slice::from_raw_parts(a.lsep, a.b * nh * t), // (B,NH,T)
        )
    };
    let qoff = b * t * c3 + h * hs; // q of (b, 0, h); k at +C, v at +2C
    let ooff = b * t * c + h * hs; // out / dout of (b, 0, h)
    let lse = &lse[bh * t..(bh + 1) * t]; // (T)
    let scale = 1.0 / (hs as f32).sqrt();
    let dropout = a.dropout;

    // D_i = dO_i · O_i
    for (i, d) in drow.iter_mut().enumerate() {
        let o = ooff + i * c;
        *d = dot::<V>(&dout[o..o + hs], &outp[o..o + hs]);
    }
    // This task is the only one touching head h of batch b in dqkv: rows of dq, dk, dv
    // below are HS floats at qoff + i*3C (+C, +2C), disjoint from every other task.
    // With a.overwrite, the first write of every dqkv row stores instead of adding: the
    // key tile 0 products for dq, the single product of the last key tile for its dk and
    // dv, and the final copy from scratch for the others.
    for ktile in 0..a.ntiles {
        let j0 = ktile * tl;
        let j1 = (j0 + tl).min(t);
        let nk = j1 - j0;
        let nkv = (nk + l - 1) / l; // key vectors
        let koff = qoff + c + j0 * c3;
        transpose_tile::<V>(kt, qkv, koff, c3, nk, hs, ld);
        transpose_tile::<V>(vt, qkv, koff + c, c3, nk, hs, ld);
        // Keys nk..: finite scores (then masked) instead of stale scratch.
        zero_cols(kt, hs, ld, nk, nkv * l);
        zero_cols(vt, hs, ld, nk, nkv * l);
        // dq's B operand (the rows are in cache after the transpose).
        let (kb, kld) = if rows_aligned::<V>(qkv[koff..].as_ptr(), c3) {
            (qkv[koff..].as_ptr(), c3)
        } else {
            copy_rows::<V>(kc, qkv, koff, c3, nk, hs);
            (kc.as_ptr(), hs)
        };
        // The last key tile has one query tile, its own: dk and dv go straight to dqkv.
        let direct = ktile + 1 == a.ntiles;
        for qtile in ktile..a.ntiles {
            let i0 = qtile * tl;
            let i1 = (i0 + tl).min(t);
            let nq = i1 - i0;
            // On the diagonal tile (i0 == j0, so nq == nk) key jj sees only queries ii >= jj.
            let diag = qtile == ktile;
            let (qo, oo) = (qoff + i0 * c3, ooff + i0 * c);
            assert!(qo + (nq - 1) * c3 + hs <= qkv.len() && oo + (nq - 1) * c + hs <= dout.len());
            // q and dO rows: read in place, or copied block by block by the score kernel
            // (their memory reads then overlap its FMAs) and read from the copies.
            let (qdirect, ddirect) = (rows_aligned::<V>(qkv[qo..].as_ptr(), c3), rows_aligned::<V>(dout[oo..].as_ptr(), c));
            let (qb, qld) = if qdirect { (qkv[qo..].as_ptr(), c3) } else { (qc.as_ptr(), hs) };
            let (db, dld) = if ddirect { (dout[oo..].as_ptr(), c) } else { (dc.as_ptr(), hs) };
            let g = BwdArgs {
                p: pblk.as_mut_ptr(),
                ds: dsblk.as_mut_ptr(),
                ld,
                kt: kt.as_ptr(),
                vt: vt.as_ptr(),
                q: qkv[qo..].as_ptr(),
                qs: c3,
                dout: dout[oo..].as_ptr(),
                os: c,
                qc: if qdirect { core::ptr::null_mut() } else { qc.as_mut_ptr() },
                dc: if ddirect { core::ptr::null_mut() } else { dc.as_mut_ptr() },
                lse: lse[i0..].as_ptr(),
                drow: drow[i0..].as_ptr(),
                hs,
                diag,
                scale,
                drop: DropRows::new(dropout, bh, t, i0, j0),
            };
            debug_assert!(nq <= tl && nkv * l <= ld && i1 <= lse.len());
            // SAFETY: q and dO rows i0..i1 of head h lie inside qkv and dout (asserted
            // above); kt/vt are (HS,LD) with nkv*LANES <= LD; pblk/dsblk hold nq rows of
            // LD; qc/dc nq*HS floats; lse/drow entries i0..i1 exist: the bounds
            // `bwd_scores_impl` needs.
            unsafe { kern::bwd_scores(&g, nq, nk, nkv) };
            // dv_j += Σ_i (Z P)_ij dO_i ; dk_j += Σ_i dS_ij q_i (queries i >= the key
            // block's first key on the diagonal tile: the rest are masked zeros).
            let fresh = (!direct && qtile == ktile) || (direct && a.overwrite);
            // SAFETY (pointer arithmetic): rows j0.. of dv and dk of head h in dqkv.
            let (dvp, dkp, ldd) = if direct { unsafe { (a.dqkv.add(koff + c), a.dqkv.add(koff), c3) } } else { (dvacc.as_mut_ptr(), dkacc.as_mut_ptr(), hs) };
            let pv = Prod {
                a: pblk.as_ptr(),
                ars: 1,
                aks: ld,
                b: db,
                ldb: dld,
                n: hs,
                cin: if fresh { core::ptr::null() } else { dvp },
                ldcin: ldd,
                pre: core::ptr::null(),
                cout: dvp,
                ldcout: ldd,
                post: core::ptr::null(),
            };
            let pk = Prod { a: dsblk.as_ptr(), b: qb, ldb: qld, cin: if fresh { core::ptr::null() } else { dkp }, cout: dkp, ..pv };
            let kr = if diag { KRange::From(nq) } else { KRange::All(nq) };
            // SAFETY: A reads pblk/dsblk[q*LD + r] for q < nq, r < nk, inside (TL,LD); B
            // reads nq rows of HS floats of dO / q (in place, asserted above, or the
            // copies); C is nk rows of HS floats of dvacc/dkacc (TL,HS), or rows j0..j1 of
            // dv/dk of this task's head.
            unsafe {
                kern::prod(&pv, nk, kr);
                kern::prod(&pk, nk, kr);
            }
            // dq_i += Σ_j dS_ij k_j, straight into dqkv: one load/store per row block.
            // SAFETY (pointer arithmetic): row i0 of dq of head h in dqkv.
            let dqp = unsafe { a.dqkv.add(qo) };
            let dqin = if a.overwrite && ktile == 0 { core::ptr::null() } else { dqp as *const f32 };
            let pq = Prod { a: dsblk.as_ptr(), ars: ld, aks: 1, b: kb, ldb: kld, n: hs, cin: dqin, ldcin: c3, pre: core::ptr::null(), cout: dqp, ldcout: c3, post: core::ptr::null() };
            // SAFETY: A reads dsblk[r*LD + k] for r < nq, k < nk; B reads nk key rows of HS
            // floats (in place or kc); C is rows i0..i1 of dq of this task's head.
            unsafe { kern::prod(&pq, nq, if diag { KRange::Below(nk) } else { KRange::All(nk) }) };
        }
        if !direct {
            for jj in 0..nk {
                let j = j0 + jj;
                // SAFETY: row j of dk for this task's head, inside (B,T,3C) (see above).
                let dk = unsafe { core::slice::from_raw_parts_mut(a.dqkv.add(qoff + c + j * c3), hs) };
                // SAFETY: row j of dv, likewise.
                let dv = unsafe { core::slice::from_raw_parts_mut(a.dqkv.add(qoff + 2 * c + j * c3), hs) };
                let (dks, dvs) = (&dkacc[jj * hs..(jj + 1) * hs], &dvacc[jj * hs..(jj + 1) * hs]);
                if a.overwrite {
                    dk.copy_from_slice(dks);
                    dv.copy_from_slice(dvs);
                } else {
                    acc_into::<V>(dk, dks);
                    acc_into::<V>(dv, dvs);
                }
            }
        }
    }
}

/// dst (n,HS) row r = src[off + r*stride..][..HS], r < n.
#[inline(always)]
fn copy_rows<V: VecMath>(dst: &mut [f32], src: &[f32], off: usize, stride: usize, n: usize, hs: usize) {
    if n == 0 {
        return;
    }
    assert!(n * hs <= dst.len() && off + (n - 1) * stride + hs <= src.len());
    // SAFETY: just asserted; dst and src are different slices.
    unsafe { copy_rows_raw::<V>(dst.as_mut_ptr(), src[off..].as_ptr(), stride, n, hs) };
}

/// dst (n,HS) row r = src[r*stride..][..HS], r < n. In vectors: a memcpy call per row
/// costs more than the copy.
///
/// # Safety
/// src has n readable rows of HS floats at that stride, dst n*HS writable floats, apart.
#[inline(always)]
unsafe fn copy_rows_raw<V: VecMath>(dst: *mut f32, src: *const f32, stride: usize, n: usize, hs: usize) {
    let l = V::LANES;
    for r in 0..n {
        let (d, s) = (dst.add(r * hs), src.add(r * stride));
        let mut x = 0;
        while x + l <= hs {
            V::load(s.add(x)).store(d.add(x));
            x += l;
        }
        while x < hs {
            *d.add(x) = *s.add(x);
            x += 1;
        }
    }
}

/// x (rows,ld): columns from..to of every row = 0.
fn zero_cols(x: &mut [f32], rows: usize, ld: usize, from: usize, to: usize) {
    if from < to {
        for r in 0..rows {
            x[r * ld + from..r * ld + to].fill(0.0);
        }
    }
}

/// Dropout of a (query tile x key tile) block: the RNG index of (query i0 + x, key j0 + y)
/// is base + x*step + y (wrapping), with base = index of (i0, j0) and step = T.
#[derive(Clone, Copy)]
struct DropRows {
    d: Dropout,
    inv_keep: f32,
    base: u32,
    step: u32,
}

impl DropRows {
    /// The block at query i0, key j0 of head bh (of T x T), or None without dropout.
    fn new(d: Dropout, bh: usize, t: usize, i0: usize, j0: usize) -> Option<Self> {
        if d.p > 0.0 {
            Some(DropRows { d, inv_keep: 1.0 / (1.0 - d.p), base: drop_row_base(bh, t, i0).wrapping_add(j0 as u32), step: t as u32 })
        } else {
            None
        }
    }
}

/// Dropout factors (1/(1-p) if kept, else 0) of LANES elements with RNG indices
/// idx0 + k*step, k < LANES.
#[inline(always)]
fn dropz<V: VecMath>(dr: &DropRows, idx0: u32, step: u32) -> V {
    let mut z = [0.0f32; MAXL];
    for (k, zk) in z.iter_mut().enumerate().take(V::LANES) {
        let idx = idx0.wrapping_add((k as u32).wrapping_mul(step));
        *zk = if keep(dr.d.p, dr.d.seed, dr.d.stream, idx) { dr.inv_keep } else { 0.0 };
    }
    // SAFETY: z holds MAXL >= LANES floats.
    unsafe { V::load(z.as_ptr()) }
}

/// Operands of the forward score kernel: key rows a (HS floats each, at stride ars;
/// broadcast) times the transposed query tile b (HS,ld), into out (key rows at stride ld).
pub struct ScoreArgs {
    out: *mut f32,
    ld: usize,
    /// Column maxima, max-accumulated (LD).
    mt: *mut f32,
    b: *const f32,
    a: *const f32,
    ars: usize,
    hs: usize,
    diag: bool,
    scale: f32,
    /// Value rows to copy along (stride ars, HS floats; null: none) and where to,
    /// contiguous (rows,HS).
    cp_src: *const f32,
    cp_dst: *mut f32,
}

/// Sᵀ of one key tile: out[jj*ld + i] = scale * k_jj · q_i for key rows jj < nk and
/// queries i < nqv*LANES; mt = max(mt, max over jj). On the diagonal tile masked entries
/// (query i < key jj) are -inf, and a row block starts at the vector holding its first
/// key (earlier vectors, wholly masked, are not written). Copies the value rows along.
///
/// # Safety
/// a holds nk rows (and cp_src, if not null, nk rows) of HS floats at stride ars; b is
/// (HS,ld) with nqv*LANES <= ld; out has nk rows of ld, mt nqv*LANES and cp_dst nk*HS
/// writable floats.
#[inline(always)]
unsafe fn fwd_scores_impl<V: VecMath>(g: &ScoreArgs, nk: usize, nqv: usize) {
    if V::LANES >= 16 {
        fwd_scores_rows::<V, 4, 8, 4>(g, nk, nqv);
    } else {
        fwd_scores_rows::<V, 4, 8, 2>(g, nk, nqv);
    }
}

/// # Safety
/// See `fwd_scores_impl`.
#[inline(always)]
unsafe fn fwd_scores_rows<V: VecMath, const R: usize, const R2: usize, const NVM: usize>(g: &ScoreArgs, nk: usize, nqv: usize) {
    let l = V::LANES;
    let mut jb = 0;
    while jb < nk {
        let v0 = if g.diag { jb / l } else { 0 };
        if v0 + 1 == nqv && jb + R2 <= nk {
            // One query vector left (the last rows of the diagonal tile): R2 > R rows, so
            // that there are enough FMA chains to hide their latency.
            fwd_score_tile::<V, R2, 1>(g, jb, v0);
            if !g.cp_src.is_null() {
                copy_rows_raw::<V>(g.cp_dst.add(jb * g.hs), g.cp_src.add(jb * g.ars), g.ars, R2, g.hs);
            }
            jb += R2;
            continue;
        }
        if jb + R <= nk {
            let mut v0 = v0;
            while v0 < nqv {
                let nv = (nqv - v0).min(NVM);
                match nv {
                    1 => fwd_score_tile::<V, R, 1>(g, jb, v0),
                    2 => fwd_score_tile::<V, R, 2>(g, jb, v0),
                    3 if NVM >= 3 => fwd_score_tile::<V, R, 3>(g, jb, v0),
                    _ => fwd_score_tile::<V, R, NVM>(g, jb, v0),
                }
                v0 += nv;
            }
        } else {
            // Leftover rows (nk not a multiple of R), one vector at a time.
            for v0 in (if g.diag { jb / l } else { 0 })..nqv {
                fwd_score_tile::<V, 1, 1>(g, jb, v0);
            }
        }
        let rr = if jb + R <= nk { R } else { 1 };
        if !g.cp_src.is_null() {
            copy_rows_raw::<V>(g.cp_dst.add(jb * g.hs), g.cp_src.add(jb * g.ars), g.ars, rr, g.hs);
        }
        jb += rr;
    }
}

/// R key rows jb.. x NV query vectors v0.. of `fwd_scores_impl`.
///
/// # Safety
/// See `fwd_scores_impl`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn fwd_score_tile<V: VecMath, const R: usize, const NV: usize>(g: &ScoreArgs, jb: usize, v0: usize) {
    let l = V::LANES;
    let acc = mk::<V, R, NV>([[V::zero(); NV]; R], g.a.add(jb * g.ars), g.ars, 1, g.b.add(v0 * l), g.ld, 0, g.hs);
    let vs = V::splat(g.scale);
    let mut mx = [V::splat(NEG_INF); NV];
    for r in 0..R {
        let jj = jb + r;
        for v in 0..NV {
            let c0 = (v0 + v) * l;
            let mut s = acc[r][v].mul(vs);
            if g.diag && jj > c0 {
                // Queries c0..jj of this vector come before key jj.
                s = s.add(prefix_mask::<V>(&NEG_LO, jj - c0));
            }
            mx[v] = mx[v].max(s);
            s.store(g.out.add(jj * g.ld + c0));
        }
    }
    for v in 0..NV {
        let p = g.mt.add((v0 + v) * l);
        V::load(p).max(mx[v]).store(p);
    }
}

/// Turns the Sᵀ block of `fwd_scores_impl` into Pᵀ in place: exp(s - m) for key rows
/// jj < nk and query vectors < nqv, exact zeros where masked (and for the rows a diagonal
/// vector skipped), then dropout; l = alpha ∘ l + Σ_jj exp(s - m) (before dropout: it
/// drops the normalised weights).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fwd_softmax<V: VecMath>(st: &mut [f32], ld: usize, m: &[f32], lrow: &mut [f32], alpha: &[f32], nk: usize, nqv: usize, diag: bool, drop: Option<DropRows>) {
    let l = V::LANES;
    let qw = nqv * l;
    assert!(nk * ld <= st.len() && qw <= ld && qw <= m.len() && qw <= lrow.len() && qw <= alpha.len());
    let sp = st.as_mut_ptr();
    for c0 in (0..qw).step_by(l) {
        // On the diagonal tile, key rows past the vector's last query are wholly masked.
        let jend = if diag { nk.min(c0 + l) } else { nk };
        // SAFETY (all loads and stores of this loop): rows jj < nk, lanes c0..c0+LANES
        // <= qw <= LD of st, and lanes of m, lrow, alpha below qw (asserted above).
        unsafe {
            let mv = V::load(m.as_ptr().add(c0));
            let mut sum = V::zero();
            for jj in 0..jend {
                let p = sp.add(jj * ld + c0);
                let mut x = V::load(p).sub(mv).exp();
                if diag && jj > c0 {
                    // Masked lanes hold exp(-inf): tiny but not 0 in the vector exp.
                    x = x.mul(prefix_mask::<V>(&ZERO_LO, jj - c0));
                }
                sum = sum.add(x);
                if let Some(dr) = &drop {
                    // Index of (query i0 + c0 + k, key j0 + jj).
                    let idx0 = dr.base.wrapping_add((c0 as u32).wrapping_mul(dr.step)).wrapping_add(jj as u32);
                    x = x.mul(dropz::<V>(dr, idx0, dr.step));
                }
                x.store(p);
            }
            for jj in jend..nk {
                V::zero().store(sp.add(jj * ld + c0));
            }
            let lp = lrow.as_mut_ptr().add(c0);
            V::load(lp).mul(V::load(alpha.as_ptr().add(c0))).add(sum).store(lp);
        }
    }
}

/// Operands of the backward score kernel, for one (query tile, key tile) block.
pub struct BwdArgs {
    /// P (then Z P) and dS, (nq queries, ld keys) each.
    p: *mut f32,
    ds: *mut f32,
    ld: usize,
    /// Key and value tiles transposed, (HS,ld) each.
    kt: *const f32,
    vt: *const f32,
    /// q and dO rows of the query tile (HS floats at stride qs / os).
    q: *const f32,
    qs: usize,
    dout: *const f32,
    os: usize,
    /// Where to copy the q and dO rows (contiguous (nq,HS)) and read them from; null: read
    /// them in place.
    qc: *mut f32,
    dc: *mut f32,
    /// lse and D of the tile's queries.
    lse: *const f32,
    drow: *const f32,
    hs: usize,
    diag: bool,
    scale: f32,
    drop: Option<DropRows>,
}

/// P and dS of one (query tile x key tile) block, row-major (queries, ld keys): for query
/// rows < nq and keys < nkv*LANES,
///   p = exp(scale q·k - lse_q) (0 where masked), dS = p (Z dO·v - D_q) scale, p <- Z p.
/// On the diagonal tile a row block computes only the key vectors up to its last query
/// and stores zeros in the rest, so every entry of the block (rows < nq) is defined.
///
/// # Safety
/// The pointers of `g` hold what its field comments say for nq query rows and nkv*LANES
/// <= ld key columns; the outputs are writable and not otherwise accessed.
#[inline(always)]
unsafe fn bwd_scores_impl<V: VecMath>(g: &BwdArgs, nq: usize, nk: usize, nkv: usize) {
    if V::LANES >= 16 {
        bwd_scores_rows::<V, 4, 8, 4>(g, nq, nk, nkv);
    } else {
        bwd_scores_rows::<V, 4, 8, 2>(g, nq, nk, nkv);
    }
}

/// # Safety
/// See `bwd_scores_impl`.
#[inline(always)]
unsafe fn bwd_scores_rows<V: VecMath, const R: usize, const R2: usize, const NVM: usize>(g: &BwdArgs, nq: usize, nk: usize, nkv: usize) {
    let l = V::LANES;
    // Keys the rows ib..ib+rr may see, in whole vectors.
    let vend_of = |ib: usize, rr: usize| ((if g.diag { nk.min(ib + rr) } else { nk }) + l - 1) / l;
    let mut ib = 0;
    while ib < nq {
        // R2 > R rows where they see a single key vector (the first rows of the diagonal
        // tile), so that there are enough FMA chains to hide their latency.
        let rr = if ib + R2 <= nq && vend_of(ib, R2) == 1 {
            R2
        } else if ib + R <= nq {
            R
        } else {
            1
        };
        let vend = vend_of(ib, rr);
        // The block's q and dO rows, copied if asked (the B operands of dk and dv) and
        // then read from the copies.
        let (qa, qas) = if g.qc.is_null() {
            (g.q.add(ib * g.qs), g.qs)
        } else {
            copy_rows_raw::<V>(g.qc.add(ib * g.hs), g.q.add(ib * g.qs), g.qs, rr, g.hs);
            (g.qc.add(ib * g.hs) as *const f32, g.hs)
        };
        let (da, das) = if g.dc.is_null() {
            (g.dout.add(ib * g.os), g.os)
        } else {
            copy_rows_raw::<V>(g.dc.add(ib * g.hs), g.dout.add(ib * g.os), g.os, rr, g.hs);
            (g.dc.add(ib * g.hs) as *const f32, g.hs)
        };
        for pass in 0..2 {
            // pass 0: P from q; pass 1: dS (reads P) from dO.
            let (ar, ars) = if pass == 0 { (qa, qas) } else { (da, das) };
            if rr == R2 {
                bwd_tile::<V, R2, 1>(g, pass, ib, 0, ar, ars);
            } else if rr == R {
                let mut v0 = 0;
                while v0 < vend {
                    let nv = (vend - v0).min(NVM);
                    match nv {
                        1 => bwd_tile::<V, R, 1>(g, pass, ib, v0, ar, ars),
                        2 => bwd_tile::<V, R, 2>(g, pass, ib, v0, ar, ars),
                        3 if NVM >= 3 => bwd_tile::<V, R, 3>(g, pass, ib, v0, ar, ars),
                        _ => bwd_tile::<V, R, NVM>(g, pass, ib, v0, ar, ars),
                    }
                    v0 += nv;
                }
            } else {
                // A leftover row (nq not a multiple of R), one vector at a time.
                for v0 in 0..vend {
                    bwd_tile::<V, 1, 1>(g, pass, ib, v0, ar, ars);
                }
            }
        }
        for r in ib..ib + rr {
            for c0 in (vend * l..nkv * l).step_by(l) {
                V::zero().store(g.p.add(r * g.ld + c0));
                V::zero().store(g.ds.add(r * g.ld + c0));
            }
        }
        ib += rr;
    }
}

/// R query rows ib.. x NV key vectors v0.. of `bwd_scores_impl`: pass 0 stores P, pass 1
/// dS (and Z P). `ar` is row ib of the pass's A operand (q or dO), rows at stride ars.
///
/// # Safety
/// See `bwd_scores_impl`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn bwd_tile<V: VecMath, const R: usize, const NV: usize>(g: &BwdArgs, pass: usize, ib: usize, v0: usize, ar: *const f32, ars: usize) {
    let l = V::LANES;
    let vs = V::splat(g.scale);
    let zero = [[V::zero(); NV]; R];
    // The product is written out in each pass, not hoisted above the branch: hoisted, the
    // nanoGPT backward ran 2% slower (attention_bench, 6 runs each).
    if pass == 0 {
        let acc = mk::<V, R, NV>(zero, ar, ars, 1, g.kt.add(v0 * l), g.ld, 0, g.hs);
        for r in 0..R {
            let ii = ib + r;
            let vl = V::splat(*g.lse.add(ii));
            for v in 0..NV {
                let c0 = (v0 + v) * l;
                // P_ij = exp(s_ij - lse_i), recomputed as in the forward pass.
                let mut x = acc[r][v].mul(vs).sub(vl).exp();
                if g.diag && ii + 1 < c0 + l {
                    // Keys after query ii weigh nothing.
                    x = x.mul(prefix_mask::<V>(&ONE_LO, (ii + 1).saturating_sub(c0)));
                }
                x.store(g.p.add(ii * g.ld + c0));
            }
        }
    } else {
        let acc = mk::<V, R, NV>(zero, ar, ars, 1, g.vt.add(v0 * l), g.ld, 0, g.hs);
        for r in 0..R {
            let ii = ib + r;
            let vd = V::splat(*g.drow.add(ii));
            for v in 0..NV {
                let c0 = (v0 + v) * l;
                let (pp, dp) = (g.p.add(ii * g.ld + c0), g.ds.add(ii * g.ld + c0));
                let p = V::load(pp);
                let mut dpv = acc[r][v];
                if let Some(dr) = &g.drop {
                    // Index of (query i0 + ii, key j0 + c0 + k).
                    let idx0 = dr.base.wrapping_add((ii as u32).wrapping_mul(dr.step)).wrapping_add(c0 as u32);
                    let z = dropz::<V>(dr, idx0, 1);
                    dpv = dpv.mul(z);
                    // Dropped probability Z P, for dv.
                    p.mul(z).store(pp);
                }
                // dS (pre-scaled for dq and dk).
                p.mul(dpv.sub(vd)).mul(vs).store(dp);
            }
        }
    }
}

/// acc[r][v] += Σ_{k in klo..khi} a[r*ars + k*aks] · b[k*ldb + v*LANES ..][..LANES]: the
/// register block every product here is made of. R x NV accumulators stay in registers;
/// each k loads NV vectors of B and broadcasts R elements of A.
///
/// # Safety
/// Every a and b element named above is readable.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn mk<V: VecMath, const R: usize, const NV: usize>(mut acc: [[V; NV]; R], a: *const f32, ars: usize, aks: usize, b: *const f32, ldb: usize, klo: usize, khi: usize) -> [[V; NV]; R] {
    let l = V::LANES;
    for k in klo..khi {
        let bk = b.add(k * ldb);
        let mut bv = [V::zero(); NV];
        for v in 0..NV {
            bv[v] = V::load(bk.add(v * l));
        }
        let ak = a.add(k * aks);
        for r in 0..R {
            let w = V::splat(*ak.add(r * ars));
            for v in 0..NV {
                acc[r][v] = w.mul_add(bv[v], acc[r][v]);
            }
        }
    }
    acc
}

/// One product with an (N columns) B: for rows r < nr and columns x < n,
///   cout[r*ldcout + x] = post_r (pre_r cin[r*ldcin + x] + Σ_k a[r*ars + k*aks] b[k*ldb + x])
/// with k over the row block's `KRange`. Null cin: start from 0; null pre or post: factor
/// 1 (pre is read only with cin). cout may be cin (a block is loaded before it is stored).
#[derive(Clone, Copy)]
pub struct Prod {
    a: *const f32,
    ars: usize,
    aks: usize,
    b: *const f32,
    ldb: usize,
    n: usize,
    cin: *const f32,
    ldcin: usize,
    pre: *const f32,
    cout: *mut f32,
    ldcout: usize,
    post: *const f32,
}

/// The k range of a `Prod` row block, rows r0..r0+rr.
#[derive(Clone, Copy)]
pub enum KRange {
    /// 0..n.
    All(usize),
    /// 0..min(n, r0+rr): queries against the keys of the diagonal tile (causal).
    Below(usize),
    /// r0..n: keys against the queries of the diagonal tile.
    From(usize),
}

impl KRange {
    #[inline(always)]
    fn bounds(self, r0: usize, rr: usize) -> (usize, usize) {
        match self {
            KRange::All(n) => (0, n),
            KRange::Below(n) => (0, n.min(r0 + rr)),
            KRange::From(n) => (r0.min(n), n),
        }
    }
}

/// Runs `p` over rows 0..nr in register blocks.
///
/// # Safety
/// Every element `p` names for those rows and k ranges is readable (a, b, cin, pre, post)
/// or writable (cout), and nothing else accesses cout during the call.
#[inline(always)]
unsafe fn prod_impl<V: VecMath>(p: &Prod, nr: usize, kr: KRange) {
    let l = V::LANES;
    if l >= 16 && p.n < 4 * l {
        // HS = 32: 8 rows x 2 vectors.
        prod_rows::<V, 8, 2>(p, nr, kr);
    } else if l >= 16 {
        prod_rows::<V, 4, 4>(p, nr, kr);
    } else {
        prod_rows::<V, 4, 2>(p, nr, kr);
    }
}

/// # Safety
/// See `prod_impl`.
#[inline(always)]
unsafe fn prod_rows<V: VecMath, const R: usize, const NVM: usize>(p: &Prod, nr: usize, kr: KRange) {
    let mut r0 = 0;
    while r0 + R <= nr {
        let (klo, khi) = kr.bounds(r0, R);
        prod_block::<V, R, NVM>(p, r0, klo, khi);
        r0 += R;
    }
    while r0 < nr {
        let (klo, khi) = kr.bounds(r0, 1);
        prod_block::<V, 1, 1>(p, r0, klo, khi);
        r0 += 1;
    }
}

/// Rows r0..r0+R of `prod_impl`, all n columns: whole vectors in chunks of up to NVM, then
/// a scalar tail (n not a multiple of the lanes).
///
/// # Safety
/// See `prod_impl`.
#[inline(always)]
unsafe fn prod_block<V: VecMath, const R: usize, const NVM: usize>(p: &Prod, r0: usize, klo: usize, khi: usize) {
    let l = V::LANES;
    let nvec = p.n / l;
    let mut v0 = 0;
    while v0 < nvec {
        let nv = (nvec - v0).min(NVM);
        match nv {
            1 => prod_tile::<V, R, 1>(p, r0, v0 * l, klo, khi),
            2 if NVM >= 2 => prod_tile::<V, R, 2>(p, r0, v0 * l, klo, khi),
            3 if NVM >= 3 => prod_tile::<V, R, 3>(p, r0, v0 * l, klo, khi),
            _ => prod_tile::<V, R, NVM>(p, r0, v0 * l, klo, khi),
        }
        v0 += nv;
    }
    for r in r0..r0 + R {
        for x in nvec * l..p.n {
            let mut s = if p.cin.is_null() {
                0.0
            } else if p.pre.is_null() {
                *p.cin.add(r * p.ldcin + x)
            } else {
                *p.cin.add(r * p.ldcin + x) * *p.pre.add(r)
            };
            for k in klo..khi {
                s += *p.a.add(r * p.ars + k * p.aks) * *p.b.add(k * p.ldb + x);
            }
            if !p.post.is_null() {
                s *= *p.post.add(r);
            }
            *p.cout.add(r * p.ldcout + x) = s;
        }
    }
}

/// Rows r0..r0+R, columns x0..x0+NV*LANES of `prod_impl`.
///
/// # Safety
/// See `prod_impl`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn prod_tile<V: VecMath, const R: usize, const NV: usize>(p: &Prod, r0: usize, x0: usize, klo: usize, khi: usize) {
    let l = V::LANES;
    let mut acc = [[V::zero(); NV]; R];
    if !p.cin.is_null() {
        for r in 0..R {
            let ci = p.cin.add((r0 + r) * p.ldcin + x0);
            for v in 0..NV {
                acc[r][v] = V::load(ci.add(v * l));
            }
            if !p.pre.is_null() {
                let f = V::splat(*p.pre.add(r0 + r));
                for v in 0..NV {
                    acc[r][v] = acc[r][v].mul(f);
                }
            }
        }
    }
    let acc = mk::<V, R, NV>(acc, p.a.add(r0 * p.ars), p.ars, p.aks, p.b.add(x0), p.ldb, klo, khi);
    for r in 0..R {
        let co = p.cout.add((r0 + r) * p.ldcout + x0);
        if p.post.is_null() {
            for v in 0..NV {
                acc[r][v].store(co.add(v * l));
            }
        } else {
            let f = V::splat(*p.post.add(r0 + r));
            for v in 0..NV {
                acc[r][v].mul(f).store(co.add(v * l));
            }
        }
    }
}

/// dst (HS,ld) column jj = src row jj: dst[d*ld + jj] = src[off + jj*stride + d], jj < n
/// (columns n..ld are left as they are).
#[inline(always)]
fn transpose_tile<V: VecMath>(dst: &mut [f32], src: &[f32], off: usize, stride: usize, n: usize, hs: usize, ld: usize) {
    if n == 0 || hs == 0 {
        return;
    }
    assert!(n <= ld && hs * ld <= dst.len() && off + (n - 1) * stride + hs <= src.len());
    let (dp, sp) = (dst.as_mut_ptr(), src.as_ptr());
    let l = V::LANES;
    // Whole LANES x LANES blocks in registers (shuffles), then the ragged edges below.
    let (nb, db) = (n / l * l, hs / l * l);
    if l > 1 {
        for j in (0..nb).step_by(l) {
            for d in (0..db).step_by(l) {
                // SAFETY: source rows j..j+LANES < n, columns d..d+LANES <= hs; destination
                // rows d..d+LANES < hs, columns j..j+LANES <= n <= ld: all inside the bounds
                // asserted above, and src and dst are different slices.
                unsafe { V::transpose_block(sp.add(off + j * stride + d), stride, dp.add(d * ld + j), ld) };
            }
        }
        // Columns d >= db of the blocked rows.
        for j in 0..nb {
            for d in db..hs {
                dst[d * ld + j] = src[off + j * stride + d];
            }
        }
    }
    let mut jj = if l > 1 { nb } else { 0 };
    // Four source rows at a time: contiguous reads, and the four writes of each d land in
    // one cache line of dst.
    while jj + 4 <= n {
        // SAFETY: rows jj..jj+4 < n and d < hs are inside the bounds asserted above.
        unsafe {
            let s0 = sp.add(off + jj * stride);
            let (s1, s2, s3) = (s0.add(stride), s0.add(2 * stride), s0.add(3 * stride));
            for d in 0..hs {
                let o = dp.add(d * ld + jj);
                *o = *s0.add(d);
                *o.add(1) = *s1.add(d);
                *o.add(2) = *s2.add(d);
                *o.add(3) = *s3.add(d);
            }
        }
        jj += 4;
    }
    while jj < n {
        // SAFETY: as above.
        unsafe {
            let s0 = sp.add(off + jj * stride);
            for d in 0..hs {
                *dp.add(d * ld + jj) = *s0.add(d);
            }
        }
        jj += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Serial;

    /// n floats starting `shift` floats past a 64-byte line (in `store`, which owns them).
    fn at_offset(store: &mut Vec<f32>, n: usize, shift: usize, fill: impl Fn(usize) -> f32) -> core::ops::Range<usize> {
        store.clear();
        store.resize(n + 2 * MAXL, 0.0);
        let skip = store.as_ptr().align_offset(64) % MAXL + shift;
        for (i, x) in store[skip..skip + n].iter_mut().enumerate() {
            *x = fill(i);
        }
        skip..skip + n
    }

    /// Rows read in place (line-aligned buffers) and rows copied first (misaligned ones)
    /// do the same arithmetic: the results must be bit for bit equal, whatever the
    /// alignment of the scratch too. (The integration tests cannot choose alignments.)
    #[test]
    fn in_place_and_copied_rows_agree() {
        let drop = Dropout { p: 0.25, seed: 77, stream: 5 };
        for &(b, t, c, nh) in &[(2, 64, 128, 4), (1, 70, 64, 2), (2, 9, 48, 3), (1, 130, 32, 1)] {
            for &d in &[Dropout::NONE, drop] {
                let mut results: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = Vec::new();
                for &(shift, sshift) in &[(0, 0), (4, 3), (1, 0), (0, 5)] {
                    let val = |i: usize, salt: usize| (((i * 2_654_435_761 + salt) % 1000) as f32 / 500.0) - 1.0;
                    let (mut qs, mut ds, mut os, mut ls, mut gs, mut ss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                    let qr = at_offset(&mut qs, b * t * 3 * c, shift, |i| 1.5 * val(i, 1));
                    let dr = at_offset(&mut ds, b * t * c, shift, |i| val(i, 2));
                    let or = at_offset(&mut os, b * t * c, shift, |_| f32::NAN);
                    let lr = at_offset(&mut ls, b * nh * t, shift, |_| f32::NAN);
                    let gr = at_offset(&mut gs, b * t * 3 * c, shift, |i| val(i, 3));
                    let sr = at_offset(&mut ss, attention_scratch_len(b, t, c, nh, 1), sshift, |_| f32::NAN);
                    attention_forward(&Serial, &mut ss[sr.clone()], &mut os[or.clone()], &mut ls[lr.clone()], &qs[qr.clone()], b, t, c, nh, d);
                    attention_backward(&Serial, &mut ss[sr], &mut gs[gr.clone()], &ds[dr], &qs[qr], &os[or.clone()], &ls[lr.clone()], b, t, c, nh, d, false);
                    results.push((os[or].to_vec(), ls[lr].to_vec(), gs[gr].to_vec()));
                }
                for r in &results[1..] {
                    let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same(&r.0, &results[0].0) && same(&r.1, &results[0].1) && same(&r.2, &results[0].2), "B={b} T={t} C={c} NH={nh} p={}", d.p);
                    assert!(r.2.iter().all(|x| x.is_finite()));
                }
            }
        }
    }
}
