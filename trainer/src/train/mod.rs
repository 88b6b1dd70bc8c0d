//! ELBO training: Bayes-by-Backprop with the Monte Carlo KL of torch-uncertainty, Adam,
//! random-crop augmentation and per-epoch shuffling, all driven by one seed.
//!
//! One step: (1) σ, ε and the weight samples in parallel over fixed parameter chunks;
//! (2) forward + backward in parallel over fixed shards of the batch, each shard writing its own
//! per-sample weight gradients; (3) shard gradients summed in shard order, turned into μ and ρ
//! gradients (with the KL's), checked, and applied by Adam, in parallel over parameter chunks.
//! Every boundary is fixed by the data, never by the thread count, so results are identical
//! for any number of threads.
//!
//! Options (all off by default, when the run is the seed recipe bit for bit):
//! [`TrainConfig::local_reparam`] (fc layers sample their pre-activations, conv layers keep one
//! weight sample per pass), [`KlMode::Closed`] (the analytic KL), [`KlReduction::Sum`],
//! [`TrainConfig::kl_anneal_epochs`] and [`LrSchedule`]. The schedules depend only on the
//! global step and the run's total steps, so a resumed run stays bit-exact.

pub mod adam;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod run;

#[cfg(test)]
mod tests;

use crate::nn::parallel::ThreadPoolError;

pub use adam::{Adam, AdamState};
pub use config::{KlMode, KlReduction, LrSchedule, TrainConfig, CROP_PAD, MAX_CROP_PAD};
pub use run::{train, train_resumable, Checkpoints};

/// Progress of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Step within the epoch, from 0.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// ELBO loss: `ce + kl_weight·kl`.
    pub loss: f32,
    /// Cross-entropy, averaged over the batch and the samples.
    pub ce: f32,
    /// KL (mean over the 5 layers), averaged over the samples.
    pub kl: f32,
    /// Share of the batch's images classified right, averaged over the samples.
    pub batch_accuracy: f32,
}

/// What a finished training run reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSummary {
    /// Steps taken.
    pub steps: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Mean loss over the last epoch's steps.
    pub last_epoch_loss: f32,
    /// Mean batch accuracy over the last epoch.
    pub last_epoch_accuracy: f32,
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The loss, a gradient or an updated parameter became NaN or infinite.
    #[error("training diverged at step {step}: non-finite {what}{}", layer.map_or(String::new(), |l| format!(" in layer {l}")))]
    NonFinite {
        /// Global step (from 0).
        step: usize,
        /// What: `loss`, `μ gradient`, `ρ gradient`, `μ after the Adam update` or `ρ after …`.
        what: &'static str,
        /// The layer: of the bad gradient or parameter; for a bad loss, the first layer whose
        /// sampled weights or gradients are not finite (`None` when none is).
        layer: Option<&'static str>,
    },
    /// Inconsistent inputs or configuration.
    #[error("invalid training input: {0}")]
    Invalid(String),
    /// The worker threads could not be started.
    #[error(transparent)]
    ThreadPool(#[from] ThreadPoolError),
    /// Saving a checkpoint failed.
    #[error("cannot save the checkpoint: {0}")]
    Checkpoint(#[source] Box<crate::error::TrainerError>),
}

/// Where a run stands after a step: with the model's μ and ρ, everything needed to continue
/// bit-exactly. No generator state is stored: shuffling and crops are drawn from streams of
/// (seed, epoch) and the weight noise from streams of (seed, global step).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// Epoch in progress (from 0); equals the number of finished epochs when `step` is 0.
    pub epoch: usize,
    /// Steps of `epoch` already taken (0 at an epoch boundary).
    pub step: usize,
    /// Steps taken in all (`epoch · steps per epoch + step`).
    pub global_step: usize,
    /// Σ loss over the steps of the current epoch (of the finished one at a boundary).
    pub epoch_loss_sum: f64,
    /// Σ batch accuracy over the same steps.
    pub epoch_accuracy_sum: f64,
    /// Adam of the μ.
    pub adam_mu: AdamState,
    /// Adam of the ρ.
    pub adam_rho: AdamState,
}
