//! Fused causal multi-head self-attention, flash-style: forward streams over key tiles
//! with an online softmax and never holds more than one (tile x tile) score block per
//! head and thread; it saves only the log-sum-exp of each row. Backward recomputes the
//! scores from qkv and lse. Scale 1/sqrt(HS). Optional dropout on the attention weights,
//! keyed by index ((b*NH + h)*T + t)*T + s (wrapping u32) in the counter RNG.
//!
//! Layout: qkv (B,T,3C) holds, for each token, q (C) | k (C) | v (C), and each of those is
//! (NH,HS). A row of q/k/v for head h is therefore HS contiguous floats at stride 3C.
//!
//! Forward: one task per (b, h, query tile of TL rows). It walks the key tiles up to the
//! diagonal; each key tile is first transposed into scratch (HS,LD) so that scores are a
//! broadcast-FMA over keys (SIMD across keys, whatever HS is), four query rows at a time
//! sharing every key load. LD is TL rounded up to 16 floats (the widest vector), and score
//! rows are computed to the next whole vector past the causal limit: the padded keys are
//! masked (-inf before the softmax, 0 in products) instead of going through scalar tails,
//! which at small T (T = 64: a ragged tail on every row) cost more than the vector work.
//! Per query row it keeps a running max m and running sum l (online softmax) and rescales
//! its output accumulator row (TL,HS) when m grows; P·V for four rows at a time is a
//! register-blocked product with SIMD over HS. At the end out = acc / l and lse = m + ln l.
//!
//! Backward (FlashAttention-2): one task per (b, h) pair, so a task owns every dq, dk, dv
//! element of its head and no two threads ever write the same dqkv float. Per key tile
//! (k and v transposed into scratch) and per query tile at or below it:
//!   P = exp(s - lse_i), dP = Z ∘ (dO_i · vᵀ), dS = P ∘ (dP - D_i), D_i = dO_i · O_i,
//!   dv_j += Σ_i Z P dO_i,  dk_j += scale Σ_i dS q_i,  dq_i += scale Σ_j dS k_j,
//! where Z is the dropout factor (keep ? 1/(1-p) : 0, or 1 without dropout).
//! With dropout, O_i = Σ_j Z_ij P_ij v_j, so D_i = dO_i · O_i is still Σ_j P_ij dP_ij.
//! (Z P) and dS of the whole (query tile x key tile) block are kept row-major in scratch
//! (two (TL,LD) blocks), so the three products run as register-blocked block products
//! reading them with strides (no transposes); on the diagonal tile they skip the masked
//! triangle. dk and dv of the key tile accumulate in contiguous scratch and are added to
//! dqkv once per tile (updating dqkv rows at stride 3C for every query row thrashes L1).
//!
//! Scratch per thread (HS = 64, TL = 64): forward 8.4k floats, backward 24.6k + T floats.

use crate::simd::math::{dot, exp_sub_sum, row_max, VecMath};
use crate::rng::{keep, Dropout};
use crate::Parallel;

/// Tile edge (query rows per forward task, keys per tile), capped at T.
const TILE: usize = 64;
/// Query rows (forward) or key rows (backward dk/dv) per register block in `block_axpy`.
const RB: usize = 4;

/// Widest SIMD vector of any backend, in floats: tile rows are padded to a multiple of it.
const MAXL: usize = 16;

fn tile_len(t: usize) -> usize {
    TILE.min(t).max(1)
}

/// Leading dimension of key-indexed tile rows: TL rounded up to whole vectors, so that a
/// score row can always be computed to the next vector boundary.
fn tile_ld(tl: usize) -> usize {
    (tl + MAXL - 1) / MAXL * MAXL
}

/// n rounded up to a multiple of the lanes of V (<= tile_ld(tl) when n <= tl).
#[inline(always)]
fn pad_to<V: VecMath>(n: usize) -> usize {
    (n + V::LANES - 1) / V::LANES * V::LANES
}

/// Floats of per-thread scratch the forward pass uses.
fn fwd_floats(t: usize, hs: usize) -> usize {
    let tl = tile_len(t);
    let ld = tile_ld(tl);
    hs * ld // kt: key tile transposed (HS,LD)
        + RB * ld // s: scores / probabilities of RB query rows (RB,LD)
        + tl * hs // acc: output accumulator (TL,HS)
        + 2 * tl // m, l: running max and sum (TL) each
}

/// Floats of per-thread scratch the backward pass uses.
fn bwd_floats(t: usize, hs: usize) -> usize {
    let tl = tile_len(t);
    let ld = tile_ld(tl);
    2 * hs * ld // kt, vt: key and value tiles transposed (HS,LD) each
        + 2 * tl * hs // dk, dv accumulators of the key tile (TL,HS) each
        + 2 * tl * ld // Z P and dS of one (query tile, key tile) block (TL,LD) each
        + t // D: rowsum(dO ∘ O) for every query row of the head (T)
}

fn per_thread(t: usize, hs: usize) -> usize {
    fwd_floats(t, hs).max(bwd_floats(t, hs))
}

/// Scratch floats attention forward/backward need (per-thread tiles) for these dims.
pub fn attention_scratch_len(b: usize, t: usize, c: usize, nh: usize, threads: usize) -> usize {
    let _ = b; // tiles are per thread, not per batch element
    let hs = c.checked_div(nh).unwrap_or(0);
    threads.max(1) * per_thread(t, hs)
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
    let hs = c / nh;
    let out = &mut out[..b * t * c]; // (B,T,C)
    let lse = &mut lse[..b * nh * t]; // (B,NH,T)
    let qkv = &qkv[..b * t * 3 * c]; // (B,T,3C)
    let per = per_thread(t, hs);
    let threads = par.threads().max(1);
    // A real assert: the tasks below index scratch through raw pointers.
    assert!(scratch.len() >= threads * per, "attention scratch too small");
    let tl = tile_len(t);
    let ntiles = (t + tl - 1) / tl;
    let args = kern::Args {
        out: out.as_mut_ptr(),
        lse: lse.as_mut_ptr(),
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
        ntiles,
        dropout,
    };
    par.for_each(b * nh * ntiles, &|task, thread| kern::forward_task(&args, task, thread));
}

/// dqkv (B,T,3C) += gradient of the forward above, from dout (B,T,C), qkv, out and lse.
/// Accumulates.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(par: &dyn Parallel, scratch: &mut [f32], dqkv: &mut [f32], dout: &[f32], qkv: &[f32], out: &[f32], lse: &[f32], b: usize, t: usize, c: usize, nh: usize, dropout: Dropout) {
    if b == 0 || t == 0 || c == 0 {
        return;
    }
    debug_assert!(nh > 0 && c % nh == 0);
    let hs = c / nh;
    let dqkv = &mut dqkv[..b * t * 3 * c]; // (B,T,3C)
    let dout = &dout[..b * t * c]; // (B,T,C)
    let qkv = &qkv[..b * t * 3 * c]; // (B,T,3C)
    let out = &out[..b * t * c]; // (B,T,C)
    let lse = &lse[..b * nh * t]; // (B,NH,T)
    let per = per_thread(t, hs);
    let threads = par.threads().max(1);
    assert!(scratch.len() >= threads * per, "attention scratch too small");
    let tl = tile_len(t);
    let ntiles = (t + tl - 1) / tl;
    let args = kern::Args {
        out: core::ptr::null_mut(),
        lse: core::ptr::null_mut(),
        dqkv: dqkv.as_mut_ptr(),
        dout: dout.as_ptr(),
        outp: out.as_ptr(),
        lsep: lse.as_ptr(),
        qkv: qkv.as_ptr(),
        scratch: scratch.as_mut_ptr(),
        per,
        b,
        t,
        c,
        nh,
        hs,
        tl,
        ntiles,
        dropout,
    };
    par.for_each(b * nh, &|task, thread| kern::backward_task(&args, task, thread));
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
        pub scratch: *mut f32, // (threads, per)
        pub per: usize,
        pub b: usize,
        pub t: usize,
        pub c: usize,
        pub nh: usize,
        pub hs: usize,
        pub tl: usize,
        pub ntiles: usize,
        pub dropout: Dropout,
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
}

use kern::Args;

#[inline(always)]
fn forward_task_impl<V: VecMath>(a: &Args, task: usize, thread: usize) {
    let (t, c, nh, hs, tl) = (a.t, a.c, a.nh, a.hs, a.tl);
    let c3 = 3 * c;
    // Late query tiles have the most key tiles: hand them out first for load balance.
    let bh = task / a.ntiles;
    let qt = a.ntiles - 1 - task % a.ntiles;
    let (b, h) = (bh / nh, bh % nh);
    debug_assert!(b < a.b);
    // SAFETY: the caller checked scratch holds threads * per floats and `thread` is
    // unique among concurrent tasks, so this slice is ours alone.
    let scr = unsafe { core::slice::from_raw_parts_mut(a.scratch.add(thread * a.per), a.per) };
    let ld = tile_ld(tl);
    let (kt, rest) = scr.split_at_mut(hs * ld); // (HS,LD)
    let (sblk, rest) = rest.split_at_mut(RB * ld); // (RB,LD)
    let (acc, rest) = rest.split_at_mut(tl * hs); // (TL,HS)
    let (mrow, rest) = rest.split_at_mut(tl); // (TL)
    let lrow = &mut rest[..tl]; // (TL)
    // SAFETY: qkv holds B*T*3C floats (checked by the slicing in attention_forward) and
    // is only read.
    let qkv = unsafe { core::slice::from_raw_parts(a.qkv, a.b * t * c3) }; // (B,T,3C)
    let qoff = b * t * c3 + h * hs; // q of (b, 0, h); k at +C, v at +2C
    let scale = 1.0 / (hs as f32).sqrt();
    let dropout = a.dropout;
    let inv_keep = if dropout.p > 0.0 { 1.0 / (1.0 - dropout.p) } else { 1.0 };

    let i0 = qt * tl;
    let i1 = (i0 + tl).min(t);
    let nq = i1 - i0;
    acc[..nq * hs].fill(0.0);
    for ii in 0..nq {
        mrow[ii] = f32::NEG_INFINITY;
        lrow[ii] = 0.0;
    }
    for ktile in 0..=qt {
        let j0 = ktile * tl;
        let j1 = (j0 + tl).min(t);
        transpose_tile::<V>(kt, qkv, qoff + c + j0 * c3, c3, j1 - j0, hs, ld);
        for rb in (0..nq).step_by(RB) {
            let nr = RB.min(nq - rb);
            // Keys of this tile the last row of the block sees; earlier rows see fewer.
            let jmax = j1.min(i0 + rb + nr) - j0;
            // Whole vectors: keys jmax..jpad (padding, or past the tile's end: kt columns
            // that hold stale scratch) are computed and then masked below.
            let jpad = pad_to::<V>(jmax);
            debug_assert!(jpad <= ld);
            // Scores of the block's rows against keys 0..jpad of the tile (entries past a
            // row's own causal limit are computed but masked).
            block_scores::<V>(sblk, ld, nr, qkv, qoff + (i0 + rb) * c3, c3, hs, kt, ld, jpad, scale);
            for r in 0..nr {
                let ii = rb + r;
                let i = i0 + ii;
                // Causal: keys j0 ..= i of this tile (at least one, since j0 <= i0 <= i).
                let jn = j1.min(i + 1) - j0;
                let srow = &mut sblk[r * ld..r * ld + jpad]; // (jpad)
                for p in srow[jn..].iter_mut() {
                    *p = f32::NEG_INFINITY;
                }
                let m_old = mrow[ii];
                let m_new = m_old.max(row_max::<V>(srow));
                // Masked keys add exp(-inf) (0, or ~1e-38 from the vector exp's clamp: far
                // below an ulp of l, which is >= 1 since it holds the row maximum's
                // exp(0)) and are zeroed below before P·V.
                let sum = exp_sub_sum::<V>(srow, m_new);
                let s = &mut srow[..jn];
                let alpha = (m_old - m_new).exp();
                // l sums the un-dropped exponentials: dropout acts on the normalised P.
                lrow[ii] = lrow[ii] * alpha + sum;
                mrow[ii] = m_new;
                // On the first key tile acc is still zero: nothing to rescale.
                if ktile > 0 && alpha != 1.0 {
                    scale_row::<V>(&mut acc[ii * hs..(ii + 1) * hs], alpha);
                }
                if dropout.p > 0.0 {
                    let base = drop_row_base(bh, t, i);
                    for (jj, p) in s.iter_mut().enumerate() {
                        let idx = base.wrapping_add((j0 + jj) as u32);
                        *p = if keep(dropout.p, dropout.seed, dropout.stream, idx) { *p * inv_keep } else { 0.0 };
                    }
                }
                // Masked keys of the shorter rows weigh nothing in the block product.
                for p in srow[jn..jpad].iter_mut() {
                    *p = 0.0;
                }
            }
            // acc_i += Σ_j p_ij v_j for the block's rows.
            let o = &mut acc[rb * hs..(rb + nr) * hs]; // (nr,HS)
            // SAFETY: o holds nr contiguous rows of HS floats (ldo = HS).
            unsafe { block_axpy::<V>(o.as_mut_ptr(), hs, nr, hs, sblk, ld, 1, jmax, qkv, qoff + 2 * c + j0 * c3, c3) };
        }
    }
    // out holds B*T*C floats and lse B*NH*T; this task alone writes rows i0..i1 of head h
    // in batch b (columns h*HS..(h+1)*HS of out, entries (b,h,i0..i1) of lse).
    for ii in 0..nq {
        let i = i0 + ii;
        let l = lrow[ii];
        let inv = 1.0 / l;
        // SAFETY: see above.
        let o = unsafe { core::slice::from_raw_parts_mut(a.out.add((b * t + i) * c + h * hs), hs) }; // (HS)
        scale_into::<V>(o, &acc[ii * hs..(ii + 1) * hs], inv);
        // SAFETY: see above.
        unsafe { *a.lse.add((b * nh + h) * t + i) = mrow[ii] + l.ln() };
    }
}

#[inline(always)]
fn backward_task_impl<V: VecMath>(a: &Args, task: usize, thread: usize) {
    let (t, c, nh, hs, tl) = (a.t, a.c, a.nh, a.hs, a.tl);
    let c3 = 3 * c;
    let bh = task;
    let (b, h) = (bh / nh, bh % nh);
    debug_assert!(b < a.b);
    // SAFETY: as in the forward pass, this thread's scratch slice is ours alone.
    let scr = unsafe { core::slice::from_raw_parts_mut(a.scratch.add(thread * a.per), a.per) };
    let ld = tile_ld(tl);
    let (kt, rest) = scr.split_at_mut(hs * ld); // (HS,LD)
    let (vt, rest) = rest.split_at_mut(hs * ld); // (HS,LD)
    // dk and dv of the key tile accumulate here, contiguous, and are added to dqkv once per
    // tile: updating dqkv rows (stride 3C) for every query row thrashes L1 (4K aliasing).
    let (dkacc, rest) = rest.split_at_mut(tl * hs); // (TL,HS)
    let (dvacc, rest) = rest.split_at_mut(tl * hs); // (TL,HS)
    // Per (query tile, key tile) block, the dropped probabilities Z P and dS (pre-scaled),
    // row-major: dv/dk read them down columns, dq along rows (block_axpy takes strides).
    let (pblk, rest) = rest.split_at_mut(tl * ld); // (TL queries, LD keys)
    let (dsblk, rest) = rest.split_at_mut(tl * ld); // (TL queries, LD keys)
    let drow = &mut rest[..t]; // (T)
    // SAFETY: the inputs hold the lengths sliced in attention_backward and are only read.
    let (qkv, dout, outp, lse) = unsafe {
        (
            core::slice::from_raw_parts(a.qkv, a.b * t * c3),    // (B,T,3C)
            core::slice::from_raw_parts(a.dout, a.b * t * c),    // (B,T,C)
            core::slice::from_raw_parts(a.outp, a.b * t * c),    // (B,T,C)
            core::slice::from_raw_parts(a.lsep, a.b * nh * t),   // (B,NH,T)
        )
    };
    let qoff = b * t * c3 + h * hs; // q of (b, 0, h); k at +C, v at +2C
    let ooff = b * t * c + h * hs; // out / dout of (b, 0, h)
    let lse = &lse[bh * t..(bh + 1) * t]; // (T)
    let scale = 1.0 / (hs as f32).sqrt();
    let dropout = a.dropout;
    let inv_keep = if dropout.p > 0.0 { 1.0 / (1.0 - dropout.p) } else { 1.0 };

    // D_i = dO_i · O_i
    for i in 0..t {
        let o = ooff + i * c;
        drow[i] = dot::<V>(&dout[o..o + hs], &outp[o..o + hs]);
    }
    // This task is the only one touching head h of batch b in dqkv: rows of dq, dk, dv
    // below are HS floats at qoff + i*3C (+C, +2C), disjoint from every other task, and
    // each row slice made below dies before another slice of the same row is made.
    for ktile in 0..a.ntiles {
        let j0 = ktile * tl;
        let j1 = (j0 + tl).min(t);
        transpose_tile::<V>(kt, qkv, qoff + c + j0 * c3, c3, j1 - j0, hs, ld);
        transpose_tile::<V>(vt, qkv, qoff + 2 * c + j0 * c3, c3, j1 - j0, hs, ld);
        let nk = j1 - j0;
        // Two plain fills: a chained iterator does not vectorise.
        dkacc[..nk * hs].fill(0.0);
        dvacc[..nk * hs].fill(0.0);
        for i0 in (j0..t).step_by(tl) {
            let i1 = (i0 + tl).min(t);
            let nq = i1 - i0;
            // On the diagonal tile (i0 == j0, so nq == nk) key jj sees only queries ii >= jj.
            let diag = i0 == j0;
            for rb in (0..nq).step_by(RB) {
                let nr = RB.min(nq - rb);
                let jmax = j1.min(i0 + rb + nr) - j0;
                // Whole vectors (see the forward pass): entries past a row's causal limit
                // are computed from stale kt/vt columns and never read, except jn..jmax,
                // which are zeroed below.
                let jpad = pad_to::<V>(jmax);
                debug_assert!(jpad <= ld);
                let (sb, db) = (&mut pblk[rb * ld..], &mut dsblk[rb * ld..]);
                // s = scale q kᵀ and dP' = dO vᵀ for the block's rows (keys 0..jpad).
                block_scores::<V>(sb, ld, nr, qkv, qoff + (i0 + rb) * c3, c3, hs, kt, ld, jpad, scale);
                block_scores::<V>(db, ld, nr, dout, ooff + (i0 + rb) * c, c, hs, vt, ld, jpad, 1.0);
                for r in 0..nr {
                    let i = i0 + rb + r;
                    let jn = j1.min(i + 1) - j0;
                    let s = &mut sb[r * ld..r * ld + jpad];
                    let dp = &mut db[r * ld..r * ld + jpad];
                    // P_ij = exp(s_ij - lse_i), recomputed exactly as in the forward pass.
                    exp_sub::<V>(s, lse[i]);
                    let di = drow[i];
                    if dropout.p > 0.0 {
                        let base = drop_row_base(bh, t, i);
                        for jj in 0..jn {
                            let idx = base.wrapping_add((j0 + jj) as u32);
                            let z = if keep(dropout.p, dropout.seed, dropout.stream, idx) { inv_keep } else { 0.0 };
                            let p = s[jj];
                            // dS (pre-scaled) into dp, dropped probability Z P into s (for dv).
                            dp[jj] = p * (z * dp[jj] - di) * scale;
                            s[jj] = z * p;
                        }
                    } else {
                        softmax_bwd_row::<V>(dp, s, di, scale);
                    }
                    // Keys after i (causal) that the block products read weigh nothing.
                    for jj in jn..jmax {
                        s[jj] = 0.0;
                        dp[jj] = 0.0;
                    }
                }
            }
            // dv_j += Σ_i (Z P)_ij dO_i ; dk_j += Σ_i scale dS_ij q_i (queries i >= the
            // key block's first key on the diagonal tile: the rest are masked zeros).
            for jb in (0..nk).step_by(RB) {
                let nr = RB.min(nk - jb);
                let ib = if diag { jb } else { 0 };
                let (dv, dk) = (&mut dvacc[jb * hs..(jb + nr) * hs], &mut dkacc[jb * hs..(jb + nr) * hs]);
                // SAFETY: dv and dk hold nr rows of HS floats, contiguous (ldo = HS).
                unsafe {
                    block_axpy::<V>(dv.as_mut_ptr(), hs, nr, hs, &pblk[ib * ld + jb..], 1, ld, nq - ib, dout, ooff + (i0 + ib) * c, c);
                    block_axpy::<V>(dk.as_mut_ptr(), hs, nr, hs, &dsblk[ib * ld + jb..], 1, ld, nq - ib, qkv, qoff + (i0 + ib) * c3, c3);
                }
            }
            // dq_i += Σ_j scale dS_ij k_j, straight into dqkv: one load/store per block.
            for ib in (0..nq).step_by(RB) {
                let nr = RB.min(nq - ib);
                let jmax = if diag { (ib + nr).min(nk) } else { nk };
                // SAFETY: rows i0+ib .. +nr of dq for this task's head (HS floats each at
                // stride 3C inside (B,T,3C)), which only this task writes (see above).
                unsafe { block_axpy::<V>(a.dqkv.add(qoff + (i0 + ib) * c3), c3, nr, hs, &dsblk[ib * ld..], ld, 1, jmax, qkv, qoff + c + j0 * c3, c3) };
            }
        }
        for jj in 0..nk {
            let j = j0 + jj;
            // SAFETY: row j of dk for this task's head, inside (B,T,3C) (see above).
            let dk = unsafe { core::slice::from_raw_parts_mut(a.dqkv.add(qoff + c + j * c3), hs) };
            axpy::<V>(dk, 1.0, &dkacc[jj * hs..(jj + 1) * hs]);
            // SAFETY: row j of dv, likewise.
            let dv = unsafe { core::slice::from_raw_parts_mut(a.dqkv.add(qoff + 2 * c + j * c3), hs) };
            axpy::<V>(dv, 1.0, &dvacc[jj * hs..(jj + 1) * hs]);
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

/// s[r*lds + j] = scale * q_r · k_j for rows r < nr (q_r = src[off + r*stride ..][..HS])
/// and keys j < n of the transposed tile kt (HS,ld). Four rows share every kt load (4 rows
/// x 2 key vectors in registers); leftover rows and keys go through `tile_scores`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_scores<V: VecMath>(s: &mut [f32], lds: usize, nr: usize, src: &[f32], off: usize, stride: usize, hs: usize, kt: &[f32], ld: usize, n: usize, scale: f32) {
    let l = V::LANES;
    let mut jdone = 0;
    if nr == 4 && hs > 0 && n >= l {
        assert!(n <= ld && kt.len() >= hs * ld && s.len() >= 3 * lds + n && off + 3 * stride + hs <= src.len());
        let vs = V::splat(scale);
        let (q0, q1, q2, q3) = (&src[off..off + hs], &src[off + stride..off + stride + hs], &src[off + 2 * stride..off + 2 * stride + hs], &src[off + 3 * stride..off + 3 * stride + hs]);
        let ktp = kt.as_ptr();
        let mut j = 0;
        while j + 2 * l <= n {
            let (mut a0, mut a1, mut a2, mut a3) = (V::zero(), V::zero(), V::zero(), V::zero());
            let (mut b0, mut b1, mut b2, mut b3) = (V::zero(), V::zero(), V::zero(), V::zero());
            for d in 0..hs {
                // SAFETY: d*ld + j + 2*LANES <= (hs-1)*ld + n <= hs*ld <= kt.len().
                let (k0, k1) = unsafe { (V::load(ktp.add(d * ld + j)), V::load(ktp.add(d * ld + j + l))) };
                let (w0, w1, w2, w3) = (V::splat(q0[d]), V::splat(q1[d]), V::splat(q2[d]), V::splat(q3[d]));
                a0 = w0.mul_add(k0, a0);
                b0 = w0.mul_add(k1, b0);
                a1 = w1.mul_add(k0, a1);
                b1 = w1.mul_add(k1, b1);
                a2 = w2.mul_add(k0, a2);
                b2 = w2.mul_add(k1, b2);
                a3 = w3.mul_add(k0, a3);
                b3 = w3.mul_add(k1, b3);
            }
            // SAFETY: r*lds + j + 2*LANES <= 3*lds + n <= s.len() for r < 4.
            unsafe {
                let o = s.as_mut_ptr().add(j);
                a0.mul(vs).store(o);
                b0.mul(vs).store(o.add(l));
                a1.mul(vs).store(o.add(lds));
                b1.mul(vs).store(o.add(lds + l));
                a2.mul(vs).store(o.add(2 * lds));
                b2.mul(vs).store(o.add(2 * lds + l));
                a3.mul(vs).store(o.add(3 * lds));
                b3.mul(vs).store(o.add(3 * lds + l));
            }
            j += 2 * l;
        }
        // One vector of keys left (n padded to whole vectors by the callers).
        if j + l <= n {
            let (mut a0, mut a1, mut a2, mut a3) = (V::zero(), V::zero(), V::zero(), V::zero());
            for d in 0..hs {
                // SAFETY: d*ld + j + LANES <= (hs-1)*ld + n <= hs*ld <= kt.len().
                let k0 = unsafe { V::load(ktp.add(d * ld + j)) };
                a0 = V::splat(q0[d]).mul_add(k0, a0);
                a1 = V::splat(q1[d]).mul_add(k0, a1);
                a2 = V::splat(q2[d]).mul_add(k0, a2);
                a3 = V::splat(q3[d]).mul_add(k0, a3);
            }
            // SAFETY: r*lds + j + LANES <= 3*lds + n <= s.len() for r < 4.
            unsafe {
                let o = s.as_mut_ptr().add(j);
                a0.mul(vs).store(o);
                a1.mul(vs).store(o.add(lds));
                a2.mul(vs).store(o.add(2 * lds));
                a3.mul(vs).store(o.add(3 * lds));
            }
            j += l;
        }
        jdone = j;
    }
    if jdone < n {
        for r in 0..nr {
            let q = &src[off + r * stride..off + r * stride + hs]; // (HS)
            let row = &mut s[r * lds..r * lds + n];
            tile_scores_from::<V>(row, jdone, q, kt, ld, scale);
        }
    }
}

/// `tile_scores` for keys from..row.len() only.
#[inline(always)]
fn tile_scores_from<V: VecMath>(row: &mut [f32], from: usize, q: &[f32], kt: &[f32], ld: usize, scale: f32) {
    if from == 0 {
        tile_scores::<V>(row, q, kt, ld, scale);
        return;
    }
    // Shift the tile view so that key `from` becomes key 0.
    tile_scores::<V>(&mut row[from..], q, &kt[from..], ld, scale);
}

/// s[j] = scale * Σ_d q[d] kt[d*ld + j] for j < s.len() <= ld: one query against a
/// transposed key tile, SIMD across keys (four vectors at a time for ILP).
#[inline(always)]
fn tile_scores<V: VecMath>(s: &mut [f32], q: &[f32], kt: &[f32], ld: usize, scale: f32) {
    let n = s.len();
    let hs = q.len();
    if n == 0 {
        return;
    }
    // Highest kt index read: (hs-1)*ld + n-1 (kt may be a view starting mid-row).
    assert!(n <= ld && (hs == 0 || kt.len() >= (hs - 1) * ld + n));
    let l = V::LANES;
    let vs = V::splat(scale);
    let ktp = kt.as_ptr();
    let mut j = 0;
    while j + 4 * l <= n {
        // Eight accumulators (four key vectors x even/odd d) so the FMA chains overlap.
        let (mut a0, mut a1, mut a2, mut a3) = (V::zero(), V::zero(), V::zero(), V::zero());
        let (mut b0, mut b1, mut b2, mut b3) = (V::zero(), V::zero(), V::zero(), V::zero());
        let mut d = 0;
        while d + 2 <= hs {
            let (qa, qb) = (V::splat(q[d]), V::splat(q[d + 1]));
            // SAFETY: (d+1)*ld + j + 4*LANES <= (hs-1)*ld + n <= kt.len() (asserted above).
            unsafe {
                let p = ktp.add(d * ld + j);
                let pb = p.add(ld);
                a0 = qa.mul_add(V::load(p), a0);
                a1 = qa.mul_add(V::load(p.add(l)), a1);
                a2 = qa.mul_add(V::load(p.add(2 * l)), a2);
                a3 = qa.mul_add(V::load(p.add(3 * l)), a3);
                b0 = qb.mul_add(V::load(pb), b0);
                b1 = qb.mul_add(V::load(pb.add(l)), b1);
                b2 = qb.mul_add(V::load(pb.add(2 * l)), b2);
                b3 = qb.mul_add(V::load(pb.add(3 * l)), b3);
            }
            d += 2;
        }
        if d < hs {
            let qa = V::splat(q[d]);
            // SAFETY: d*ld + j + 4*LANES <= (hs-1)*ld + n <= kt.len(), as above.
            unsafe {
                let p = ktp.add(d * ld + j);
                a0 = qa.mul_add(V::load(p), a0);
                a1 = qa.mul_add(V::load(p.add(l)), a1);
                a2 = qa.mul_add(V::load(p.add(2 * l)), a2);
                a3 = qa.mul_add(V::load(p.add(3 * l)), a3);
            }
        }
        let (a0, a1, a2, a3) = (a0.add(b0), a1.add(b1), a2.add(b2), a3.add(b3));
        // SAFETY: j + 4*LANES <= n = s.len().
        unsafe {
            let o = s.as_mut_ptr().add(j);
            a0.mul(vs).store(o);
            a1.mul(vs).store(o.add(l));
            a2.mul(vs).store(o.add(2 * l));
            a3.mul(vs).store(o.add(3 * l));
        }
        j += 4 * l;
    }
    while j + l <= n {
        let mut a0 = V::zero();
        for (d, &qd) in q.iter().enumerate() {
            // SAFETY: d*ld + j + LANES <= (hs-1)*ld + n <= kt.len(), as above.
            a0 = V::splat(qd).mul_add(unsafe { V::load(ktp.add(d * ld + j)) }, a0);
        }
        // SAFETY: j + LANES <= n = s.len().
        unsafe { a0.mul(vs).store(s.as_mut_ptr().add(j)) };
        j += l;
    }
    // Scalar tail: keys left over after the vectors (tile not a multiple of the lanes).
    while j < n {
        let mut a = 0.0f32;
        for (d, &qd) in q.iter().enumerate() {
            a += qd * kt[d * ld + j];
        }
        s[j] = a * scale;
        j += 1;
    }
}

/// s = exp(s - m).
#[inline(always)]
fn exp_sub<V: VecMath>(s: &mut [f32], m: f32) {
    let n = s.len();
    let l = V::LANES;
    let vm = V::splat(m);
    let mut j = 0;
    while j + l <= n {
        // SAFETY: j + LANES <= n = s.len().
        unsafe {
            let p = s.as_mut_ptr().add(j);
            V::load(p).sub(vm).exp().store(p);
        }
        j += l;
    }
    while j < n {
        s[j] = (s[j] - m).exp();
        j += 1;
    }
}

/// dp = p ∘ (dp - d) * scale (dS, pre-scaled for dq and dk), no dropout.
#[inline(always)]
fn softmax_bwd_row<V: VecMath>(dp: &mut [f32], p: &[f32], d: f32, scale: f32) {
    let n = dp.len();
    let p = &p[..n];
    let l = V::LANES;
    let (vd, vs) = (V::splat(d), V::splat(scale));
    let mut j = 0;
    while j + l <= n {
        // SAFETY: j + LANES <= n and both rows hold n floats.
        unsafe {
            let o = dp.as_mut_ptr().add(j);
            let g = V::load(p.as_ptr().add(j)).mul(V::load(o).sub(vd)).mul(vs);
            g.store(o);
        }
        j += l;
    }
    while j < n {
        dp[j] = p[j] * (dp[j] - d) * scale;
        j += 1;
    }
}

/// y *= a.
#[inline(always)]
fn scale_row<V: VecMath>(y: &mut [f32], a: f32) {
    let n = y.len();
    let l = V::LANES;
    let va = V::splat(a);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n = y.len().
        unsafe { V::load(y.as_ptr().add(i)).mul(va).store(y.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        y[i] *= a;
        i += 1;
    }
}

/// o = x * a.
#[inline(always)]
fn scale_into<V: VecMath>(o: &mut [f32], x: &[f32], a: f32) {
    let n = o.len();
    let x = &x[..n];
    let l = V::LANES;
    let va = V::splat(a);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and both rows hold n floats.
        unsafe { V::load(x.as_ptr().add(i)).mul(va).store(o.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        o[i] = x[i] * a;
        i += 1;
    }
}

/// y += a x.
#[inline(always)]
fn axpy<V: VecMath>(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len();
    let x = &x[..n];
    let l = V::LANES;
    let va = V::splat(a);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i + LANES <= n and both rows hold n floats.
        unsafe { va.mul_add(V::load(x.as_ptr().add(i)), V::load(y.as_ptr().add(i))).store(y.as_mut_ptr().add(i)) };
        i += l;
    }
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

/// o[r*ldo + d] += Σ_{j<n} p[r*prs + j*pjs] · src[off + j*stride + d] for r < nr, d < hs:
/// a small (nr x n) · (n x HS) product into nr output rows. Four rows at a time, the output
/// block stays in registers (4 rows x 2 vectors) across the whole j loop and each src row
/// is loaded once for four outputs; leftover rows go one at a time.
///
/// # Safety
/// `o` must point to nr rows of hs writable floats at stride ldo that nothing else
/// accesses during the call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block_axpy<V: VecMath>(o: *mut f32, ldo: usize, nr: usize, hs: usize, p: &[f32], prs: usize, pjs: usize, n: usize, src: &[f32], off: usize, stride: usize) {
    if n == 0 || nr == 0 || hs == 0 {
        return;
    }
    // Bounds of every p and src element read below.
    assert!((nr - 1) * prs + (n - 1) * pjs < p.len());
    assert!(off + (n - 1) * stride + hs <= src.len());
    // SAFETY (raw reads/writes below): p and src reads stay inside the bounds just
    // asserted; o rows are the caller's (see # Safety).
    let l = V::LANES;
    let pp = p.as_ptr();
    let sp = src.as_ptr().add(off);
    let mut r0 = 0;
    while r0 + 4 <= nr {
        let (o0, o1, o2, o3) = (o.add(r0 * ldo), o.add((r0 + 1) * ldo), o.add((r0 + 2) * ldo), o.add((r0 + 3) * ldo));
        let (p0, p1, p2, p3) = (pp.add(r0 * prs), pp.add((r0 + 1) * prs), pp.add((r0 + 2) * prs), pp.add((r0 + 3) * prs));
        let mut d = 0;
        while d + 2 * l <= hs {
            let (mut a0, mut a1, mut a2, mut a3) = (V::load(o0.add(d)), V::load(o1.add(d)), V::load(o2.add(d)), V::load(o3.add(d)));
            let (mut b0, mut b1, mut b2, mut b3) = (V::load(o0.add(d + l)), V::load(o1.add(d + l)), V::load(o2.add(d + l)), V::load(o3.add(d + l)));
            for j in 0..n {
                let s = sp.add(j * stride + d);
                let (v0, v1) = (V::load(s), V::load(s.add(l)));
                let k = j * pjs;
                let (w0, w1, w2, w3) = (V::splat(*p0.add(k)), V::splat(*p1.add(k)), V::splat(*p2.add(k)), V::splat(*p3.add(k)));
                a0 = w0.mul_add(v0, a0);
                b0 = w0.mul_add(v1, b0);
                a1 = w1.mul_add(v0, a1);
                b1 = w1.mul_add(v1, b1);
                a2 = w2.mul_add(v0, a2);
                b2 = w2.mul_add(v1, b2);
                a3 = w3.mul_add(v0, a3);
                b3 = w3.mul_add(v1, b3);
            }
            a0.store(o0.add(d));
            a1.store(o1.add(d));
            a2.store(o2.add(d));
            a3.store(o3.add(d));
            b0.store(o0.add(d + l));
            b1.store(o1.add(d + l));
            b2.store(o2.add(d + l));
            b3.store(o3.add(d + l));
            d += 2 * l;
        }
        while d + l <= hs {
            let (mut a0, mut a1, mut a2, mut a3) = (V::load(o0.add(d)), V::load(o1.add(d)), V::load(o2.add(d)), V::load(o3.add(d)));
            for j in 0..n {
                let v0 = V::load(sp.add(j * stride + d));
                let k = j * pjs;
                a0 = V::splat(*p0.add(k)).mul_add(v0, a0);
                a1 = V::splat(*p1.add(k)).mul_add(v0, a1);
                a2 = V::splat(*p2.add(k)).mul_add(v0, a2);
                a3 = V::splat(*p3.add(k)).mul_add(v0, a3);
            }
            a0.store(o0.add(d));
            a1.store(o1.add(d));
            a2.store(o2.add(d));
            a3.store(o3.add(d));
            d += l;
        }
        // Scalar tail over HS (HS not a multiple of the lanes).
        while d < hs {
            let (mut a0, mut a1, mut a2, mut a3) = (*o0.add(d), *o1.add(d), *o2.add(d), *o3.add(d));
            for j in 0..n {
                let v = *sp.add(j * stride + d);
                let k = j * pjs;
                a0 += *p0.add(k) * v;
                a1 += *p1.add(k) * v;
                a2 += *p2.add(k) * v;
                a3 += *p3.add(k) * v;
            }
            *o0.add(d) = a0;
            *o1.add(d) = a1;
            *o2.add(d) = a2;
            *o3.add(d) = a3;
            d += 1;
        }
        r0 += 4;
    }
    // Leftover rows, one at a time.
    while r0 < nr {
        let (o0, p0) = (o.add(r0 * ldo), pp.add(r0 * prs));
        let mut d = 0;
        while d + l <= hs {
            let mut a0 = V::load(o0.add(d));
            for j in 0..n {
                a0 = V::splat(*p0.add(j * pjs)).mul_add(V::load(sp.add(j * stride + d)), a0);
            }
            a0.store(o0.add(d));
            d += l;
        }
        while d < hs {
            let mut a0 = *o0.add(d);
            for j in 0..n {
                a0 += *p0.add(j * pjs) * *sp.add(j * stride + d);
            }
            *o0.add(d) = a0;
            d += 1;
        }
        r0 += 1;
    }
}
