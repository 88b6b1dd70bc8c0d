//! The Bayes-by-Backprop parameterisation shared by every Bayesian layer: `σ = softplus(ρ)`,
//! `w = μ + σ·ε`, the Monte Carlo KL term `log q(w|μ,σ) − log p(w)` of torch-uncertainty, and
//! the chain rule from `∂L/∂w` (and the KL) to `∂L/∂μ`, `∂L/∂ρ`.
//!
//! All functions are element-wise over parameter slices so that callers can run them on
//! fixed chunks in parallel.

/// `ln √(2π)`.
pub const LN_SQRT_2PI: f32 = 0.918_938_5;

/// `ln(1 + e^ρ)`, without overflow for large `ρ` nor loss of precision for very negative `ρ`.
#[inline]
pub fn softplus(rho: f32) -> f32 {
    rho.max(0.0) + (-rho.abs()).exp().ln_1p()
}

/// `1 / (1 + e^−ρ)` = `dσ/dρ`.
#[inline]
pub fn sigmoid(rho: f32) -> f32 {
    if rho >= 0.0 {
        1.0 / (1.0 + (-rho).exp())
    } else {
        let e = rho.exp();
        e / (1.0 + e)
    }
}

/// The scale-mixture prior `π·N(0, σ₁²) + (1−π)·N(0, σ₂²)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prior {
    /// Scale of the first component.
    pub sigma1: f32,
    /// Scale of the second component.
    pub sigma2: f32,
    /// Weight of the first component, in `[0, 1]`.
    pub pi: f32,
}

/// torch-uncertainty's defaults (docs/design.md, Model): σ₁ = 0.1, σ₂ = 0.4, π = 1.
pub const PRIOR: Prior = Prior {
    sigma1: 0.1,
    sigma2: 0.4,
    pi: 1.0,
};

impl Prior {
    /// `(log p(w), −d log p/dw)`.
    #[inline]
    pub fn log_prob_and_neg_grad(&self, w: f32) -> (f32, f32) {
        if *self == PRIOR {
            // The default prior, with its constants folded (no logarithm per weight).
            const LN_S1: f32 = -std::f32::consts::LN_10; // ln 0.1
            const INV_VAR: f32 = 100.0; // 1/0.1²
            return (-LN_SQRT_2PI - LN_S1 - 0.5 * INV_VAR * w * w, INV_VAR * w);
        }
        let comp = |s: f32| -> (f32, f32) {
            let z = w / s;
            (-LN_SQRT_2PI - s.ln() - 0.5 * z * z, w / (s * s))
        };
        if self.pi >= 1.0 {
            return comp(self.sigma1);
        }
        if self.pi <= 0.0 {
            return comp(self.sigma2);
        }
        let (l1, g1) = comp(self.sigma1);
        let (l2, g2) = comp(self.sigma2);
        let a = self.pi.ln() + l1;
        let b = (1.0 - self.pi).ln() + l2;
        let m = a.max(b);
        let (ea, eb) = ((a - m).exp(), (b - m).exp());
        let lse = m + (ea + eb).ln();
        // Responsibilities weight the components' gradients.
        let r1 = ea / (ea + eb);
        (lse, r1 * g1 + (1.0 - r1) * g2)
    }
}

/// `σ = softplus(ρ)`, `ln σ` and `dσ/dρ` for a slice of parameters.
pub fn sigma_terms(rho: &[f32], sigma: &mut [f32], ln_sigma: &mut [f32], dsigma: &mut [f32]) {
    for i in 0..rho.len() {
        // softplus and sigmoid share e^−|ρ|.
        let r = rho[i];
        let e = (-r.abs()).exp();
        let s = r.max(0.0) + e.ln_1p();
        sigma[i] = s;
        ln_sigma[i] = s.ln();
        dsigma[i] = if r >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
    }
}

/// `w = μ + σ·ε`.
pub fn sample(mu: &[f32], sigma: &[f32], eps: &[f32], w: &mut [f32]) {
    for i in 0..mu.len() {
        w[i] = mu[i] + sigma[i] * eps[i];
    }
}

/// `Σ [log q(w|μ,σ) − log p(w)]` over a slice, with log q as torch-uncertainty writes it:
/// `−(ln √(2π) + ln σ + (w−μ)²/(2σ²) + 1/2)`, where `(w−μ)/σ = ε`.
pub fn kl_sum(ln_sigma: &[f32], eps: &[f32], w: &[f32], prior: &Prior) -> f64 {
    let mut acc = 0.0f64;
    for i in 0..w.len() {
        let log_q = -(LN_SQRT_2PI + ln_sigma[i] + 0.5 * eps[i] * eps[i] + 0.5);
        let (log_p, _) = prior.log_prob_and_neg_grad(w[i]);
        acc += (log_q - log_p) as f64;
    }
    acc
}

/// Adds one Monte Carlo sample's contribution to `∂/∂μ` and `∂/∂ρ`:
/// the data term `g = ∂L/∂w` goes through `w = μ + σε`; the KL term, scaled by `c`, is
/// `∂/∂μ = −log p′(w)` and `∂/∂σ = −1/σ − ε·log p′(w)` (log q's dependence on μ cancels
/// between its explicit and its through-`w` paths, as autograd finds).
#[allow(clippy::too_many_arguments)]
pub fn accumulate_grads(
    sigma: &[f32],
    dsigma: &[f32],
    eps: &[f32],
    w: &[f32],
    g: &[f32],
    c: f32,
    prior: &Prior,
    gmu: &mut [f32],
    grho: &mut [f32],
) {
    for i in 0..w.len() {
        let (_, neg_dlogp) = prior.log_prob_and_neg_grad(w[i]);
        let dw = g[i] + c * neg_dlogp;
        gmu[i] += dw;
        let dsig = g[i] * eps[i] + c * (eps[i] * neg_dlogp - 1.0 / sigma[i]);
        grho[i] += dsig * dsigma[i];
    }
}

/// Adds one weight sample's data term `g = ∂L/∂w` (no KL) through `w = μ + σε`:
/// `∂/∂μ += g`, `∂/∂ρ += g·ε·σ′(ρ)`.
pub fn accumulate_data_grads(
    dsigma: &[f32],
    eps: &[f32],
    g: &[f32],
    gmu: &mut [f32],
    grho: &mut [f32],
) {
    for i in 0..g.len() {
        gmu[i] += g[i];
        grho[i] += g[i] * eps[i] * dsigma[i];
    }
}

/// Adds the data term of a locally reparameterised weight: `gm = ∂L/∂μ` directly and
/// `gv = ∂L/∂σ²`, which reaches ρ through `σ² = softplus(ρ)²`: `∂/∂ρ += gv·2σ·σ′(ρ)`.
pub fn accumulate_var_grads(
    sigma: &[f32],
    dsigma: &[f32],
    gm: &[f32],
    gv: &[f32],
    gmu: &mut [f32],
    grho: &mut [f32],
) {
    for i in 0..gm.len() {
        gmu[i] += gm[i];
        grho[i] += gv[i] * 2.0 * sigma[i] * dsigma[i];
    }
}

/// Whether the closed-form KL exists for `prior`: only for a single Gaussian (π = 1).
pub fn closed_kl_supported(prior: &Prior) -> bool {
    prior.pi >= 1.0
}

/// The closed-form `Σ KL(N(μ, σ²) ‖ N(0, σ₁²))` over a slice, per parameter
/// `ln(σ₁/σ) + (σ² + μ²)/(2σ₁²) − 1/2` (in f64), for the prior's first component.
pub fn closed_kl_sum(mu: &[f32], sigma: &[f32], ln_sigma: &[f32], prior: &Prior) -> f64 {
    let s1 = prior.sigma1 as f64;
    let (ln_s1, inv2v) = (s1.ln(), 0.5 / (s1 * s1));
    let mut acc = 0.0f64;
    for i in 0..mu.len() {
        let (m, s) = (mu[i] as f64, sigma[i] as f64);
        acc += ln_s1 - ln_sigma[i] as f64 + (s * s + m * m) * inv2v - 0.5;
    }
    acc
}

/// Adds `c ·` the gradients of [`closed_kl_sum`]: `∂/∂μ = μ/σ₁²`,
/// `∂/∂ρ = (σ/σ₁² − 1/σ)·σ′(ρ)`.
pub fn accumulate_closed_kl_grads(
    mu: &[f32],
    sigma: &[f32],
    dsigma: &[f32],
    c: f32,
    prior: &Prior,
    gmu: &mut [f32],
    grho: &mut [f32],
) {
    let inv_v = 1.0 / (prior.sigma1 * prior.sigma1);
    for i in 0..mu.len() {
        gmu[i] += c * mu[i] * inv_v;
        grho[i] += c * (sigma[i] * inv_v - 1.0 / sigma[i]) * dsigma[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_is_stable_and_right() {
        assert!((softplus(0.0) - 2f32.ln()).abs() < 1e-7);
        let want = (-7f64).exp().ln_1p();
        assert!((softplus(-7.0) as f64 - want).abs() < 1e-6 * want);
        let want = (-30f64).exp().ln_1p();
        assert!((softplus(-30.0) as f64 - want).abs() < 1e-6 * want);
        assert_eq!(softplus(100.0), 100.0);
        assert!(softplus(-100.0) > 0.0);
        assert!((sigmoid(-3.0) + sigmoid(3.0) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn mixture_prior_reduces_and_differentiates() {
        let single = PRIOR.log_prob_and_neg_grad(0.05);
        let general = Prior {
            sigma2: 0.5,
            ..PRIOR
        }
        .log_prob_and_neg_grad(0.05);
        assert!((single.0 - general.0).abs() < 1e-6 && (single.1 - general.1).abs() < 1e-5);
        let (mut s, mut l, mut d) = ([0f32; 3], [0f32; 3], [0f32; 3]);
        sigma_terms(&[-7.0, 0.0, 25.0], &mut s, &mut l, &mut d);
        for (i, r) in [-7.0f32, 0.0, 25.0].iter().enumerate() {
            assert_eq!(s[i], softplus(*r));
            assert!((d[i] - sigmoid(*r)).abs() < 1e-7 && (l[i] - s[i].ln()).abs() < 1e-6);
        }
        let want = -LN_SQRT_2PI - 0.1f32.ln() - 0.5 * 0.25;
        assert!((single.0 - want).abs() < 1e-6);
        assert!((single.1 - 5.0).abs() < 1e-5);
        let mix = Prior {
            sigma1: 0.1,
            sigma2: 0.4,
            pi: 0.3,
        };
        let h = 1e-3f32;
        for w in [-0.3f32, 0.02, 0.25] {
            let (lp, ng) = mix.log_prob_and_neg_grad(w);
            let p = |x: f32| {
                let n = |s: f32| {
                    (-0.5 * (x / s) * (x / s)).exp() / (s * (2.0 * std::f32::consts::PI).sqrt())
                };
                (0.3 * n(0.1) + 0.7 * n(0.4)).ln()
            };
            assert!((lp - p(w)).abs() < 1e-5);
            let fd = -(p(w + h) - p(w - h)) / (2.0 * h);
            assert!((ng - fd).abs() < 1e-2 * (1.0 + fd.abs()), "{ng} vs {fd}");
        }
    }

    /// KL of a 3-parameter layer against a hand computation.
    #[test]
    fn kl_matches_hand_computation() {
        let mu = [0.1f32, -0.2, 0.0];
        let rho = [-1.0f32, 0.5, -3.0];
        let eps = [0.5f32, -1.0, 2.0];
        let (mut s, mut ls, mut ds, mut w) = ([0f32; 3], [0f32; 3], [0f32; 3], [0f32; 3]);
        sigma_terms(&rho, &mut s, &mut ls, &mut ds);
        sample(&mu, &s, &eps, &mut w);
        let mut want = 0.0f64;
        for i in 0..3 {
            let sig = (1.0 + (rho[i] as f64).exp()).ln();
            let wi = mu[i] as f64 + sig * eps[i] as f64;
            let log_q = -(0.5 * (2.0 * std::f64::consts::PI).ln()
                + sig.ln()
                + 0.5 * (eps[i] as f64).powi(2)
                + 0.5);
            let log_p = -(0.5 * (2.0 * std::f64::consts::PI).ln() + 0.1f64.ln() + wi * wi / 0.02);
            want += log_q - log_p;
        }
        let got = kl_sum(&ls, &eps, &w, &PRIOR);
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }

    /// KL gradients w.r.t. μ and ρ with ε fixed, against central differences in f64.
    #[test]
    fn kl_gradients_match_finite_differences() {
        let mu = [0.1f32, -0.2, 0.05];
        let rho = [-1.0f32, 0.5, -3.0];
        let eps = [0.5f32, -1.0, 2.0];
        let kl = |m: &[f64], r: &[f64]| -> f64 {
            (0..3)
                .map(|i| {
                    let sig = (1.0 + r[i].exp()).ln();
                    let wi = m[i] + sig * eps[i] as f64;
                    let log_q = -(sig.ln() + ((wi - m[i]) / sig).powi(2) / 2.0);
                    let log_p = -(wi * wi / 0.02);
                    log_q - log_p
                })
                .sum()
        };
        let (mut s, mut ls, mut ds, mut w) = ([0f32; 3], [0f32; 3], [0f32; 3], [0f32; 3]);
        sigma_terms(&rho, &mut s, &mut ls, &mut ds);
        sample(&mu, &s, &eps, &mut w);
        let (mut gm, mut gr) = ([0f32; 3], [0f32; 3]);
        accumulate_grads(&s, &ds, &eps, &w, &[0.0; 3], 1.0, &PRIOR, &mut gm, &mut gr);
        let m64: Vec<f64> = mu.iter().map(|&x| x as f64).collect();
        let r64: Vec<f64> = rho.iter().map(|&x| x as f64).collect();
        let h = 1e-6;
        for i in 0..3 {
            let (mut a, mut b) = (m64.clone(), m64.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (kl(&a, &r64) - kl(&b, &r64)) / (2.0 * h);
            assert!(
                (gm[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "mu {i}: {} vs {fd}",
                gm[i]
            );
            let (mut a, mut b) = (r64.clone(), r64.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (kl(&m64, &a) - kl(&m64, &b)) / (2.0 * h);
            assert!(
                (gr[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "rho {i}: {} vs {fd}",
                gr[i]
            );
        }
    }
}
