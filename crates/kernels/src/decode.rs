//! KV-cached causal attention, for generation: the prompt is encoded once, then each new
//! token costs one pass of attention over the cache instead of a full recompute.
//!
//! One kernel serves both phases. `attention_decode` takes the qkv of Tq new tokens per
//! sequence, writes their k and v into the cache at each sequence's own position, and
//! attends causally over the cache:
//!   prefill: Tq = prompt length (pos = 0, or the current length when a prompt arrives in
//!            chunks);
//!   decode:  Tq = 1, one new token per sequence.
//!
//! Layout and batching. The cache of one layer is kcache, vcache (B,NH,maxT,HS): for each
//! sequence b and head h, maxT rows of HS contiguous floats. Sequences are LEFT-ALIGNED in
//! the cache: sequence b holds its tokens at rows 0..pos[b], and pos (B, i32) is its current
//! length. A call appends the Tq new tokens of sequence b at rows pos[b]..pos[b]+Tq and query
//! row t of sequence b attends to cache rows 0..=pos[b]+t. So sequences of different lengths
//! decode together in one call (each has its own pos), and a batch of prompts of different
//! lengths can be prefilled in one call by right-padding them to a common Tq: the padding
//! rows write junk k/v past each sequence's real length, which no later query reads (the
//! caller sets pos[b] to the real length, and the next append overwrites them), and the
//! padding rows' outputs are junk the caller ignores. Padding may run past the end of the
//! cache: rows whose position pos[b]+t is >= maxT are not appended and their output is 0
//! (so a nearly full sequence can share a call with a long prompt); pos[b] itself must be
//! <= maxT. This kernel does not update pos: the caller advances it (pos[b] += real new
//! tokens), and keeps every real token below maxT.
//!
//! Work split: one task per (b, h); a task first appends its head's Tq rows of k and v, then
//! computes its Tq query rows, so no task reads a cache row another task writes. Scores use
//! SIMD dot products over HS, four keys at a time sharing the q loads; P·V is a four-key
//! axpy over HS. Scratch: one score row (maxT floats) per thread.
//!
//! The cache in bf16 (`attention_decode_bf16`): the same kernel over kcache, vcache held as
//! bf16 bits (compact.rs's format), half the bytes of the cache and of what each decoded
//! token reads. The new k, v rows are rounded to bf16 as they are appended (RNE,
//! `bf16_round`), and attention reads every row widened (exact) and computes in f32 as the
//! f32 kernel does; the current tokens' own k, v come from the cache too, so a prompt fed
//! whole or token by token gives the same result. One body serves both: the inner loops
//! are generic over the cache's element (`Elem`), whose f32 instance is the plain
//! load and store, so the f32 kernel compiles to the same code as before.


#[cfg(test)]
use crate::compact::{bf16_round, bf16_widen};
use crate::simd::math::{exp_sub_sum, row_max, VecMath};
use crate::simd::Elem;
use crate::Parallel;

/// Scratch floats `attention_decode` needs: one score row of maxT per thread.
pub fn attention_decode_scratch_len(max_t: usize, threads: usize) -> usize {
    threads.max(1) * max_t
}

/// Appends the k and v of qkv (B,Tq,3C) to kcache / vcache (B,NH,maxT,HS) at rows
/// pos[b]..pos[b]+Tq of each sequence, then out (B,Tq,C) = causal attention of each query
/// row t of sequence b over cache rows 0..=pos[b]+t (scale 1/sqrt(HS), no dropout).
/// Overwrites out and those cache rows. Rows with pos[b]+t >= maxT (padding past the end)
/// are skipped and their output is 0. Requires 0 <= pos[b] <= maxT (asserted; the bindings
/// check first).
#[allow(clippy::too_many_arguments)]
pub fn attention_decode(
    par: &dyn Parallel,
    scratch: &mut [f32],
    out: &mut [f32],
    kcache: &mut [f32],
    vcache: &mut [f32],
    qkv: &[f32],
    pos: &[i32],
    b: usize,
    tq: usize,
    c: usize,
    nh: usize,
    max_t: usize,
) {
    decode(par, scratch, out, kcache, vcache, qkv, pos, b, tq, c, nh, max_t, kern::decode_task);
}

/// `attention_decode` over a bf16 cache: kcache / vcache (B,NH,maxT,HS) are bf16 bits; the
/// appended rows are bf16(k), bf16(v) (round to nearest even), and every cache row, the new
/// ones included, is read widened. Computes in f32, as `attention_decode`.
#[allow(clippy::too_many_arguments)]
pub fn attention_decode_bf16(
    par: &dyn Parallel,
    scratch: &mut [f32],
    out: &mut [f32],
    kcache: &mut [u16],
    vcache: &mut [u16],
    qkv: &[f32],
    pos: &[i32],
    b: usize,
    tq: usize,
    c: usize,
    nh: usize,
    max_t: usize,
) {
    decode(par, scratch, out, kcache, vcache, qkv, pos, b, tq, c, nh, max_t, kern::decode_task_bf16);
}

/// The body of both kernels: slices the buffers to their shapes, checks pos, and runs
/// `task` (decode_task_impl for the cache's element) once per (b, h) on the pool.
#[allow(clippy::too_many_arguments)]
fn decode<E: Elem>(
    par: &dyn Parallel,
    scratch: &mut [f32],
    out: &mut [f32],
    kcache: &mut [E],
    vcache: &mut [E],
    qkv: &[f32],
    pos: &[i32],
    b: usize,
    tq: usize,
    c: usize,
    nh: usize,
    max_t: usize,
    task: fn(&kern::Args<E>, usize, usize),
) {
    if b == 0 || tq == 0 || c == 0 {
        return;
    }
    debug_assert!(nh > 0 && c.is_multiple_of(nh));
    let hs = c / nh;
    let out = &mut out[..b * tq * c]; // (B,Tq,C)
    let kcache = &mut kcache[..b * nh * max_t * hs]; // (B,NH,maxT,HS)
    let vcache = &mut vcache[..b * nh * max_t * hs]; // (B,NH,maxT,HS)
    let qkv = &qkv[..b * tq * 3 * c]; // (B,Tq,3C)
    let pos = &pos[..b]; // (B)
    // Real asserts: the tasks below index the cache through raw pointers.
    for &p in pos {
        assert!(p >= 0 && (p as usize) <= max_t, "attention_decode: pos exceeds maxT");
    }
    let threads = par.threads().max(1);
    assert!(scratch.len() >= threads * max_t, "attention_decode scratch too small");
    let args = kern::Args {
        out: out.as_mut_ptr(),
        kcache: kcache.as_mut_ptr(),
        vcache: vcache.as_mut_ptr(),
        qkv: qkv.as_ptr(),
        pos: pos.as_ptr(),
        scratch: scratch.as_mut_ptr(),
        tq,
        c,
        nh,
        hs,
        max_t,
    };
    par.for_each(b * nh, &|t, thread| task(&args, t, thread));
}

mod kern {
    use super::*;

    /// Raw pointers because tasks on different threads write disjoint parts of out and of
    /// the caches, which `&mut` slices cannot express.
    /// Over a cache of E (f32, or bf16 bits).
    pub struct Args<E> {
        pub out: *mut f32,     // (B,Tq,C)
        pub kcache: *mut E,    // (B,NH,maxT,HS)
        pub vcache: *mut E,    // (B,NH,maxT,HS)
        pub qkv: *const f32,   // (B,Tq,3C)
        pub pos: *const i32,   // (B)
        pub scratch: *mut f32, // (threads, maxT)
        pub tq: usize,
        pub c: usize,
        pub nh: usize,
        pub hs: usize,
        pub max_t: usize,
    }
    // SAFETY: the pointers come from slices that outlive `par.for_each`; task (b, h) writes
    // only head h of sequence b in out and in the caches (disjoint from every other task),
    // reads only its own cache rows and the shared qkv/pos, and each thread uses only its
    // own scratch row.
    unsafe impl<E> Sync for Args<E> {}

    crate::simd_kernel! {
        /// One (b, h) pair: append, then attend (f32 cache).
        pub fn decode_task(a: &Args<f32>, task: usize, thread: usize) => decode_task_impl
    }

    crate::simd_kernel! {
        /// The same over a bf16 cache.
        pub fn decode_task_bf16(a: &Args<u16>, task: usize, thread: usize) => decode_task_impl
    }

}

#[inline(always)]
fn decode_task_impl<V: VecMath>(a: &kern::Args<impl Elem>, task: usize, thread: usize) {
    let (tq, c, nh, hs, max_t) = (a.tq, a.c, a.nh, a.hs, a.max_t);
    let c3 = 3 * c;
    let (b, h) = (task / nh, task % nh);
    // SAFETY: pos holds B entries (sliced in attention_decode) and b < B; each was checked
    // to satisfy 0 <= pos <= maxT.
    let p0 = unsafe { *a.pos.add(b) } as usize;
    let tv = tq.min(max_t - p0); // rows that fit; the rest are padding past the cache
    let base = (b * nh + h) * max_t * hs; // row 0 of (b, h) in the caches
    // SAFETY: qkv holds B*Tq*3C floats and is only read; rows (b, 0..Tq) are inside.
    let q_all = unsafe { core::slice::from_raw_parts(a.qkv.add(b * tq * c3), tq * c3) }; // (Tq,3C)
    // SAFETY: rows 0..pos+tv <= maxT of head h of sequence b: only this task touches them
    // (see Args); the slices die before the task returns.
    let (kc, vc) = unsafe {
        (
            core::slice::from_raw_parts_mut(a.kcache.add(base), (p0 + tv) * hs), // (pos+tv,HS)
            core::slice::from_raw_parts_mut(a.vcache.add(base), (p0 + tv) * hs), // (pos+tv,HS)
        )
    };
    for t in 0..tv {
        let src = t * c3 + h * hs;
        let dst = (p0 + t) * hs;
        for (d, &x) in kc[dst..dst + hs].iter_mut().zip(&q_all[src + c..src + c + hs]) {
            *d = Elem::store(x);
        }
        for (d, &x) in vc[dst..dst + hs].iter_mut().zip(&q_all[src + 2 * c..src + 2 * c + hs]) {
            *d = Elem::store(x);
        }
    }
    // SAFETY: scratch holds threads * maxT floats and `thread` is unique among concurrent
    // tasks, so this row is ours alone.
    let srow = unsafe { core::slice::from_raw_parts_mut(a.scratch.add(thread * max_t), max_t) };
    let scale = 1.0 / (hs as f32).sqrt();
    for t in tv..tq {
        // SAFETY: as below; padding rows past the cache get 0.
        let o = unsafe { core::slice::from_raw_parts_mut(a.out.add((b * tq + t) * c + h * hs), hs) }; // (HS)
        for x in o.iter_mut() {
            *x = 0.0;
        }
    }
    for t in 0..tv {
        let n = p0 + t + 1; // keys this row sees
        let q = &q_all[t * c3 + h * hs..t * c3 + h * hs + hs]; // (HS)
        let s = &mut srow[..n];
        scores::<V, _>(s, q, kc, hs, scale);
        let m = row_max::<V>(s);
        let sum = exp_sub_sum::<V>(s, m);
        // SAFETY: out holds B*Tq*C floats; row (b, t), head h is written by this task only.
        let o = unsafe { core::slice::from_raw_parts_mut(a.out.add((b * tq + t) * c + h * hs), hs) }; // (HS)
        weighted_sum::<V, _>(o, s, vc, hs, 1.0 / sum);
    }
}

/// s[j] = scale * q · k_j for the first s.len() rows of k (rows of HS contiguous elements).
#[inline(always)]
fn scores<V: VecMath, E: Elem>(s: &mut [f32], q: &[f32], k: &[E], hs: usize, scale: f32) {
    let n = s.len();
    assert!(q.len() == hs && k.len() >= n * hs);
    let l = V::LANES;
    let hv = hs - hs % l; // vectorised part of HS
    let (qp, kp) = (q.as_ptr(), k.as_ptr());
    let mut j = 0;
    while j + 4 <= n {
        let (mut a0, mut a1, mut a2, mut a3) = (V::zero(), V::zero(), V::zero(), V::zero());
        let mut d = 0;
        while d < hv {
            // SAFETY: d + LANES <= hv <= HS, and rows j..j+4 < n are inside k (asserted).
            unsafe {
                let qv = V::load(qp.add(d));
                let r = kp.add(j * hs + d);
                a0 = qv.mul_add(E::load::<V>(r), a0);
                a1 = qv.mul_add(E::load::<V>(r.add(hs)), a1);
                a2 = qv.mul_add(E::load::<V>(r.add(2 * hs)), a2);
                a3 = qv.mul_add(E::load::<V>(r.add(3 * hs)), a3);
            }
            d += l;
        }
        let (mut d0, mut d1, mut d2, mut d3) = (a0.reduce_sum(), a1.reduce_sum(), a2.reduce_sum(), a3.reduce_sum());
        // Scalar tail over HS (HS not a multiple of the lanes).
        while d < hs {
            let qd = q[d];
            d0 += qd * k[j * hs + d].widen();
            d1 += qd * k[(j + 1) * hs + d].widen();
            d2 += qd * k[(j + 2) * hs + d].widen();
            d3 += qd * k[(j + 3) * hs + d].widen();
            d += 1;
        }
        s[j] = d0 * scale;
        s[j + 1] = d1 * scale;
        s[j + 2] = d2 * scale;
        s[j + 3] = d3 * scale;
        j += 4;
    }
    while j < n {
        let mut a0 = V::zero();
        let mut d = 0;
        while d < hv {
            // SAFETY: as above, for row j < n.
            unsafe { a0 = V::load(qp.add(d)).mul_add(E::load::<V>(kp.add(j * hs + d)), a0) };
            d += l;
        }
        let mut d0 = a0.reduce_sum();
        while d < hs {
            d0 += q[d] * k[j * hs + d].widen();
            d += 1;
        }
        s[j] = d0 * scale;
        j += 1;
    }
}

/// o = inv * Σ_j p[j] v_j over the first p.len() rows of v (rows of HS elements).
#[inline(always)]
fn weighted_sum<V: VecMath, E: Elem>(o: &mut [f32], p: &[f32], v: &[E], hs: usize, inv: f32) {
    let n = p.len();
    assert!(o.len() == hs && v.len() >= n * hs);
    for x in o.iter_mut() {
        *x = 0.0;
    }
    let l = V::LANES;
    let (op, vp) = (o.as_mut_ptr(), v.as_ptr());
    let mut j = 0;
    while j + 4 <= n {
        let (w0, w1, w2, w3) = (V::splat(p[j]), V::splat(p[j + 1]), V::splat(p[j + 2]), V::splat(p[j + 3]));
        let mut d = 0;
        while d + l <= hs {
            // SAFETY: d + LANES <= HS = o.len(); rows j..j+4 < n are inside v (asserted).
            unsafe {
                let r = vp.add(j * hs + d);
                let mut acc = V::load(op.add(d));
                acc = w0.mul_add(E::load::<V>(r), acc);
                acc = w1.mul_add(E::load::<V>(r.add(hs)), acc);
                acc = w2.mul_add(E::load::<V>(r.add(2 * hs)), acc);
                acc = w3.mul_add(E::load::<V>(r.add(3 * hs)), acc);
                acc.store(op.add(d));
            }
            d += l;
        }
        while d < hs {
            o[d] += p[j] * v[j * hs + d].widen() + p[j + 1] * v[(j + 1) * hs + d].widen() + p[j + 2] * v[(j + 2) * hs + d].widen() + p[j + 3] * v[(j + 3) * hs + d].widen();
            d += 1;
        }
        j += 4;
    }
    while j < n {
        let w = V::splat(p[j]);
        let mut d = 0;
        while d + l <= hs {
            // SAFETY: as above, for row j < n.
            unsafe { w.mul_add(E::load::<V>(vp.add(j * hs + d)), V::load(op.add(d))).store(op.add(d)) };
            d += l;
        }
        while d < hs {
            o[d] += p[j] * v[j * hs + d].widen();
            d += 1;
        }
        j += 1;
    }
    let vi = V::splat(inv);
    let mut d = 0;
    while d + l <= hs {
        // SAFETY: d + LANES <= HS = o.len().
        unsafe { V::load(op.add(d)).mul(vi).store(op.add(d)) };
        d += l;
    }
    while d < hs {
        o[d] *= inv;
        d += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Serial;

    /// The cached kernel over a prompt split into chunks equals one full causal pass.
    #[test]
    fn chunks_equal_one_pass() {
        let (tq, c, nh, max_t) = (7usize, 12usize, 3usize, 9usize);
        let hs = c / nh;
        let mut x = 0x1234u32;
        let qkv: Vec<f32> = (0..tq * 3 * c)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 8) as f32 / 16777216.0 - 0.5
            })
            .collect();
        let mut scratch = vec![0.0; attention_decode_scratch_len(max_t, 1)];
        let (mut k1, mut v1, mut o1) = (vec![0.0; nh * max_t * hs], vec![0.0; nh * max_t * hs], vec![0.0; tq * c]);
        attention_decode(&Serial, &mut scratch, &mut o1, &mut k1, &mut v1, &qkv, &[0], 1, tq, c, nh, max_t);
        let (mut k2, mut v2, mut o2) = (vec![0.0; nh * max_t * hs], vec![0.0; nh * max_t * hs], vec![0.0; tq * c]);
        for t in 0..tq {
            attention_decode(&Serial, &mut scratch, &mut o2[t * c..(t + 1) * c], &mut k2, &mut v2, &qkv[t * 3 * c..(t + 1) * 3 * c], &[t as i32], 1, 1, c, nh, max_t);
        }
        for i in 0..tq * c {
            assert!((o1[i] - o2[i]).abs() < 1e-6, "{i}: {} vs {}", o1[i], o2[i]);
        }
        assert_eq!(k1, k2);
        assert_eq!(v1, v2);
    }

    /// The bf16 cache is the f32 kernel over bf16-rounded k and v, bit for bit (widening is
    /// exact and the loops are the same), and a prompt fed whole or token by token agrees.
    #[test]
    fn bf16_cache_is_f32_over_rounded_kv() {
        let (b, tq, c, nh, max_t) = (2usize, 7usize, 20usize, 4usize, 11usize);
        let hs = c / nh;
        let mut x = 0x9e37u32;
        let qkv: Vec<f32> = (0..b * tq * 3 * c)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 8) as f32 / 16777216.0 - 0.5
            })
            .collect();
        // q as is, k and v rounded: what the bf16 kernel reads back from its cache.
        let rounded: Vec<f32> = qkv.iter().enumerate().map(|(i, &y)| if i % (3 * c) >= c { bf16_widen(bf16_round(y)) } else { y }).collect();
        let pos = [0i32, 3];
        let n = b * nh * max_t * hs;
        let mut scratch = vec![0.0; attention_decode_scratch_len(max_t, 1)];
        let (mut k1, mut v1, mut o1) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0; b * tq * c]);
        attention_decode(&Serial, &mut scratch, &mut o1, &mut k1, &mut v1, &rounded, &pos, b, tq, c, nh, max_t);
        let (mut k2, mut v2, mut o2) = (vec![0u16; n], vec![0u16; n], vec![0.0; b * tq * c]);
        attention_decode_bf16(&Serial, &mut scratch, &mut o2, &mut k2, &mut v2, &qkv, &pos, b, tq, c, nh, max_t);
        assert_eq!(o1.iter().map(|y| y.to_bits()).collect::<Vec<_>>(), o2.iter().map(|y| y.to_bits()).collect::<Vec<_>>());
        assert!(k1.iter().zip(&k2).all(|(&f, &h)| f.to_bits() == bf16_widen(h).to_bits()));
        assert!(v1.iter().zip(&v2).all(|(&f, &h)| f.to_bits() == bf16_widen(h).to_bits()));
        // Token by token (sequence 0, from pos 0).
        let (mut k3, mut v3, mut o3) = (vec![0u16; n / b], vec![0u16; n / b], vec![0.0; tq * c]);
        for t in 0..tq {
            attention_decode_bf16(&Serial, &mut scratch, &mut o3[t * c..(t + 1) * c], &mut k3, &mut v3, &qkv[t * 3 * c..(t + 1) * 3 * c], &[t as i32], 1, 1, c, nh, max_t);
        }
        for i in 0..tq * c {
            assert!((o2[i] - o3[i]).abs() < 1e-6, "{i}: {} vs {}", o2[i], o3[i]);
        }
        assert_eq!(&k2[..n / b], &k3[..]);
    }
}
