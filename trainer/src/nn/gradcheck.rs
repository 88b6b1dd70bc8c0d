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
