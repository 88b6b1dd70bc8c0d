//! ρ ↔ σ²: the model file stores variances σ² = softplus(ρ)², computed in f32 by the trainer;
//! torch-uncertainty stores ρ. Going back from σ² to ρ, this picks an f32 ρ for which the
//! trainer's own f32 computation gives the very same σ² bits, so that an export followed by an
//! import rewrites the model file byte for byte.

use crate::nn::bayes::softplus;

/// σ² = softplus(ρ)², exactly as the trainer's export computes it.
pub fn variance(rho: f32) -> f32 {
    let s = softplus(rho);
    s * s
}

/// A key that orders finite f32 values as numbers (−0 just below +0).
fn key(x: f32) -> i64 {
    let b = x.to_bits() as i32;
    i64::from(if b < 0 { i32::MIN - b - 1 } else { b })
}

fn from_key(k: i64) -> f32 {
    let b = k as i32;
    f32::from_bits((if b < 0 { i32::MIN - b - 1 } else { b }) as u32)
}

/// An f32 ρ with `variance(ρ) == var` bit for bit when one exists (`.1 = true`), else the ρ
/// whose variance is nearest to `var` (`.1 = false`). `var` must be finite and ≥ 0.
///
/// Not every f32 variance is reached: for ρ below about −0.5 consecutive f32 values of ρ are
/// further apart (relatively) than consecutive variances. Every variance the trainer wrote from
/// an f32 ρ is, and so is every variance of a model imported from torch-uncertainty.
pub fn rho_for_variance(var: f32) -> (f32, bool) {
    debug_assert!(var.is_finite() && var >= 0.0);
    // variance() rises with ρ (softplus is increasing; rounding may leave it flat over a few
    // neighbouring ρ), so bisect for the smallest ρ whose variance is ≥ var …
    let (mut lo, mut hi) = (key(-f32::MAX), key(f32::MAX));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if variance(from_key(mid)) >= var {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    // … then take an exact match near it, or the nearest (the window also covers a rounding
    // step that goes down by one ulp where it should not).
    let mut best = (from_key(lo), f64::INFINITY);
    for k in (lo - 4).max(key(-f32::MAX))..=(lo + 4).min(key(f32::MAX)) {
        let rho = from_key(k);
        let v = variance(rho);
        if v.to_bits() == var.to_bits() {
            return (rho, true);
        }
        let d = (f64::from(v) - f64::from(var)).abs();
        if d < best.1 {
            best = (rho, d);
        }
    }
    (best.0, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_floats() {
        let xs = [-f32::MAX, -1.5, -1e-30, -0.0, 0.0, 1e-45, 2.0, f32::MAX];
        for w in xs.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{w:?}");
        }
        for x in xs {
            assert_eq!(from_key(key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn every_variance_of_an_f32_rho_comes_back_exactly() {
        // ρ across the range trained models hold (−12 … 3), and extremes.
        let mut rng = crate::nn::rng::Rng::stream(5, &[0]);
        let mut rhos = vec![0.0f32; 20_000];
        rng.fill_normal(&mut rhos);
        for r in &mut rhos {
            *r = *r * 3.0 - 6.0;
        }
        rhos.extend([-7.0, -6.0, 0.0, -0.0, 1.0, 20.0, -80.0, -150.0, 1e6]);
        for &rho in &rhos {
            let var = variance(rho);
            let (back, exact) = rho_for_variance(var);
            assert!(exact, "ρ {rho}: variance {var:e} not reached");
            assert_eq!(variance(back).to_bits(), var.to_bits(), "ρ {rho}");
        }
    }

    #[test]
    fn an_unreachable_variance_gives_the_nearest() {
        // Near ρ = −7 one ulp of ρ moves σ² by ≈ 2 ulps of σ², so some variances are skipped.
        let rho = -7.0f32;
        let (a, b) = (variance(rho), variance(f32::from_bits(rho.to_bits() - 1)));
        let (lo, hi) = (a.min(b), a.max(b));
        assert!(hi.to_bits() - lo.to_bits() >= 2, "{lo:e} {hi:e}");
        let between = f32::from_bits(lo.to_bits() + 1);
        let (r, exact) = rho_for_variance(between);
        assert!(!exact);
        let v = variance(r);
        assert!(v == lo || v == hi, "{v:e} not a neighbour of {between:e}");
    }
}
