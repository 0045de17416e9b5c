//! matmul_forward / matmul_backward against a float64 triple loop, over awkward shapes
//! (1, 3, 17, 33, 100, 768: not multiples of any tile), serially and on several threads.
//! Run also with FERROGPT_SIMD=avx2 and FERROGPT_SIMD=scalar to cover every x86 path.

use ferrogpt_kernels::matmul::{matmul_backward, matmul_forward, matmul_forward_packed, matmul_scratch_len, pack_weight, packed_weight_rows};
use ferrogpt_kernels::{Parallel, Serial};

// The native addon's pool, compiled here too so its unit tests run with these ones and
// the GEMM is checked on it (crates/kernels cannot depend on crates/node).
#[path = "../../node/src/pool.rs"]
#[allow(dead_code)]
mod pool;

mod common;
use common::Threads as Scoped;

/// Deterministic values in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Asserts |got - want| <= 1e-5 * scale (+ a tiny floor), where scale is the sum of
/// |terms| behind each entry: float32 rounding error grows with it, not with |want|.
fn check(what: &str, got: &[f32], want: &[f64], scale: &[f64]) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let err = (got[i] as f64 - want[i]).abs();
        let tol = 1e-5 * scale[i] + 1e-6;
        assert!(err <= tol, "{what}[{i}]: got {} want {} (err {err:e} > tol {tol:e})", got[i], want[i]);
    }
}

/// The float64 reference of a (rows, cols) result, entry (r, c) = start(r, c) + the sum of
/// term(r, c, i) over i < inner, and its error scale: the sum of the |values| added.
fn reference(rows: usize, cols: usize, inner: usize, start: impl Fn(usize, usize) -> f64, term: impl Fn(usize, usize, usize) -> f64) -> (Vec<f64>, Vec<f64>) {
    let (mut want, mut scale) = (vec![0f64; rows * cols], vec![0f64; rows * cols]);
    for r in 0..rows {
        for c in 0..cols {
            let (mut s, mut a) = (start(r, c), start(r, c).abs());
            for i in 0..inner {
                let t = term(r, c, i);
                s += t;
                a += t.abs();
            }
            want[r * cols + c] = s;
            scale[r * cols + c] = a;
        }
    }
    (want, scale)
}

fn scratch_for(n: usize, c: usize, oc: usize, threads: usize) -> Vec<f32> {
    // NaN-filled: any read of scratch that was not written first poisons the result.
    vec![f32::NAN; matmul_scratch_len(n, c, oc, threads)]
}

/// Without `accumulate`, out starts as NaN and must be overwritten; with it, out starts
/// with values the product (and bias) must be added to.
fn check_forward(par: &dyn Parallel, n: usize, c: usize, oc: usize, with_bias: bool, accumulate: bool) {
    let inp = fill(n * c, 1); // (N, C)
    let weight = fill(oc * c, 2); // (OC, C)
    let bias = fill(oc, 3); // (OC)
    let out0 = if accumulate { fill(n * oc, 10) } else { vec![f32::NAN; n * oc] }; // (N, OC)
    let mut out = out0.clone();
    let mut scratch = scratch_for(n, c, oc, par.threads());
    matmul_forward(par, &mut scratch, &mut out, &inp, &weight, if with_bias { Some(&bias) } else { None }, n, c, oc, accumulate);
    let start = |i: usize, o: usize| (if with_bias { bias[o] as f64 } else { 0.0 }) + if accumulate { out0[i * oc + o] as f64 } else { 0.0 };
    let (want, scale) = reference(n, oc, c, start, |i, o, k| inp[i * c + k] as f64 * weight[o * c + k] as f64);
    check(&format!("forward out ({n},{c},{oc}) bias={with_bias} accumulate={accumulate} threads={}", par.threads()), &out, &want, &scale);
}

/// With `overwrite_dinp`, dinp starts as NaN and must come out as the product alone.
/// Without `with_dweight` (a frozen weight), only dinp and dbias are computed.
fn check_backward(par: &dyn Parallel, n: usize, c: usize, oc: usize, overwrite_dinp: bool, with_dweight: bool) {
    let dout = fill(n * oc, 4); // (N, OC)
    let inp = fill(n * c, 5); // (N, C)
    let weight = fill(oc * c, 6); // (OC, C)
    // Non-zero starting gradients: backward must accumulate.
    let dinp0 = if overwrite_dinp { vec![f32::NAN; n * c] } else { fill(n * c, 7) }; // (N, C)
    let dweight0 = fill(oc * c, 8); // (OC, C)
    let dbias0 = fill(oc, 9); // (OC)
    let (mut dinp, mut dweight, mut dbias) = (dinp0.clone(), dweight0.clone(), dbias0.clone());
    let mut scratch = scratch_for(n, c, oc, par.threads());
    let dweight_arg = if with_dweight { Some(&mut dweight[..]) } else { None };
    matmul_backward(par, &mut scratch, &mut dinp, dweight_arg, Some(&mut dbias), &dout, &inp, &weight, n, c, oc, overwrite_dinp);

    let tag = format!("({n},{c},{oc}) threads={} overwrite_dinp={overwrite_dinp} dweight={with_dweight}", par.threads());
    let (want, scale) = reference(n, c, oc, |i, k| if overwrite_dinp { 0.0 } else { dinp0[i * c + k] as f64 }, |i, k, o| dout[i * oc + o] as f64 * weight[o * c + k] as f64);
    check(&format!("backward dinp {tag}"), &dinp, &want, &scale);
    if with_dweight {
        let (want, scale) = reference(oc, c, n, |o, k| dweight0[o * c + k] as f64, |o, k, i| dout[i * oc + o] as f64 * inp[i * c + k] as f64);
        check(&format!("backward dweight {tag}"), &dweight, &want, &scale);
    } else {
        assert_eq!(dweight, dweight0, "backward without dweight {tag}: the buffer it was not given changed");
    }
    let (want, scale) = reference(oc, 1, n, |o, _| dbias0[o] as f64, |o, _, i| dout[i * oc + o] as f64);
    check(&format!("backward dbias {tag}"), &dbias, &want, &scale);
}

const SMALL: [usize; 5] = [1, 3, 17, 33, 100];

/// Every combination of small dimensions, plus a few large and lopsided shapes.
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for &n in &SMALL {
        for &c in &SMALL {
            for &oc in &SMALL {
                v.push((n, c, oc));
            }
        }
    }
    v.extend_from_slice(&[(1, 768, 100), (100, 768, 1), (33, 768, 17), (17, 100, 768), (64, 768, 768), (100, 3072, 33), (3, 300, 5000), (1, 1, 5000), (300, 17, 520)]);
    // The GEMV's row counts (up to 16, 4 or 2 at a time and the rest), with C not a whole
    // number of vectors, and the GEMM's just past it.
    v.extend_from_slice(&[(16, 100, 33), (6, 33, 17), (7, 768, 70), (8, 3072, 37), (13, 17, 5000), (2, 40, 6), (18, 64, 70)]);
    // Several K slices (C > KC), several column blocks of B (OC > NC) and a partial last
    // row panel at once: the next block's prefetch crosses both block boundaries.
    v.push((37, 1600, 1000));
    v
}

#[test]
fn forward_serial() {
    for (n, c, oc) in shapes() {
        check_forward(&Serial, n, c, oc, true, false);
        check_forward(&Serial, n, c, oc, false, false);
        check_forward(&Serial, n, c, oc, (n + c) % 2 == 0, true);
    }
}

#[test]
fn backward_serial() {
    for (n, c, oc) in shapes() {
        check_backward(&Serial, n, c, oc, false, true);
        check_backward(&Serial, n, c, oc, true, true);
        check_backward(&Serial, n, c, oc, (n + oc) % 2 == 0, false);
    }
}

#[test]
fn forward_backward_scoped_threads() {
    for threads in [2, 3] {
        let par = Scoped(threads);
        for (n, c, oc) in shapes() {
            check_forward(&par, n, c, oc, true, (n + c + oc) % 3 == 0);
            check_backward(&par, n, c, oc, (n + c + oc) % 2 == 0, (n + c + oc) % 3 != 1);
        }
    }
}

#[test]
fn forward_backward_pool() {
    let par = pool::Pool::new(3);
    for (n, c, oc) in shapes() {
        check_forward(&par, n, c, oc, true, (n + c + oc) % 3 == 1);
        check_backward(&par, n, c, oc, (n + c + oc) % 2 == 1, (n + c + oc) % 3 != 2);
    }
}

#[test]
fn zero_depth_writes_bias() {
    // C = 0: out is the bias; backward adds nothing to dweight.
    let (n, c, oc) = (3, 0, 5);
    let bias = fill(oc, 1);
    let mut out = vec![f32::NAN; n * oc];
    let mut scratch = scratch_for(n, c, oc, 1);
    matmul_forward(&Serial, &mut scratch, &mut out, &[], &[], Some(&bias), n, c, oc, false);
    for i in 0..n {
        assert_eq!(&out[i * oc..(i + 1) * oc], &bias[..]);
    }
    // Accumulating: the bias is added to what out holds.
    matmul_forward(&Serial, &mut scratch, &mut out, &[], &[], Some(&bias), n, c, oc, true);
    for i in 0..n {
        let twice: Vec<f32> = bias.iter().map(|b| b + b).collect();
        assert_eq!(&out[i * oc..(i + 1) * oc], &twice[..]);
    }
}

#[test]
fn scratch_covers_more_threads_than_tasks() {
    // Many threads on a tiny problem: scratch is per thread, tasks fewer than threads.
    check_forward(&Scoped(8), 5, 7, 3, true, false);
    check_backward(&Scoped(8), 5, 7, 3, false, true);
}

#[test]
fn gemv_rows_give_the_same_bits_alone_or_batched() {
    // Decoding: a sequence must produce the same logits whether it runs alone or in a
    // batch (of up to 16 rows, the GEMV's), on any thread count.
    let (n, c, oc) = (16, 771, 203);
    let inp = fill(n * c, 4);
    let weight = fill(oc * c, 5);
    let bias = fill(oc, 6);
    let mut scratch = scratch_for(n, c, oc, 3);
    let mut batched = vec![f32::NAN; n * oc];
    matmul_forward(&Scoped(3), &mut scratch, &mut batched, &inp, &weight, Some(&bias), n, c, oc, false);
    for rows in [1, 3, 5] {
        for r0 in (0..n).step_by(rows) {
            let rows = rows.min(n - r0);
            let mut alone = vec![f32::NAN; rows * oc];
            matmul_forward(&Serial, &mut scratch, &mut alone, &inp[r0 * c..(r0 + rows) * c], &weight, Some(&bias), rows, c, oc, false);
            let same = alone.iter().zip(&batched[r0 * oc..(r0 + rows) * oc]).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "rows {r0}..{} alone differ from the batch of {n}", r0 + rows);
        }
    }
}

#[test]
fn packed_weight_gives_matmul_forwards_bits() {
    // A weight packed once must give every product exactly what packing it on the fly
    // gives: any rows (the GEMV's and the GEMM's), several K slices and column blocks,
    // column splits on 2 and 3 threads, P larger than needed, accumulate and no bias.
    let mut cases = shapes();
    cases.extend_from_slice(&[(256, 768, 2000), (40, 2000, 700)]);
    for (i, (n, c, oc)) in cases.into_iter().enumerate() {
        let inp = fill(n * c, 10 + i as u64);
        let weight = fill(oc * c, 11 + i as u64);
        let bias = fill(oc, 12);
        let p = packed_weight_rows(oc) + if i % 4 == 3 { 192 } else { 0 };
        assert!(p >= oc && p % 192 == 0);
        let threads = [1, 2, 3][i % 3];
        let par: Box<dyn Parallel> = if threads == 1 { Box::new(Serial) } else { Box::new(Scoped(threads)) };
        let mut packed = vec![f32::NAN; p * c];
        pack_weight(par.as_ref(), &mut packed, &weight, c, oc, p);
        assert!(packed.iter().all(|x| !x.is_nan()), "({n},{c},{oc}): pack_weight left floats unwritten");
        let (with_bias, accumulate) = (i % 2 == 0, i % 5 == 1);
        let b = if with_bias { Some(&bias[..]) } else { None };
        let start = fill(n * oc, 13);
        let mut scratch = scratch_for(n, c, oc, threads);
        let mut want = start.clone();
        matmul_forward(par.as_ref(), &mut scratch, &mut want, &inp, &weight, b, n, c, oc, accumulate);
        let mut got = start.clone();
        matmul_forward_packed(par.as_ref(), &mut scratch, &mut got, &inp, &weight, &packed, b, n, c, oc, p, accumulate);
        let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "({n},{c},{oc}) threads={threads} P={p}: packed forward differs from matmul_forward");
    }
}
