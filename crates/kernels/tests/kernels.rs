//! Elementwise and row kernels against naive f64 implementations, over awkward shapes,
//! serially and on several threads. Run under each SIMD level:
//!   cargo test -p ferrogpt-kernels --release
//!   FERROGPT_SIMD=avx2 cargo test -p ferrogpt-kernels --release
//!   FERROGPT_SIMD=scalar cargo test -p ferrogpt-kernels --release

use ferrogpt_kernels::adamw::adamw_update;
use ferrogpt_kernels::crossentropy::{crossentropy_backward, crossentropy_forward};
use ferrogpt_kernels::dropout::{dropout_backward, dropout_forward};
use ferrogpt_kernels::encoder::{encoder_backward, encoder_forward, first_invalid_id};
use ferrogpt_kernels::gelu::{gelu_backward, gelu_forward};
use ferrogpt_kernels::layernorm::{layernorm_backward, layernorm_forward};
use ferrogpt_kernels::norm::{scale, sum_squares};
use ferrogpt_kernels::residual::{residual_backward, residual_forward};
use ferrogpt_kernels::rng::keep;
use ferrogpt_kernels::{Parallel, Serial};

mod common;
use common::{Rng, Threads};

fn assert_close(name: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut worst = 0.0f64;
    let mut at = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / (atol + rtol * w.abs());
        assert!(g.is_finite(), "{name}[{i}] = {g} is not finite (want {w})");
        if err > worst {
            worst = err;
            at = i;
        }
    }
    assert!(worst <= 1.0, "{name}: element {at} = {} vs {} (err {worst:.3} of tolerance)", got[at], want[at]);
}

fn f64v(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

const SHAPES_NC: &[(usize, usize)] = &[(1, 1), (3, 1), (1, 3), (2, 3), (4, 17), (3, 768), (2, 33), (1, 1000)];

#[test]
fn encoder() {
    let mut r = Rng(1);
    let v = 7;
    for &(b, t, c) in &[(1, 1, 1), (2, 3, 3), (2, 5, 17), (1, 4, 768), (3, 2, 16)] {
        let ids: Vec<i32> = (0..b * t).map(|_| (r.next_u32() % v as u32) as i32).collect();
        let wte = r.vec(v * c, -1.0, 1.0);
        let wpe = r.vec((t + 2) * c, -1.0, 1.0);
        let mut out = vec![f32::NAN; b * t * c];
        encoder_forward(&mut out, &ids, &wte, &wpe, b, t, c);
        let mut want = vec![0.0f64; b * t * c];
        for bt in 0..b * t {
            for i in 0..c {
                want[bt * c + i] = wte[ids[bt] as usize * c + i] as f64 + wpe[(bt % t) * c + i] as f64;
            }
        }
        assert_close("encoder_forward", &out, &want, 1e-6, 1e-7);

        let dout = r.vec(b * t * c, -1.0, 1.0);
        let dwte0 = r.vec(v * c, -1.0, 1.0);
        let dwpe0 = r.vec((t + 2) * c, -1.0, 1.0);
        let (mut dwte, mut dwpe) = (dwte0.clone(), dwpe0.clone());
        let mut gte = vec![0.0f64; v * c];
        let mut gpe = vec![0.0f64; (t + 2) * c];
        for bt in 0..b * t {
            for i in 0..c {
                gte[ids[bt] as usize * c + i] += dout[bt * c + i] as f64;
                gpe[(bt % t) * c + i] += dout[bt * c + i] as f64;
            }
        }
        for rep in 1..=2 {
            encoder_backward(&mut dwte, &mut dwpe, &dout, &ids, b, t, c);
            let w1: Vec<f64> = dwte0.iter().zip(&gte).map(|(&a, &g)| a as f64 + rep as f64 * g).collect();
            let w2: Vec<f64> = dwpe0.iter().zip(&gpe).map(|(&a, &g)| a as f64 + rep as f64 * g).collect();
            assert_close("encoder_backward dwte", &dwte, &w1, 1e-5, 1e-5);
            assert_close("encoder_backward dwpe", &dwpe, &w2, 1e-5, 1e-5);
        }
    }
    assert_eq!(first_invalid_id(&[0, 3, 7, 1], 7), Some(2));
    assert_eq!(first_invalid_id(&[0, -1], 7), Some(1));
    assert_eq!(first_invalid_id(&[0, 6], 7), None);
}

fn layernorm_ref(inp: &[f32], w: &[f32], bias: &[f32], n: usize, c: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    for r in 0..n {
        let x = &inp[r * c..(r + 1) * c];
        let m = x.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / c as f64;
        let s = 1.0 / (var + 1e-5).sqrt();
        for i in 0..c {
            out[r * c + i] = (x[i] as f64 - m) * s * w[i] as f64 + bias[i] as f64;
        }
        mean[r] = m;
        rstd[r] = s;
    }
    (out, mean, rstd)
}

#[test]
fn layernorm() {
    let mut r = Rng(2);
    for &(n, c) in SHAPES_NC {
        // An offset mean checks the two-pass variance.
        let inp = r.vec(n * c, 2.0, 4.0);
        let w = r.vec(c, 0.5, 1.5);
        let bias = r.vec(c, -0.5, 0.5);
        let (mut out, mut mean, mut rstd) = (vec![f32::NAN; n * c], vec![f32::NAN; n], vec![f32::NAN; n]);
        layernorm_forward(&Serial, &mut out, &mut mean, &mut rstd, &inp, &w, &bias, n, c);
        let (wo, wm, ws) = layernorm_ref(&inp, &w, &bias, n, c);
        assert_close("layernorm out", &out, &wo, 2e-5, 2e-5);
        assert_close("layernorm mean", &mean, &wm, 1e-6, 1e-6);
        assert_close("layernorm rstd", &rstd, &ws, 2e-4, 1e-6);

        // Backward against the closed form in f64, checked itself by finite differences below.
        let dout = r.vec(n * c, -1.0, 1.0);
        let (mut gx, mut gw, mut gb) = (vec![0.0f64; n * c], vec![0.0f64; c], vec![0.0f64; c]);
        for row in 0..n {
            let (m, s) = (wm[row], ws[row]);
            let xh: Vec<f64> = (0..c).map(|i| (inp[row * c + i] as f64 - m) * s).collect();
            let g: Vec<f64> = (0..c).map(|i| w[i] as f64 * dout[row * c + i] as f64).collect();
            let mg = g.iter().sum::<f64>() / c as f64;
            let mgx = g.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / c as f64;
            for i in 0..c {
                gb[i] += dout[row * c + i] as f64;
                gw[i] += xh[i] * dout[row * c + i] as f64;
                gx[row * c + i] = s * (g[i] - mg - xh[i] * mgx);
            }
        }
        if n * c <= 40 {
            // Finite differences of sum(dout * out) in f64.
            let h = 1e-3;
            for k in 0..n * c {
                let mut xp = inp.iter().map(|&v| v as f64).collect::<Vec<_>>();
                let f = |xs: &Vec<f64>| -> f64 {
                    let xf: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
                    let _ = xf;
                    let mut tot = 0.0;
                    for row in 0..n {
                        let x = &xs[row * c..(row + 1) * c];
                        let m = x.iter().sum::<f64>() / c as f64;
                        let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / c as f64;
                        let s = 1.0 / (var + 1e-5).sqrt();
                        for i in 0..c {
                            tot += dout[row * c + i] as f64 * ((x[i] - m) * s * w[i] as f64 + bias[i] as f64);
                        }
                    }
                    tot
                };
                xp[k] += h;
                let fp = f(&xp);
                xp[k] -= 2.0 * h;
                let fm = f(&xp);
                let fd = (fp - fm) / (2.0 * h);
                assert!((fd - gx[k]).abs() < 1e-3 * (1.0 + gx[k].abs()), "layernorm fd {k}: {fd} vs {}", gx[k]);
            }
        }
        let dx0 = r.vec(n * c, -1.0, 1.0);
        let dw0 = r.vec(c, -1.0, 1.0);
        let db0 = r.vec(c, -1.0, 1.0);
        let (mut dx, mut dw, mut db) = (dx0.clone(), dw0.clone(), db0.clone());
        for rep in 1..=2 {
            layernorm_backward(&mut dx, &mut dw, &mut db, &dout, &inp, &w, &mean, &rstd, n, c);
            let k = rep as f64;
            let wx: Vec<f64> = dx0.iter().zip(&gx).map(|(&a, &g)| a as f64 + k * g).collect();
            let ww: Vec<f64> = dw0.iter().zip(&gw).map(|(&a, &g)| a as f64 + k * g).collect();
            let wb: Vec<f64> = db0.iter().zip(&gb).map(|(&a, &g)| a as f64 + k * g).collect();
            let scale_x = 1e-4 * (1.0 + ws.iter().cloned().fold(0.0, f64::max));
            assert_close("layernorm dinp", &dx, &wx, 1e-4, scale_x);
            assert_close("layernorm dweight", &dw, &ww, 1e-4, 1e-4 * n as f64);
            assert_close("layernorm dbias", &db, &wb, 1e-5, 1e-5 * n as f64);
        }
    }
}

fn gelu_ref(x: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
}

fn gelu_grad_ref(x: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    let u = k * (x + 0.044715 * x * x * x);
    let th = u.tanh();
    0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * x * x)
}

#[test]
fn gelu() {
    let mut r = Rng(3);
    for &n in &[1usize, 3, 7, 16, 17, 33, 768, 1000, 4099] {
        let mut inp = r.vec(n, -6.0, 6.0);
        // Extremes: saturation on both sides must stay finite and accurate.
        for (i, &x) in [-30.0f32, -12.0, -9.0, 0.0, 9.0, 30.0, 1e-3, -1e-3].iter().enumerate() {
            if i < n {
                inp[(i * 7919) % n] = x;
            }
        }
        let mut out = vec![f32::NAN; n];
        gelu_forward(&Serial, &mut out, &inp, n);
        let want: Vec<f64> = inp.iter().map(|&x| gelu_ref(x as f64)).collect();
        assert_close("gelu_forward", &out, &want, 1e-5, 1e-20);
        let dout = r.vec(n, -1.0, 1.0);
        let d0 = r.vec(n, -1.0, 1.0);
        let mut d = d0.clone();
        let g: Vec<f64> = inp.iter().zip(&dout).map(|(&x, &o)| gelu_grad_ref(x as f64) * o as f64).collect();
        for rep in 1..=2 {
            gelu_backward(&Serial, &mut d, &inp, &dout, n, false);
            let w: Vec<f64> = d0.iter().zip(&g).map(|(&a, &g)| a as f64 + rep as f64 * g).collect();
            assert_close("gelu_backward", &d, &w, 1e-5, 1e-6);
        }
        let mut d = vec![f32::NAN; n];
        gelu_backward(&Serial, &mut d, &inp, &dout, n, true);
        assert_close("gelu_backward overwrite", &d, &g, 1e-5, 1e-6);
    }
    // The closed-form derivative against finite differences.
    for i in 0..200 {
        let x = -8.0 + 16.0 * i as f64 / 199.0;
        let h = 1e-5;
        let fd = (gelu_ref(x + h) - gelu_ref(x - h)) / (2.0 * h);
        assert!((fd - gelu_grad_ref(x)).abs() < 1e-7, "gelu fd at {x}");
    }
}

#[test]
fn residual() {
    let mut r = Rng(4);
    for &n in &[1usize, 3, 17, 768, 1001] {
        let (a, b) = (r.vec(n, -1.0, 1.0), r.vec(n, -1.0, 1.0));
        let mut out = vec![f32::NAN; n];
        residual_forward(&Serial, &mut out, &a, &b, n);
        let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| x as f64 + y as f64).collect();
        assert_close("residual_forward", &out, &want, 1e-6, 1e-7);
        let dout = r.vec(n, -1.0, 1.0);
        let (d10, d20) = (r.vec(n, -1.0, 1.0), r.vec(n, -1.0, 1.0));
        let (mut d1, mut d2) = (d10.clone(), d20.clone());
        for rep in 1..=2 {
            residual_backward(&Serial, &mut d1, &mut d2, &dout, n);
            let k = rep as f64;
            let w1: Vec<f64> = d10.iter().zip(&dout).map(|(&a, &g)| a as f64 + k * g as f64).collect();
            let w2: Vec<f64> = d20.iter().zip(&dout).map(|(&a, &g)| a as f64 + k * g as f64).collect();
            assert_close("residual dinp1", &d1, &w1, 1e-6, 1e-6);
            assert_close("residual dinp2", &d2, &w2, 1e-6, 1e-6);
        }
    }
}

#[test]
fn dropout() {
    let mut r = Rng(5);
    for &n in &[1usize, 3, 17, 1000] {
        for &p in &[0.0f32, 0.1, 0.5] {
            let (seed, stream) = (1234u32, 7u32);
            let inp = r.vec(n, -1.0, 1.0);
            let mut out = vec![f32::NAN; n];
            dropout_forward(&mut out, &inp, n, p, seed, stream);
            let s = 1.0 / (1.0 - p as f64);
            let mask: Vec<bool> = (0..n).map(|i| p == 0.0 || keep(p, seed, stream, i as u32)).collect();
            let want: Vec<f64> = (0..n).map(|i| if mask[i] { inp[i] as f64 * s } else { 0.0 }).collect();
            assert_close("dropout_forward", &out, &want, 1e-6, 1e-7);
            if p == 0.0 {
                assert_eq!(out, inp, "p = 0 copies exactly");
            }
            if p == 0.5 && n == 1000 {
                let kept = mask.iter().filter(|&&k| k).count();
                assert!((400..600).contains(&kept), "kept {kept} of 1000 at p = 0.5");
            }
            let dout = r.vec(n, -1.0, 1.0);
            let d0 = r.vec(n, -1.0, 1.0);
            let mut d = d0.clone();
            for rep in 1..=2 {
                dropout_backward(&mut d, &dout, n, p, seed, stream);
                let w: Vec<f64> = (0..n).map(|i| d0[i] as f64 + rep as f64 * if mask[i] { dout[i] as f64 * s } else { 0.0 }).collect();
                assert_close("dropout_backward", &d, &w, 1e-6, 1e-6);
            }
        }
    }
}

#[test]
fn crossentropy() {
    let mut r = Rng(6);
    let pars: [&dyn Parallel; 2] = [&Serial, &Threads(3)];
    for &(n, v) in &[(1usize, 1usize), (1, 3), (3, 3), (5, 17), (4, 768), (7, 1000), (2, 50257)] {
        let logits = r.vec(n * v, -8.0, 8.0);
        let ignore = -100;
        let targets: Vec<i32> = (0..n).map(|i| if n > 2 && i == 1 { ignore } else { (r.next_u32() % v as u32) as i32 }).collect();
        let mut want = vec![0.0f64; n];
        let mut grad = vec![0.0f64; n * v];
        let dl = r.vec(n, 0.1, 1.0);
        for i in 0..n {
            if targets[i] == ignore {
                continue;
            }
            let row = &logits[i * v..(i + 1) * v];
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
            let s: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
            want[i] = m + s.ln() - row[targets[i] as usize] as f64;
            for j in 0..v {
                let p = (row[j] as f64 - m).exp() / s;
                grad[i * v + j] = (p - if j == targets[i] as usize { 1.0 } else { 0.0 }) * dl[i] as f64;
            }
        }
        for par in pars {
            let mut losses = vec![f32::NAN; n];
            crossentropy_forward(par, &mut losses, &logits, &targets, n, v, ignore);
            assert_close("crossentropy_forward", &losses, &want, 1e-5, 1e-5);
            let d0 = r.vec(n * v, -1.0, 1.0);
            let mut d = d0.clone();
            for rep in 1..=2 {
                crossentropy_backward(par, &mut d, &dl, &logits, &targets, n, v, ignore, false);
                let w: Vec<f64> = d0.iter().zip(&grad).map(|(&a, &g)| a as f64 + rep as f64 * g).collect();
                assert_close("crossentropy_backward", &d, &w, 1e-5, 1e-6);
            }
            // Overwriting: the garbage in d0 (ignored rows included) must vanish.
            let mut d = d0.clone();
            crossentropy_backward(par, &mut d, &dl, &logits, &targets, n, v, ignore, true);
            assert_close("crossentropy_backward overwrite", &d, &grad, 1e-5, 1e-6);
        }
    }
    // Huge logits: the max subtraction keeps it finite.
    let logits = [1000.0f32, 999.0, -1000.0];
    let mut losses = [0.0f32; 1];
    crossentropy_forward(&Serial, &mut losses, &logits, &[1], 1, 3, -1);
    let want = 1.0 + (1.0f64 + (-1.0f64).exp()).ln();
    assert!((losses[0] as f64 - want).abs() < 1e-5, "{} vs {want}", losses[0]);
}

#[test]
fn adamw() {
    let mut r = Rng(7);
    for &n in &[1usize, 3, 17, 768, 1001] {
        let (lr, b1, b2, eps, wd) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 0.01f32);
        let mut p = r.vec(n, -1.0, 1.0);
        let mut m = vec![0.0f32; n];
        let mut v = vec![0.0f32; n];
        let mut pr: Vec<f64> = f64v(&p);
        let mut mr = vec![0.0f64; n];
        let mut vr = vec![0.0f64; n];
        for step in 1..=4u32 {
            let g = r.vec(n, -1.0, 1.0);
            adamw_update(&Serial, &mut p, &g, &mut m, &mut v, n, lr, b1, b2, eps, wd, step);
            for i in 0..n {
                let gi = g[i] as f64;
                mr[i] = b1 as f64 * mr[i] + (1.0 - b1 as f64) * gi;
                vr[i] = b2 as f64 * vr[i] + (1.0 - b2 as f64) * gi * gi;
                let mh = mr[i] / (1.0 - (b1 as f64).powi(step as i32));
                let vh = vr[i] / (1.0 - (b2 as f64).powi(step as i32));
                pr[i] -= lr as f64 * (mh / (vh.sqrt() + eps as f64) + wd as f64 * pr[i]);
            }
            assert_close("adamw m", &m, &mr, 1e-5, 1e-7);
            assert_close("adamw v", &v, &vr, 1e-5, 1e-9);
            assert_close("adamw params", &p, &pr, 1e-5, 1e-6);
        }
    }
}

#[test]
fn norm() {
    let mut r = Rng(8);
    for &n in &[0usize, 1, 3, 17, 768, 100_003] {
        let x = r.vec(n, -2.0, 2.0);
        let want: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let got = sum_squares(&Serial, &x, n);
        assert!((got - want).abs() <= 1e-12 * (1.0 + want), "sum_squares {got} vs {want}");
        let mut y = x.clone();
        scale(&Serial, &mut y, n, 0.37);
        let w: Vec<f64> = x.iter().map(|&v| v as f64 * 0.37f32 as f64).collect();
        assert_close("scale", &y, &w, 1e-6, 1e-30);
    }
}

/// sum_squares below its split size, in its documented arithmetic: 32 f64 partial sums
/// (partial sum k takes x[32 i + k]², a multiply then an add), added pairwise, then the
/// remainder in order. Every instruction set must give exactly these bits.
fn sum_squares_spec(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 32];
    let chunks = x.chunks_exact(32);
    let rest = chunks.remainder();
    for ch in chunks {
        for k in 0..32 {
            let v = ch[k] as f64;
            acc[k] += v * v;
        }
    }
    let mut w = 32;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] += acc[k + w];
        }
    }
    let mut total = acc[0];
    for &v in rest {
        total += (v as f64) * (v as f64);
    }
    total
}

#[test]
fn sum_squares_is_the_same_bits_on_every_instruction_set() {
    let mut r = Rng(22);
    for &n in &[0usize, 5, 32, 33, 1000, 30_001] {
        let x = r.vec(n, -3.0, 3.0);
        assert_eq!(sum_squares(&Serial, &x, n).to_bits(), sum_squares_spec(&x).to_bits(), "n={n}");
    }
}

#[test]
fn optimizer_kernels_do_not_depend_on_threads() {
    // Large enough to be split into tasks; not a multiple of any chunk or vector width.
    let mut r = Rng(21);
    for &n in &[(1usize << 15) + 3, 300_007] {
        let x = r.vec(n, -2.0, 2.0);
        let want: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let s1 = sum_squares(&Serial, &x, n);
        assert!((s1 - want).abs() <= 1e-12 * (1.0 + want), "sum_squares {s1} vs {want}");
        for th in [2usize, 3] {
            assert_eq!(sum_squares(&Threads(th), &x, n).to_bits(), s1.to_bits(), "sum_squares n={n} threads={th}");
        }
        let (mut y1, mut y3) = (x.clone(), x.clone());
        scale(&Serial, &mut y1, n, 0.37);
        scale(&Threads(3), &mut y3, n, 0.37);
        assert!(y1.iter().zip(&y3).all(|(a, b)| a.to_bits() == b.to_bits()), "scale n={n}");
        let g = r.vec(n, -1.0, 1.0);
        let (m0, v0) = (r.vec(n, -0.1, 0.1), r.vec(n, 0.0, 0.1));
        let (mut p1, mut m1, mut v1) = (x.clone(), m0.clone(), v0.clone());
        let (mut p3, mut m3, mut v3) = (x.clone(), m0.clone(), v0.clone());
        adamw_update(&Serial, &mut p1, &g, &mut m1, &mut v1, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7);
        adamw_update(&Threads(3), &mut p3, &g, &mut m3, &mut v3, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7);
        for (a, b) in [(&p1, &p3), (&m1, &m3), (&v1, &v3)] {
            assert!(a.iter().zip(b.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "adamw n={n}");
        }
    }
}

#[test]
fn elementwise_kernels_do_not_depend_on_threads() {
    // Past the split size and not a multiple of any range or vector width.
    let mut r = Rng(23);
    let n = 300_007;
    let (a, b, d) = (r.vec(n, -3.0, 3.0), r.vec(n, -3.0, 3.0), r.vec(n, -1.0, 1.0));
    let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
    let run = |par: &dyn Parallel| {
        let mut g = vec![0.0f32; n];
        gelu_forward(par, &mut g, &a, n);
        let mut gb = b.clone();
        gelu_backward(par, &mut gb, &a, &d, n, false);
        let mut gw = vec![f32::NAN; n];
        gelu_backward(par, &mut gw, &a, &d, n, true);
        let mut s = vec![0.0f32; n];
        residual_forward(par, &mut s, &a, &b, n);
        let (mut d1, mut d2) = (a.clone(), b.clone());
        residual_backward(par, &mut d1, &mut d2, &d, n);
        // LayerNorm: 2999 rows of 100 (rows split across tasks, C not a vector multiple).
        let (rows, c) = (2999, 100);
        let (w, bias) = (r_vec(c, 0.5), r_vec(c, -0.5));
        let (mut o, mut m, mut rs) = (vec![0.0f32; rows * c], vec![0.0f32; rows], vec![0.0f32; rows]);
        layernorm_forward(par, &mut o, &mut m, &mut rs, &a[..rows * c], &w, &bias, rows, c);
        [g, gb, gw, s, d1, d2, o, m, rs]
    };
    let (one, three) = (run(&Serial), run(&Threads(3)));
    for (k, (x, y)) in one.iter().zip(&three).enumerate() {
        assert!(same(x, y), "output {k} differs between 1 and 3 threads");
    }
}

/// c floats around `at` (a deterministic weight or bias row).
fn r_vec(c: usize, at: f32) -> Vec<f32> {
    (0..c).map(|i| at + 0.01 * (i % 7) as f32).collect()
}
