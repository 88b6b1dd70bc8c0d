//! The training configuration: every option of a run, with its default (the seed recipe).

use serde::{Deserialize, Serialize};

use crate::nn::bayes::{self, Prior};

use super::TrainError;

/// Padding of the random crop, in pixels of the seed recipe (`TrainConfig::crop_pad` changes it).
pub const CROP_PAD: usize = 4;
/// The largest `--crop-pad`: a shift of up to 12 pixels leaves over half of each digit.
pub const MAX_CROP_PAD: usize = 12;

/// How the KL term of the ELBO is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KlMode {
    /// Monte Carlo: `log q(w) − log p(w)` at the sampled weights (torch-uncertainty's).
    Mc,
    /// Closed form for the Gaussian prior N(0, σ₁²): per parameter
    /// `ln(σ₁/σ) + (σ² + μ²)/(2σ₁²) − 1/2` (refused for a mixture prior).
    /// torch-uncertainty's log q carries an extra `+1/2`, so the Monte Carlo value averages
    /// 1/2 per parameter below this one; the gradients have the same expectation.
    Closed,
}

impl KlMode {
    /// Every mode, in the order `--help` lists them.
    pub const ALL: [KlMode; 2] = [KlMode::Mc, KlMode::Closed];

    /// The mode's name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            KlMode::Mc => "mc",
            KlMode::Closed => "closed",
        }
    }

    /// The mode for `--kl` given or not: closed is implied by local reparameterisation,
    /// else Monte Carlo.
    pub fn resolve(given: Option<KlMode>, local_reparam: bool) -> KlMode {
        given.unwrap_or(if local_reparam {
            KlMode::Closed
        } else {
            KlMode::Mc
        })
    }
}

/// How the per-layer KL sums are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KlReduction {
    /// The mean over the 5 layers (torch-uncertainty's).
    LayerMean,
    /// The sum over all parameters (with a KL weight of 1/N: the per-example ELBO).
    Sum,
}

impl KlReduction {
    /// Every reduction, in the order `--help` lists them.
    pub const ALL: [KlReduction; 2] = [KlReduction::LayerMean, KlReduction::Sum];

    /// The reduction's name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            KlReduction::LayerMean => "layer-mean",
            KlReduction::Sum => "sum",
        }
    }

    pub(crate) fn divisor(self) -> usize {
        match self {
            KlReduction::LayerMean => 5,
            KlReduction::Sum => 1,
        }
    }
}

/// Learning rate as a function of the global step `t` (from 0) of `T` steps in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant,
    /// `lr·½(1 + cos(π·t/T))`.
    Cosine,
    /// Warm-up `lr/25 + (lr − lr/25)·t/W` for `t < W = 0.3·T`, then
    /// `lr/1e4 + (lr − lr/1e4)·½(1 + cos(π·(t − W)/(T − W)))`.
    OneCycle,
}

impl LrSchedule {
    /// Every schedule, in the order `--help` lists them.
    pub const ALL: [LrSchedule; 3] = [
        LrSchedule::Constant,
        LrSchedule::Cosine,
        LrSchedule::OneCycle,
    ];

    /// The schedule's name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
            LrSchedule::OneCycle => "one-cycle",
        }
    }

    /// The learning rate at global step `t` of `total` for the base rate `lr`
    /// (computed in f64, rounded to f32; `Constant` returns `lr` itself).
    pub fn at(self, lr: f32, t: usize, total: usize) -> f32 {
        let (base, t, total) = (lr as f64, t as f64, total.max(1) as f64);
        let half_cos = |x: f64| 0.5 * (1.0 + (std::f64::consts::PI * x).cos());
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => (base * half_cos(t / total)) as f32,
            LrSchedule::OneCycle => {
                let w = 0.3 * total;
                let (start, end) = (base / 25.0, base / 1e4);
                if t < w {
                    (start + (base - start) * t / w) as f32
                } else {
                    (end + (base - end) * half_cos((t - w) / (total - w))) as f32
                }
            }
        }
    }
}

/// Every setting of a training run: what a recipe (`cli::recipe`) produces, what the command
/// line overrides, what the engine reads and what a checkpoint stores. A new option is one
/// field here (plus its flag).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seed of initialisation, shuffling, augmentation and weight noise.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step (the last partial batch is kept).
    pub batch_size: usize,
    /// Adam's learning rate (the peak of a schedule).
    pub lr: f32,
    /// Learning-rate schedule over all `epochs · steps per epoch` steps.
    pub lr_schedule: LrSchedule,
    /// Weight of the KL term.
    pub kl_weight: f32,
    /// Local reparameterisation of fc1, fc2, fc3 (needs [`KlMode::Closed`]).
    pub local_reparam: bool,
    /// How the KL is computed.
    pub kl: KlMode,
    /// How the layers' KL sums are combined.
    pub kl_reduction: KlReduction,
    /// KL annealing: the weight is `kl_weight·min(1, t/(E·steps per epoch))` at global step
    /// `t` for E epochs (0 = off).
    pub kl_anneal_epochs: usize,
    /// Monte Carlo samples of the ELBO per step.
    pub train_samples: usize,
    /// Random-crop augmentation: 28×28 crops of the image zero-padded by this many pixels
    /// (0 = no augmentation).
    pub crop_pad: usize,
    /// Training images held out at the end of the set: never trained on, they choose the OOD
    /// threshold and the temperature.
    pub holdout: usize,
    /// Post-hoc temperature scaling on the held-out images, folded into fc3.
    pub temperature_scaling: bool,
    /// Worker threads (0 = all cores); never changes a result, so no checkpoint stores it.
    #[serde(skip)]
    pub threads: usize,
}

impl TrainConfig {
    /// Refuses inconsistent options (one line each).
    pub fn check_options(&self, prior: &Prior) -> Result<(), TrainError> {
        if self.local_reparam && self.kl == KlMode::Mc {
            return Err(TrainError::Invalid(
                "--local-reparam samples no fc weights, so the Monte Carlo KL cannot be computed: use --kl closed (the default with --local-reparam)".into(),
            ));
        }
        if self.crop_pad > MAX_CROP_PAD {
            return Err(TrainError::Invalid(format!(
                "--crop-pad {} is more than {MAX_CROP_PAD} pixels",
                self.crop_pad
            )));
        }
        if self.kl == KlMode::Closed && !bayes::closed_kl_supported(prior) {
            return Err(TrainError::Invalid(format!(
                "--kl closed needs a single Gaussian prior, this prior is a mixture (π = {})",
                prior.pi
            )));
        }
        Ok(())
    }

    /// KL weight at global step `t` with `steps_per_epoch` steps per epoch.
    pub fn kl_weight_at(&self, t: usize, steps_per_epoch: usize) -> f32 {
        if self.kl_anneal_epochs == 0 {
            return self.kl_weight;
        }
        let ramp = (self.kl_anneal_epochs * steps_per_epoch) as f64;
        (self.kl_weight as f64 * (t as f64 / ramp).min(1.0)) as f32
    }
}

impl Default for TrainConfig {
    /// The seed recipe (docs/design.md): torch-uncertainty's tutorial, 1 epoch, batch 128, Adam
    /// 1e-3 constant, Monte Carlo KL averaged over the layers with weight 1/50000, 3 samples per
    /// step, crops of the image padded by 4, seed 0, all training images.
    fn default() -> Self {
        TrainConfig {
            seed: 0,
            epochs: 1,
            batch_size: 128,
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            kl_weight: 1.0 / 50_000.0,
            local_reparam: false,
            kl: KlMode::Mc,
            kl_reduction: KlReduction::LayerMean,
            kl_anneal_epochs: 0,
            train_samples: 3,
            crop_pad: CROP_PAD,
            holdout: 0,
            temperature_scaling: false,
            threads: 0,
        }
    }
}
