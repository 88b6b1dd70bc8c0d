//! torch-uncertainty's names for the parameters of `bayesian_lenet(1, 10)`.
//!
//! Its `state_dict()` holds every layer's `{weight,bias}_mu` and `{weight,bias}_sigma` (the
//! latter is ρ, σ = log1p(exp(ρ))) twice: once under these names and once as
//! `{weight,bias}_sampler.{mu,rho}`, sharing storage, all under the `core_model.` prefix;
//! besides them the priors `{weight,bias}_prior_dist.{pi,mus,sigmas}`.
//! `safetensors.torch.save_model` writes one name of each shared pair: `*_mu` for the means
//! and `*_sampler.rho` for ρ ([`SAVED`]).

/// The layers in file order, as torch-uncertainty names them and tinyvi orders them.
pub const LAYERS: [&str; 5] = ["conv1", "conv2", "fc1", "fc2", "fc3"];

/// The prefix of every key in `bayesian_lenet(…).state_dict()`.
pub const PREFIX: &str = "core_model.";

/// Which parameter array of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    /// Weight means μ.
    WeightMu,
    /// Weight ρ.
    WeightRho,
    /// Bias means μ.
    BiasMu,
    /// Bias ρ.
    BiasRho,
}

impl Param {
    /// All four, in the order tinyvi stores them.
    pub const ALL: [Param; 4] = [
        Param::WeightMu,
        Param::WeightRho,
        Param::BiasMu,
        Param::BiasRho,
    ];

    /// Both names (without layer and prefix) under which the state dict holds this array:
    /// the layer's attribute, then its sampler's.
    pub const fn aliases(self) -> [&'static str; 2] {
        match self {
            Param::WeightMu => ["weight_mu", "weight_sampler.mu"],
            Param::WeightRho => ["weight_sigma", "weight_sampler.rho"],
            Param::BiasMu => ["bias_mu", "bias_sampler.mu"],
            Param::BiasRho => ["bias_sigma", "bias_sampler.rho"],
        }
    }

    /// The name `save_model` keeps of the shared pair.
    pub const fn saved(self) -> &'static str {
        match self {
            Param::WeightMu => "weight_mu",
            Param::WeightRho => "weight_sampler.rho",
            Param::BiasMu => "bias_mu",
            Param::BiasRho => "bias_sampler.rho",
        }
    }

    /// Whether this is a weight (not a bias) array.
    pub const fn is_weight(self) -> bool {
        matches!(self, Param::WeightMu | Param::WeightRho)
    }

    /// Whether this is a ρ (not a mean) array.
    pub const fn is_rho(self) -> bool {
        matches!(self, Param::WeightRho | Param::BiasRho)
    }
}

/// One entry of a prior distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriorEntry {
    /// Mixture weights, int64 `[1, 0]`.
    Pi,
    /// Component means `[0, 0]`.
    Mus,
    /// Component standard deviations `[0.1, 0.002]` (convolutions) or `[0.1, 0.4]` (linear).
    Sigmas,
}

impl PriorEntry {
    /// All three.
    pub const ALL: [PriorEntry; 3] = [PriorEntry::Pi, PriorEntry::Mus, PriorEntry::Sigmas];

    /// The key's last component.
    pub const fn name(self) -> &'static str {
        match self {
            PriorEntry::Pi => "pi",
            PriorEntry::Mus => "mus",
            PriorEntry::Sigmas => "sigmas",
        }
    }

    /// The values `bayesian_lenet` holds for a layer (a convolution when `conv`). Its layers'
    /// default prior is a mixture of N(0, 0.1²) with weight 1 and N(0, s²) with weight 0, i.e.
    /// N(0, 0.1²), the prior tinyvi trains with; the unused second scale s is 0.002 in
    /// `BayesConv2d` and 0.4 in `BayesLinear` (read from torch-uncertainty 0.13's state dict).
    pub const fn expected(self, conv: bool) -> [f32; 2] {
        match self {
            PriorEntry::Pi => [1.0, 0.0],
            PriorEntry::Mus => [0.0, 0.0],
            PriorEntry::Sigmas if conv => [0.1, 0.002],
            PriorEntry::Sigmas => [0.1, 0.4],
        }
    }
}

/// Whether layer `l` (index into [`LAYERS`]) is a convolution.
pub const fn is_conv(l: usize) -> bool {
    l < 2
}

/// What a state-dict key means, once the optional prefix and the alias are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A posterior parameter array of layer `.0` (index into [`LAYERS`]).
    Param(usize, Param),
    /// A prior entry of layer `.0`'s weights (`.1 = true`) or biases.
    Prior(usize, bool, PriorEntry),
}

/// Resolves a state-dict key (with or without [`PREFIX`]); `None` if `bayesian_lenet` has no
/// such parameter.
pub fn parse(key: &str) -> Option<Key> {
    let key = key.strip_prefix(PREFIX).unwrap_or(key);
    let (layer, rest) = key.split_once('.')?;
    let l = LAYERS.iter().position(|&n| n == layer)?;
    for p in Param::ALL {
        if p.aliases().contains(&rest) {
            return Some(Key::Param(l, p));
        }
    }
    let (dist, entry) = rest.rsplit_once('.')?;
    let weight = match dist {
        "weight_prior_dist" => true,
        "bias_prior_dist" => false,
        _ => return None,
    };
    let entry = PriorEntry::ALL.into_iter().find(|e| e.name() == entry)?;
    Some(Key::Prior(l, weight, entry))
}

/// The key `save_model` writes for parameter `p` of layer `layer`.
pub fn param_key(layer: usize, p: Param) -> String {
    format!("{PREFIX}{}.{}", LAYERS[layer], p.saved())
}

/// The key of a prior entry.
pub fn prior_key(layer: usize, weight: bool, e: PriorEntry) -> String {
    let dist = if weight {
        "weight_prior_dist"
    } else {
        "bias_prior_dist"
    };
    format!("{PREFIX}{}.{dist}.{}", LAYERS[layer], e.name())
}

/// Every key `save_model(bayesian_lenet(1, 10), …)` writes, in a fixed order.
pub fn saved_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for l in 0..LAYERS.len() {
        for p in Param::ALL {
            keys.push(param_key(l, p));
        }
        for weight in [true, false] {
            for e in PriorEntry::ALL {
                keys.push(prior_key(l, weight, e));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_and_prefix_resolves_and_others_do_not() {
        for (k, want) in [
            ("core_model.conv1.weight_mu", Key::Param(0, Param::WeightMu)),
            ("conv1.weight_sampler.mu", Key::Param(0, Param::WeightMu)),
            (
                "core_model.fc3.bias_sampler.rho",
                Key::Param(4, Param::BiasRho),
            ),
            ("fc2.bias_sigma", Key::Param(3, Param::BiasRho)),
            ("fc1.weight_sigma", Key::Param(2, Param::WeightRho)),
            (
                "core_model.conv2.bias_prior_dist.sigmas",
                Key::Prior(1, false, PriorEntry::Sigmas),
            ),
            (
                "fc1.weight_prior_dist.pi",
                Key::Prior(2, true, PriorEntry::Pi),
            ),
        ] {
            assert_eq!(parse(k), Some(want), "{k}");
        }
        for k in [
            "core_model.conv1.weight",
            "conv3.weight_mu",
            "core_model.fc1.weight_rho",
            "fc1.weight_prior_dist.scale",
            "model.conv1.weight_mu",
            "core_model.",
            "",
        ] {
            assert_eq!(parse(k), None, "{k}");
        }
        let keys = saved_keys();
        assert_eq!(keys.len(), 5 * (4 + 6));
        assert!(keys.iter().all(|k| parse(k).is_some()));
        assert!(keys.contains(&"core_model.fc3.weight_sampler.rho".to_string()));
    }
}
