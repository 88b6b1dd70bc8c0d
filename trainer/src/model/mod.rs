//! The variational LeNet's parameters: posterior means μ and `ρ` (σ = softplus(ρ)) of every
//! weight and bias of conv1, conv2, fc1, fc2 and fc3.

pub mod export;
pub mod temperature;

use crate::nn::bayes::softplus;
use crate::nn::lenet::{LayerRange, LAYERS, PARAMS};
use crate::nn::rng::{purpose, Rng};

/// Posterior mean of a fresh parameter (torch-uncertainty's default `mu_init`).
pub const MU_INIT: f32 = 0.0;
/// Posterior ρ of a fresh linear-layer parameter (torch-uncertainty's `BayesLinear` default
/// `sigma_init`).
pub const RHO_INIT: f32 = -7.0;
/// Posterior ρ of a fresh convolution parameter: torch-uncertainty's `BayesConv2d` defaults
/// `sigma_init` to −6 (not −7), and `bayesian_lenet` passes no override.
pub const RHO_INIT_CONV: f32 = -6.0;
/// Standard deviation of both initialisations.
pub const INIT_STD: f32 = 0.1;

/// μ and ρ of the five layers, each as one flat vector in layer order (conv1, conv2, fc1,
/// fc2, fc3; per layer its weights, `[out][in][k][k]` or `[out][in]`, then its biases).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lenet {
    /// Posterior means, [`PARAMS`] values.
    pub mu: Vec<f32>,
    /// Posterior ρ, [`PARAMS`] values.
    pub rho: Vec<f32>,
}

/// One layer's parameters, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct LayerParams<'a> {
    /// Layer name.
    pub name: &'static str,
    /// Weight means.
    pub weight_mu: &'a [f32],
    /// Weight ρ.
    pub weight_rho: &'a [f32],
    /// Bias means.
    pub bias_mu: &'a [f32],
    /// Bias ρ.
    pub bias_rho: &'a [f32],
}

impl Lenet {
    /// μ ~ N(0, 0.1²); ρ ~ N(−6, 0.1²) for conv1 and conv2, N(−7, 0.1²) for fc1..fc3 (each
    /// layer class's default in torch-uncertainty); from `seed`.
    pub fn init(seed: u64) -> Self {
        let mut rng = Rng::stream(seed, &[purpose::INIT]);
        let mut mu = vec![0.0; PARAMS];
        let mut rho = vec![0.0; PARAMS];
        rng.fill_normal(&mut mu);
        rng.fill_normal(&mut rho);
        for m in &mut mu {
            *m = MU_INIT + INIT_STD * *m;
        }
        let conv_end = LAYERS[1].end;
        for (i, r) in rho.iter_mut().enumerate() {
            let mean = if i < conv_end {
                RHO_INIT_CONV
            } else {
                RHO_INIT
            };
            *r = mean + INIT_STD * *r;
        }
        Lenet { mu, rho }
    }

    /// The five layers' parameters.
    pub fn layers(&self) -> [LayerParams<'_>; 5] {
        LAYERS.map(|l: LayerRange| LayerParams {
            name: l.name,
            weight_mu: &self.mu[l.w..l.b],
            weight_rho: &self.rho[l.w..l.b],
            bias_mu: &self.mu[l.b..l.end],
            bias_rho: &self.rho[l.b..l.end],
        })
    }

    /// σ = softplus(ρ) of every parameter.
    pub fn sigma(&self) -> Vec<f32> {
        self.rho.iter().map(|&r| softplus(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_has_the_stated_distribution_and_is_seeded() {
        let m = Lenet::init(0);
        assert_eq!(m, Lenet::init(0));
        assert_ne!(m.mu, Lenet::init(1).mu);
        let n = PARAMS as f64;
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let sd =
            |v: &[f32], m: f64| (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n).sqrt();
        let conv_end = LAYERS[1].end;
        let fc = &m.rho[conv_end..];
        let (mm, mr) = (
            mean(&m.mu),
            fc.iter().map(|&x| x as f64).sum::<f64>() / fc.len() as f64,
        );
        assert!(mm.abs() < 0.003 && (mr + 7.0).abs() < 0.003, "{mm} {mr}");
        let conv = &m.rho[..conv_end];
        let mc = conv.iter().map(|&x| x as f64).sum::<f64>() / conv.len() as f64;
        assert!((mc + 6.0).abs() < 0.01, "{mc}");
        assert!((sd(&m.mu, mm) - 0.1).abs() < 0.002);
        let sd_fc =
            (fc.iter().map(|&x| (x as f64 - mr).powi(2)).sum::<f64>() / fc.len() as f64).sqrt();
        assert!((sd_fc - 0.1).abs() < 0.002);
        let l = m.layers();
        assert_eq!(l[2].weight_mu.len(), 120 * 256);
        assert_eq!(l[4].bias_rho.len(), 10);
    }
}
