//! Post-hoc temperature scaling of the Monte Carlo predictive distribution (Guo et al., 2017),
//! chosen on held-out training images, never on the test set.
//!
//! With temperature `T`, each Monte Carlo sample's softmax becomes `softmax(z_s / T)` and the
//! prediction is their mean `p̄_T`. `T` minimises the negative log-likelihood of `p̄_T` on the
//! held-out images ([`fit_temperature`]). It is then folded into the model
//! ([`fold_temperature`]): fc3 is linear and its weights are independent Gaussians, so dividing
//! its means and standard deviations by `T` divides every sampled logit by `T`, in every
//! sampling mode. The exported file therefore needs no new field, and the device runs the
//! calibrated model unchanged.

use rayon::prelude::*;

use crate::model::Lenet;
use crate::nn::bayes::softplus;
use crate::nn::lenet::{LAYERS, OUT};

/// The temperatures searched: `T` in `[T_MIN, T_MAX]`.
pub const T_MIN: f64 = 0.05;
/// See [`T_MIN`].
pub const T_MAX: f64 = 20.0;
/// Points of the coarse grid over `ln T`.
const GRID: usize = 61;
/// Golden-section iterations after the grid (the bracket shrinks by 0.618 each time).
const REFINE: usize = 48;

/// Mean negative log-likelihood of `p̄_T` over the images: `logits` is `[image][sample][class]`
/// with `samples` samples per image, `labels` one class per image.
///
/// # Panics
/// If the lengths disagree or `samples` is 0.
pub fn nll(logits: &[f32], labels: &[u8], samples: usize, t: f64) -> f64 {
    assert!(samples > 0, "samples must be positive");
    assert_eq!(logits.len(), labels.len() * samples * OUT, "logits");
    let per_image: Vec<f64> = logits
        .par_chunks(samples * OUT)
        .zip(labels.par_iter())
        .map(|(z, &y)| -ln_mean_prob(z, samples, usize::from(y), t))
        .collect();
    // A fixed summation order: the same bits for any thread count.
    per_image.iter().sum::<f64>() / labels.len().max(1) as f64
}

/// `ln p̄_T[class]` of one image (`samples × OUT` logits), computed in log space.
fn ln_mean_prob(z: &[f32], samples: usize, class: usize, t: f64) -> f64 {
    let mut acc = LogSumExp::default();
    for zs in z.chunks_exact(OUT) {
        let scaled: [f64; OUT] = std::array::from_fn(|c| f64::from(zs[c]) / t);
        let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + scaled.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        acc.add(scaled[class] - lse);
    }
    acc.value() - (samples as f64).ln()
}

/// A streaming `ln Σ exp(v)`.
#[derive(Default)]
struct LogSumExp {
    max: Option<f64>,
    sum: f64,
}

impl LogSumExp {
    fn add(&mut self, v: f64) {
        match self.max {
            None => {
                self.max = Some(v);
                self.sum = 1.0;
            }
            Some(m) if v > m => {
                self.sum = self.sum * (m - v).exp() + 1.0;
                self.max = Some(v);
            }
            Some(m) => self.sum += (v - m).exp(),
        }
    }

    fn value(&self) -> f64 {
        self.max.map_or(f64::NEG_INFINITY, |m| m + self.sum.ln())
    }
}

/// The temperature in `[T_MIN, T_MAX]` that minimises [`nll`]: the best point of a grid of
/// 61 values evenly spaced in `ln T`, refined by golden-section search between its neighbours.
/// Deterministic.
///
/// # Panics
/// As [`nll`], or with no images.
pub fn fit_temperature(logits: &[f32], labels: &[u8], samples: usize) -> f64 {
    assert!(!labels.is_empty(), "no held-out images");
    let (lo, hi) = (T_MIN.ln(), T_MAX.ln());
    let at = |i: usize| lo + (hi - lo) * i as f64 / (GRID - 1) as f64;
    let f = |u: f64| nll(logits, labels, samples, u.exp());
    let grid: Vec<f64> = (0..GRID).map(|i| f(at(i))).collect();
    let best = grid
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let (mut a, mut b) = (at(best.saturating_sub(1)), at((best + 1).min(GRID - 1)));
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..REFINE {
        if fc <= fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    // The refined point, unless the grid point itself is better (a flat or edge minimum).
    let (u, fu) = if fc <= fd { (c, fc) } else { (d, fd) };
    if fu <= grid[best] {
        u.exp()
    } else {
        at(best).exp()
    }
}

/// Divides fc3's logits by `t`: its weight and bias means by `t`, and their standard
/// deviations `σ = softplus(ρ)` by `t` (ρ is recomputed as `softplus⁻¹(σ / t)`).
///
/// # Panics
/// If `t` is not finite and positive.
pub fn fold_temperature(model: &mut Lenet, t: f64) {
    assert!(t.is_finite() && t > 0.0, "temperature {t}");
    let fc3 = LAYERS[4];
    for m in &mut model.mu[fc3.w..fc3.end] {
        *m = (f64::from(*m) / t) as f32;
    }
    for r in &mut model.rho[fc3.w..fc3.end] {
        let sigma = f64::from(softplus(*r)) / t;
        *r = inverse_softplus(sigma) as f32;
    }
}

/// `ρ` with `ln(1 + e^ρ) = σ`, for `σ > 0`: `σ + ln(1 − e^−σ)`, stable for small and large σ.
fn inverse_softplus(sigma: f64) -> f64 {
    sigma + (-(-sigma).exp_m1()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::monte_carlo::mc_logits;
    use crate::nn::rng::Rng;

    #[test]
    fn nll_at_one_is_the_nll_of_the_mean_softmax() {
        let mut rng = Rng::new(4);
        let (n, s) = (7, 3);
        let logits: Vec<f32> = (0..n * s * OUT).map(|_| 3.0 * rng.normal()).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i * 3 % OUT) as u8).collect();
        let mut want = 0.0;
        for i in 0..n {
            let mut p = [0.0f64; OUT];
            for z in logits[i * s * OUT..(i + 1) * s * OUT].chunks(OUT) {
                let e: Vec<f64> = z.iter().map(|&v| f64::from(v).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..OUT {
                    p[c] += e[c] / sum / s as f64;
                }
            }
            want -= p[labels[i] as usize].ln();
        }
        want /= n as f64;
        let got = nll(&logits, &labels, s, 1.0);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // T scales the logits: nll at T equals nll at 1 of logits / T.
        let scaled: Vec<f32> = logits.iter().map(|v| v / 2.0).collect();
        assert!((nll(&logits, &labels, s, 2.0) - nll(&scaled, &labels, s, 1.0)).abs() < 1e-6);
    }

    #[test]
    fn fitting_recovers_a_known_temperature() {
        // Labels drawn from softmax(u); the model reports 2.5·u: the best T is near 2.5.
        let mut rng = Rng::new(11);
        let (n, s) = (20_000, 2);
        let mut logits = Vec::with_capacity(n * s * OUT);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let u: [f64; OUT] = std::array::from_fn(|_| 2.0 * f64::from(rng.normal()));
            let sum: f64 = u.iter().map(|v| v.exp()).sum();
            let mut r = rng.next_f64() * sum;
            let mut y = OUT - 1;
            for (c, v) in u.iter().enumerate() {
                r -= v.exp();
                if r < 0.0 {
                    y = c;
                    break;
                }
            }
            labels.push(y as u8);
            for _ in 0..s {
                logits.extend(u.iter().map(|&v| (2.5 * v) as f32));
            }
        }
        let t = fit_temperature(&logits, &labels, s);
        assert!((t - 2.5).abs() < 0.1, "fitted T = {t}");
        let f = |t: f64| nll(&logits, &labels, s, t);
        assert!(f(t) <= f(t * 1.01) && f(t) <= f(t / 1.01), "not a minimum");
    }

    #[test]
    fn the_search_reaches_the_ends_of_its_range() {
        // Every image right with huge margins: the sharpest temperature wins.
        let logits: Vec<f32> = (0..4 * OUT)
            .map(|i| if i % OUT == 0 { 1.0 } else { 0.0 })
            .collect();
        let t = fit_temperature(&logits, &[0, 0, 0, 0], 1);
        assert!((t - T_MIN).abs() < 1e-9, "{t}");
    }

    #[test]
    fn folding_divides_every_sampled_logit() {
        let mut model = Lenet::init(3);
        model.rho.iter_mut().for_each(|r| *r = -3.0);
        let images: Vec<u8> = (0..5 * 784).map(|i| ((i * 37) % 256) as u8).collect();
        let before = mc_logits(&model, &images, 4, 8);
        let t = 1.7;
        fold_temperature(&mut model, t);
        let after = mc_logits(&model, &images, 4, 8);
        for (a, b) in after.iter().zip(&before) {
            let want = f64::from(*b) / t;
            assert!(
                (f64::from(*a) - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{a} vs {want}"
            );
        }
        // Only fc3 changed.
        let untouched = Lenet::init(3);
        assert_eq!(model.mu[..LAYERS[4].w], untouched.mu[..LAYERS[4].w]);
    }

    #[test]
    fn inverse_softplus_inverts_softplus() {
        for sigma in [1e-6, 1e-3, 0.05, 1.0, 30.0] {
            let r = inverse_softplus(sigma);
            let back = f64::from(softplus(r as f32));
            assert!(
                (back - sigma).abs() < 1e-6 * sigma.max(1.0),
                "{sigma}: {back}"
            );
        }
    }
}
