//! Finite-difference checks of the Bayesian layers (w.r.t. μ, ρ and the input) with ε fixed.

use super::bayes::{self, PRIOR};
use super::conv::{self, ConvShape};
use super::linear;
use super::rng::Rng;

fn randn(seed: u64, n: usize, scale: f32, shift: f32) -> Vec<f32> {
    let mut v = vec![0.0; n];
    Rng::new(seed).fill_normal(&mut v);
    v.iter().map(|&x| shift + scale * x).collect()
}

fn close(a: f32, fd: f64, what: &str) {
    let tol = 2e-3 * (1.0 + fd.abs());
    assert!(
        (a as f64 - fd).abs() <= tol,
        "{what}: analytic {a} vs finite difference {fd}"
    );
}

/// A Bayesian layer under test: `y = f(x; w = μ + softplus(ρ)ε)` and `L = Σ r·y`.
struct Case {
    mu: Vec<f32>,
    rho: Vec<f32>,
    eps: Vec<f32>,
    x: Vec<f32>,
}

impl Case {
    fn weights(&self, mu: &[f32], rho: &[f32]) -> Vec<f32> {
        mu.iter()
            .zip(rho)
            .zip(&self.eps)
            .map(|((&m, &r), &e)| m + bayes::softplus(r) * e)
            .collect()
    }

    /// Analytic ∂L/∂μ and ∂L/∂ρ from ∂L/∂w (no KL: `c = 0`).
    fn param_grads(&self, dw: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = self.mu.len();
        let (mut s, mut ls, mut ds, mut w) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        bayes::sigma_terms(&self.rho, &mut s, &mut ls, &mut ds);
        bayes::sample(&self.mu, &s, &self.eps, &mut w);
        let (mut gm, mut gr) = (vec![0.0; n], vec![0.0; n]);
        bayes::accumulate_grads(&s, &ds, &self.eps, &w, dw, 0.0, &PRIOR, &mut gm, &mut gr);
        (gm, gr)
    }

    /// Central differences of `loss` over μ, ρ and x, compared with the analytic gradients.
    fn check(&self, loss: &dyn Fn(&[f32], &[f32]) -> f64, gm: &[f32], gr: &[f32], gx: &[f32]) {
        let h = 1e-2f32;
        let w0 = self.weights(&self.mu, &self.rho);
        for i in 0..self.mu.len() {
            let (mut a, mut b) = (self.mu.clone(), self.mu.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&self.weights(&a, &self.rho), &self.x)
                - loss(&self.weights(&b, &self.rho), &self.x))
                / (2.0 * h as f64);
            close(gm[i], fd, &format!("mu[{i}]"));
            let (mut a, mut b) = (self.rho.clone(), self.rho.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&self.weights(&self.mu, &a), &self.x)
                - loss(&self.weights(&self.mu, &b), &self.x))
                / (2.0 * h as f64);
            close(gr[i], fd, &format!("rho[{i}]"));
        }
        for i in 0..self.x.len() {
            let (mut a, mut b) = (self.x.clone(), self.x.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&w0, &a) - loss(&w0, &b)) / (2.0 * h as f64);
            close(gx[i], fd, &format!("x[{i}]"));
        }
    }
}

#[test]
fn bayesian_linear_gradients() {
    let (n, fin, fout) = (3, 5, 4);
    let np = fout * fin + fout;
    let case = Case {
        mu: randn(1, np, 0.5, 0.0),
        rho: randn(2, np, 0.5, -1.0),
        eps: randn(3, np, 1.0, 0.0),
        x: randn(4, n * fin, 1.0, 0.0),
    };
    let r = randn(5, n * fout, 1.0, 0.0);
    let loss = |w: &[f32], x: &[f32]| -> f64 {
        let mut y = vec![0.0; n * fout];
        linear::forward(x, &w[..fout * fin], &w[fout * fin..], n, fin, &mut y, false);
        y.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let w = case.weights(&case.mu, &case.rho);
    let mut dw = vec![0.0; np];
    let mut dx = vec![0.0; n * fin];
    {
        let (gw, gb) = dw.split_at_mut(fout * fin);
        linear::backward(
            &case.x,
            &w[..fout * fin],
            &r,
            n,
            fin,
            fout,
            gw,
            gb,
            Some(&mut dx),
        );
    }
    let (gm, gr) = case.param_grads(&dw);
    case.check(&loss, &gm, &gr, &dx);
}

#[test]
fn bayesian_conv_gradients() {
    let s = ConvShape {
        cin: 2,
        cout: 3,
        k: 3,
        h: 6,
    };
    let n = 2;
    let nw = s.cout * s.kdim();
    let np = nw + s.cout;
    let ncols = n * s.positions();
    let case = Case {
        mu: randn(11, np, 0.5, 0.0),
        rho: randn(12, np, 0.5, -1.0),
        eps: randn(13, np, 1.0, 0.0),
        x: randn(14, n * s.cin * s.h * s.h, 1.0, 0.0),
    };
    // The conv output is channel-major [cout][n·oh·ow]; the bias is added per channel.
    let r = randn(15, s.cout * ncols, 1.0, 0.0);
    let loss = |w: &[f32], x: &[f32]| -> f64 {
        let mut col = vec![0.0; s.kdim() * ncols];
        conv::im2col(s, x, n, &mut col);
        let mut y = vec![0.0; s.cout * ncols];
        conv::conv_gemm(&w[..nw], s.cout, s.kdim(), &col, ncols, &mut y);
        y.iter()
            .enumerate()
            .map(|(i, &v)| (v + w[nw + i / ncols]) as f64 * r[i] as f64)
            .sum()
    };
    let w = case.weights(&case.mu, &case.rho);
    let mut col = vec![0.0; s.kdim() * ncols];
    conv::im2col(s, &case.x, n, &mut col);
    let mut dw = vec![0.0; np];
    conv::conv_grad_w(&r, s.cout, &col, s.kdim(), ncols, &mut dw[..nw]);
    for c in 0..s.cout {
        dw[nw + c] = r[c * ncols..(c + 1) * ncols].iter().sum();
    }
    let mut dcol = vec![0.0; s.kdim() * ncols];
    conv::conv_grad_col(&w[..nw], s.cout, s.kdim(), &r, ncols, &mut dcol);
    let mut dx = vec![0.0; case.x.len()];
    conv::col2im(s, &dcol, n, &mut dx);
    let (gm, gr) = case.param_grads(&dw);
    case.check(&loss, &gm, &gr, &dx);
}

#[test]
fn fused_relu_maxpool_gradient() {
    // Distinct values so that no window has a tie; some windows entirely negative.
    let side = 6;
    let y: Vec<f32> = (0..side * side)
        .map(|i| ((i * 37 % 36) as f32 - 20.0) * 0.1)
        .collect();
    let bias = 0.3;
    let dout = randn(21, 9, 1.0, 0.0);
    let f = |y: &[f32], b: f32| -> f64 {
        let (mut o, mut a) = (vec![0.0; 9], vec![0u8; 9]);
        conv::pool_forward(y, side, b, &mut o, &mut a);
        o.iter()
            .zip(&dout)
            .map(|(&p, &d)| p as f64 * d as f64)
            .sum()
    };
    let (mut out, mut arg) = (vec![0.0; 9], vec![0u8; 9]);
    conv::pool_forward(&y, side, bias, &mut out, &mut arg);
    assert!(out.contains(&0.0) && out.iter().any(|&v| v > 0.0));
    let mut dy = vec![f32::NAN; side * side];
    let db = conv::pool_backward(&dout, &out, &arg, side, &mut dy);
    let h = 1e-3;
    for i in 0..y.len() {
        let (mut a, mut b) = (y.clone(), y.clone());
        a[i] += h;
        b[i] -= h;
        close(
            dy[i],
            (f(&a, bias) - f(&b, bias)) / (2.0 * h as f64),
            &format!("y[{i}]"),
        );
    }
    close(
        db,
        (f(&y, bias + h) - f(&y, bias - h)) / (2.0 * h as f64),
        "bias",
    );
}

/// Local reparameterisation of a fully connected layer with the pre-activation noise fixed:
/// `L = Σ r·y`, `y = x·μ_Wᵀ + μ_b + √(x²·σ²_Wᵀ + σ²_b)·ε`; ∂L/∂μ, ∂L/∂ρ (weights and biases)
/// and ∂L/∂x against central differences in f64.
#[test]
fn local_reparam_linear_gradients() {
    let (n, fin, fout) = (3, 5, 4);
    let np = fout * fin + fout;
    let mu = randn(31, np, 0.5, 0.0);
    let rho = randn(32, np, 0.5, -1.0);
    let x = randn(33, n * fin, 1.0, 0.0);
    let eps = randn(34, n * fout, 1.0, 0.0);
    let r = randn(35, n * fout, 1.0, 0.0);
    let nw = fout * fin;
    // The reference in f64, straight from the definition.
    let loss = |mu: &[f64], rho: &[f64], x: &[f64]| -> f64 {
        let var: Vec<f64> = rho.iter().map(|&p| (1.0 + p.exp()).ln().powi(2)).collect();
        let mut l = 0.0;
        for i in 0..n {
            for o in 0..fout {
                let (mut m, mut v) = (mu[nw + o], var[nw + o]);
                for k in 0..fin {
                    m += x[i * fin + k] * mu[o * fin + k];
                    v += x[i * fin + k].powi(2) * var[o * fin + k];
                }
                l += r[i * fout + o] as f64 * (m + v.sqrt() * eps[i * fout + o] as f64);
            }
        }
        l
    };
    let (mut s, mut ls, mut ds) = (vec![0.0; np], vec![0.0; np], vec![0.0; np]);
    bayes::sigma_terms(&rho, &mut s, &mut ls, &mut ds);
    let var: Vec<f32> = s.iter().map(|&v| v * v).collect();
    let (mut y, mut sd, mut sq) = (vec![0.0; n * fout], vec![0.0; n * fout], vec![0.0; n * fin]);
    linear::lr_forward(
        &x,
        (&mu[..nw], &var[..nw]),
        (&mu[nw..], &var[nw..]),
        n,
        fin,
        &eps,
        &mut y,
        &mut sd,
        &mut sq,
        false,
    );
    let (mut dmu, mut dvar, mut dx) = (vec![0.0; np], vec![0.0; np], vec![0.0; n * fin]);
    let (mut dv, mut tmp) = (vec![0.0; n * fout], vec![0.0; n * fin]);
    {
        let (gw, gb) = dmu.split_at_mut(nw);
        let (vw, vb) = dvar.split_at_mut(nw);
        linear::lr_backward(
            &x,
            (&mu[..nw], &var[..nw]),
            &sd,
            &eps,
            &r,
            n,
            fin,
            fout,
            (gw, gb),
            (vw, vb),
            (&mut dv, &mut sq, &mut tmp),
            Some(&mut dx),
        );
    }
    let (mut gm, mut gr) = (vec![0.0; np], vec![0.0; np]);
    bayes::accumulate_var_grads(&s, &ds, &dmu, &dvar, &mut gm, &mut gr);
    let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
    let (m64, r64, x64) = (f(&mu), f(&rho), f(&x));
    let h = 1e-5;
    let fd = |which: usize, i: usize| {
        let (mut a, mut b) = (
            [m64.clone(), r64.clone(), x64.clone()],
            [m64.clone(), r64.clone(), x64.clone()],
        );
        a[which][i] += h;
        b[which][i] -= h;
        (loss(&a[0], &a[1], &a[2]) - loss(&b[0], &b[1], &b[2])) / (2.0 * h)
    };
    for i in 0..np {
        close(gm[i], fd(0, i), &format!("mu[{i}]"));
        close(gr[i], fd(1, i), &format!("rho[{i}]"));
    }
    for i in 0..n * fin {
        close(dx[i], fd(2, i), &format!("x[{i}]"));
    }
    // The forward is the definition too.
    let l: f64 = y.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum();
    assert!((l - loss(&m64, &r64, &x64)).abs() < 1e-4 * (1.0 + l.abs()));
}

/// The closed-form KL against the definition in f64, and its μ, ρ gradients against central
/// differences; for a prior other than σ₁ = 0.1 too.
#[test]
fn closed_form_kl_and_gradients() {
    for prior in [
        PRIOR,
        bayes::Prior {
            sigma1: 0.3,
            ..PRIOR
        },
    ] {
        let mu = [0.1f32, -0.2, 0.05, 0.0];
        let rho = [-1.0f32, 0.5, -3.0, -7.0];
        let kl = |m: &[f64], r: &[f64]| -> f64 {
            let s1 = prior.sigma1 as f64;
            (0..4)
                .map(|i| {
                    let s = (1.0 + r[i].exp()).ln();
                    (s1 / s).ln() + (s * s + m[i] * m[i]) / (2.0 * s1 * s1) - 0.5
                })
                .sum()
        };
        let (mut s, mut ls, mut ds) = ([0f32; 4], [0f32; 4], [0f32; 4]);
        bayes::sigma_terms(&rho, &mut s, &mut ls, &mut ds);
        let m64: Vec<f64> = mu.iter().map(|&x| x as f64).collect();
        let r64: Vec<f64> = rho.iter().map(|&x| x as f64).collect();
        let got = bayes::closed_kl_sum(&mu, &s, &ls, &prior);
        let want = kl(&m64, &r64);
        assert!((got - want).abs() < 1e-5 * want.abs(), "{got} vs {want}");
        let (mut gm, mut gr) = ([0f32; 4], [0f32; 4]);
        bayes::accumulate_closed_kl_grads(&mu, &s, &ds, 0.5, &prior, &mut gm, &mut gr);
        let h = 1e-6;
        for i in 0..4 {
            let (mut a, mut b) = (m64.clone(), m64.clone());
            a[i] += h;
            b[i] -= h;
            close(
                gm[i],
                0.5 * (kl(&a, &r64) - kl(&b, &r64)) / (2.0 * h),
                &format!("mu[{i}]"),
            );
            let (mut a, mut b) = (r64.clone(), r64.clone());
            a[i] += h;
            b[i] -= h;
            close(
                gr[i],
                0.5 * (kl(&m64, &a) - kl(&m64, &b)) / (2.0 * h),
                &format!("rho[{i}]"),
            );
        }
    }
}

/// The closed-form KL is the expectation of the Monte Carlo KL: the mean of 100,000 Monte
/// Carlo estimates (each over 8 parameters) lies within 4 standard errors of it, once the
/// constant of torch-uncertainty's log q is accounted for (it adds 1/2 to −log q per parameter,
/// so its KL estimate is the true one minus 1/2 per parameter; no gradient changes).
#[test]
fn closed_form_kl_is_the_mean_of_the_monte_carlo_kl() {
    let mu = [0.1f32, -0.2, 0.05, 0.0, 0.3, -0.05, 0.12, 0.0];
    let rho = [-3.0f32, -2.5, -2.0, -3.5, -2.2, -4.0, -2.8, -1.9];
    let p = mu.len();
    let (mut s, mut ls, mut ds) = (vec![0f32; p], vec![0f32; p], vec![0f32; p]);
    bayes::sigma_terms(&rho, &mut s, &mut ls, &mut ds);
    let closed = bayes::closed_kl_sum(&mu, &s, &ls, &PRIOR);
    let mut rng = Rng::new(77);
    let (mut eps, mut w) = (vec![0f32; p], vec![0f32; p]);
    let trials = 100_000;
    let (mut sum, mut sum2) = (0.0f64, 0.0f64);
    for _ in 0..trials {
        rng.fill_normal(&mut eps);
        bayes::sample(&mu, &s, &eps, &mut w);
        let k = bayes::kl_sum(&ls, &eps, &w, &PRIOR);
        sum += k;
        sum2 += k * k;
    }
    let raw = sum / trials as f64;
    let se = ((sum2 / trials as f64 - raw * raw) / trials as f64).sqrt();
    let mean = raw + 0.5 * p as f64;
    assert!(
        (mean - closed).abs() < 4.0 * se,
        "Monte Carlo mean {mean} ± {se} vs closed form {closed}"
    );
    // The check has power: a closed form off by 1% of itself would fail it.
    assert!(
        0.01 * closed.abs() > 4.0 * se,
        "{se} too large for the check to mean much"
    );
}
