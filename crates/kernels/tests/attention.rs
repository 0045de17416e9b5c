//! Flash attention against a naive materialised-softmax attention in f64, with and without
//! dropout, serially and on several threads. The naive backward is itself checked by
//! finite differences. Run under each SIMD level (see tests/kernels.rs).

use ferrogpt_kernels::attention::{attention_backward, attention_forward, attention_scratch_len};
use ferrogpt_kernels::rng::{keep, Dropout};
use ferrogpt_kernels::{Parallel, Serial};

mod common;
use common::{Rng, Threads};

/// Dropout factor of (bh, i, j): 1/(1-p) if kept, 0 if dropped; 1 without dropout.
fn zfac(d: Dropout, bh: usize, t: usize, i: usize, j: usize) -> f64 {
    if d.p == 0.0 {
        return 1.0;
    }
    let idx = (bh as u32).wrapping_mul(t as u32).wrapping_add(i as u32).wrapping_mul(t as u32).wrapping_add(j as u32);
    if keep(d.p, d.seed, d.stream, idx) {
        1.0 / (1.0 - d.p as f64)
    } else {
        0.0
    }
}

/// Naive attention in f64: returns (out (B,T,C), lse (B,NH,T)).
fn naive_forward(qkv: &[f64], b: usize, t: usize, c: usize, nh: usize, d: Dropout) -> (Vec<f64>, Vec<f64>) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f64).sqrt();
    let mut out = vec![0.0; b * t * c];
    let mut lse = vec![0.0; b * nh * t];
    let q = |bb: usize, i: usize, h: usize, x: usize| qkv[(bb * t + i) * 3 * c + x * c + h * hs..][..hs].to_vec();
    let mut s = vec![0.0; t];
    for bb in 0..b {
        for h in 0..nh {
            for i in 0..t {
                let qi = q(bb, i, h, 0);
                let mut m = f64::NEG_INFINITY;
                for j in 0..=i {
                    let kj = q(bb, j, h, 1);
                    s[j] = scale * qi.iter().zip(&kj).map(|(a, b)| a * b).sum::<f64>();
                    m = m.max(s[j]);
                }
                let sum: f64 = (0..=i).map(|j| (s[j] - m).exp()).sum();
                lse[(bb * nh + h) * t + i] = m + sum.ln();
                for j in 0..=i {
                    let p = (s[j] - m).exp() / sum * zfac(d, bb * nh + h, t, i, j);
                    let vj = q(bb, j, h, 2);
                    for x in 0..hs {
                        out[(bb * t + i) * c + h * hs + x] += p * vj[x];
                    }
                }
            }
        }
    }
    (out, lse)
}

/// Naive backward in f64: dqkv (B,T,3C) (fresh, not accumulated).
fn naive_backward(qkv: &[f64], dout: &[f64], b: usize, t: usize, c: usize, nh: usize, d: Dropout) -> Vec<f64> {
    let hs = c / nh;
    let scale = 1.0 / (hs as f64).sqrt();
    let c3 = 3 * c;
    let mut dqkv = vec![0.0; b * t * c3];
    let at = |bb: usize, i: usize, h: usize, x: usize| (bb * t + i) * c3 + x * c + h * hs;
    for bb in 0..b {
        for h in 0..nh {
            let bh = bb * nh + h;
            for i in 0..t {
                let qi = &qkv[at(bb, i, h, 0)..][..hs];
                let doi = &dout[(bb * t + i) * c + h * hs..][..hs];
                let s: Vec<f64> = (0..=i).map(|j| scale * qi.iter().zip(&qkv[at(bb, j, h, 1)..][..hs]).map(|(a, b)| a * b).sum::<f64>()).collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = s.iter().map(|x| (x - m).exp()).sum();
                let p: Vec<f64> = s.iter().map(|x| (x - m).exp() / sum).collect();
                let z: Vec<f64> = (0..=i).map(|j| zfac(d, bh, t, i, j)).collect();
                // dP_ij = Z_ij dO_i · v_j
                let dp: Vec<f64> = (0..=i).map(|j| z[j] * doi.iter().zip(&qkv[at(bb, j, h, 2)..][..hs]).map(|(a, b)| a * b).sum::<f64>()).collect();
                let dsum: f64 = (0..=i).map(|j| p[j] * dp[j]).sum();
                for j in 0..=i {
                    let ds = p[j] * (dp[j] - dsum);
                    for x in 0..hs {
                        dqkv[at(bb, j, h, 2) + x] += z[j] * p[j] * doi[x];
                        dqkv[at(bb, i, h, 0) + x] += scale * ds * qkv[at(bb, j, h, 1) + x];
                        dqkv[at(bb, j, h, 1) + x] += scale * ds * qi[x];
                    }
                }
            }
        }
    }
    dqkv
}

fn assert_close(name: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut worst = 0.0f64;
    let mut at = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{name}[{i}] = {g} is not finite (want {w})");
        let err = (g as f64 - w).abs() / (atol + rtol * w.abs());
        if err > worst {
            worst = err;
            at = i;
        }
    }
    assert!(worst <= 1.0, "{name}: element {at} = {} vs {} (err {worst:.3} of tolerance)", got[at], want[at]);
}

fn check(b: usize, t: usize, c: usize, nh: usize, d: Dropout, seed: u64) {
    let mut r = Rng(seed);
    let qkv = r.vec(b * t * 3 * c, -1.5, 1.5);
    let dout = r.vec(b * t * c, -1.0, 1.0);
    let qkv64: Vec<f64> = qkv.iter().map(|&x| x as f64).collect();
    let dout64: Vec<f64> = dout.iter().map(|&x| x as f64).collect();
    let (wout, wlse) = naive_forward(&qkv64, b, t, c, nh, d);
    let wd = naive_backward(&qkv64, &dout64, b, t, c, nh, d);
    let amax = |v: &[f64]| v.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
    let (om, dm) = (amax(&wout).max(1e-3), amax(&wd).max(1e-3));
    let pars: [&dyn Parallel; 2] = [&Serial, &Threads(3)];
    for par in pars {
        let tag = format!("B={b} T={t} C={c} NH={nh} p={} threads={}", d.p, par.threads());
        let len = attention_scratch_len(b, t, c, nh, par.threads());
        // Garbage scratch: nothing may rely on it being zeroed.
        let mut scratch = vec![f32::NAN; len];
        let mut out = vec![123.0f32; b * t * c];
        let mut lse = vec![123.0f32; b * nh * t];
        attention_forward(par, &mut scratch, &mut out, &mut lse, &qkv, b, t, c, nh, d);
        assert_close(&format!("out {tag}"), &out, &wout, 1e-4, 2e-5 * om);
        assert_close(&format!("lse {tag}"), &lse, &wlse, 1e-5, 1e-5);
        // Backward accumulates: start from random values, run twice.
        let d0 = r.vec(b * t * 3 * c, -1.0, 1.0);
        let mut dqkv = d0.clone();
        for rep in 1..=2 {
            for x in scratch.iter_mut() {
                *x = f32::NAN;
            }
            attention_backward(par, &mut scratch, &mut dqkv, &dout, &qkv, &out, &lse, b, t, c, nh, d, false);
            let want: Vec<f64> = d0.iter().zip(&wd).map(|(&a, &g)| a as f64 + rep as f64 * g).collect();
            assert_close(&format!("dqkv rep {rep} {tag}"), &dqkv, &want, 1e-4, 5e-5 * dm);
        }
        // Overwriting: garbage in dqkv must not leak into the result.
        let mut dqkv = vec![f32::NAN; b * t * 3 * c];
        attention_backward(par, &mut scratch, &mut dqkv, &dout, &qkv, &out, &lse, b, t, c, nh, d, true);
        assert_close(&format!("dqkv overwrite {tag}"), &dqkv, &wd, 1e-4, 5e-5 * dm);
    }
}

const DROP: Dropout = Dropout { p: 0.2, seed: 0xdead_beef, stream: 3 };

#[test]
fn small_shapes() {
    // (B, T, C, NH): HS = 1, 3, 5, T = 1, one head, ...
    for (k, &(b, t, c, nh)) in [(1, 1, 1, 1), (1, 2, 1, 1), (2, 3, 6, 2), (1, 5, 5, 1), (3, 7, 3, 3), (1, 17, 34, 2), (2, 9, 48, 4)].iter().enumerate() {
        check(b, t, c, nh, Dropout::NONE, 100 + k as u64);
        check(b, t, c, nh, DROP, 200 + k as u64);
    }
}

#[test]
fn tile_edges() {
    // T around and not a multiple of the tile, HS not a multiple of the lanes, HS = 64.
    for (k, &(b, t, c, nh)) in [(2, 70, 24, 3), (1, 64, 128, 2), (1, 65, 64, 1), (1, 130, 36, 3), (2, 127, 20, 4), (1, 200, 64, 1)].iter().enumerate() {
        check(b, t, c, nh, Dropout::NONE, 300 + k as u64);
        check(b, t, c, nh, DROP, 400 + k as u64);
    }
}

#[test]
fn long_sequence() {
    check(1, 1024, 8, 2, Dropout::NONE, 500);
    check(1, 1024, 3, 1, Dropout { p: 0.1, seed: 9, stream: 1 }, 501);
}

#[test]
fn dropout_zero_matches_none_and_mask_matters() {
    let (b, t, c, nh) = (1, 20, 8, 2);
    let mut r = Rng(7);
    let qkv = r.vec(b * t * 3 * c, -1.0, 1.0);
    let mut scratch = vec![0.0f32; attention_scratch_len(b, t, c, nh, 1)];
    let run = |d: Dropout, scratch: &mut Vec<f32>| {
        let mut out = vec![0.0f32; b * t * c];
        let mut lse = vec![0.0f32; b * nh * t];
        attention_forward(&Serial, scratch, &mut out, &mut lse, &qkv, b, t, c, nh, d);
        (out, lse)
    };
    let (o0, l0) = run(Dropout::NONE, &mut scratch);
    let (o1, l1) = run(Dropout { p: 0.0, seed: 5, stream: 5 }, &mut scratch);
    assert_eq!(o0, o1);
    assert_eq!(l0, l1);
    let (o2, l2) = run(Dropout { p: 0.5, seed: 5, stream: 5 }, &mut scratch);
    assert_eq!(l0, l2, "lse does not depend on dropout");
    assert_ne!(o0, o2);
}

/// The naive backward against central finite differences of the naive forward (f64).
#[test]
fn naive_backward_matches_finite_differences() {
    for &d in &[Dropout::NONE, DROP] {
        let (b, t, c, nh) = (2, 4, 6, 2);
        let mut r = Rng(11);
        let qkv: Vec<f64> = r.vec(b * t * 3 * c, -1.0, 1.0).iter().map(|&x| x as f64).collect();
        let dout: Vec<f64> = r.vec(b * t * c, -1.0, 1.0).iter().map(|&x| x as f64).collect();
        let g = naive_backward(&qkv, &dout, b, t, c, nh, d);
        let f = |x: &[f64]| -> f64 { naive_forward(x, b, t, c, nh, d).0.iter().zip(&dout).map(|(a, b)| a * b).sum() };
        let h = 1e-5;
        for k in 0..qkv.len() {
            let mut x = qkv.clone();
            x[k] += h;
            let fp = f(&x);
            x[k] -= 2.0 * h;
            let fm = f(&x);
            let fd = (fp - fm) / (2.0 * h);
            assert!((fd - g[k]).abs() < 1e-7 * (1.0 + g[k].abs()), "fd {k}: {fd} vs {}", g[k]);
        }
    }
}

#[test]
fn scratch_is_per_thread_tiles() {
    let (b, c, nh) = (4, 768, 12);
    let per1 = attention_scratch_len(b, 1024, c, nh, 1);
    assert_eq!(attention_scratch_len(b, 1024, c, nh, 2), 2 * per1);
    assert_eq!(attention_scratch_len(b * 8, 1024, c, nh, 1), per1, "independent of B");
    assert!(per1 < 64 * 1024, "not O(T^2): {per1}");
}
