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

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::evaluate::norm_lut;
use crate::model::Lenet;
use crate::nn::bayes::{self, Prior, PRIOR};
use crate::nn::lenet::{layer_of, LocalReparam, Workspace, FC_START, FC_UNITS, IN, PARAMS};
use crate::nn::rng::{purpose, Rng};

/// Images per shard of a batch (the unit of parallel work).
pub const SHARD: usize = 16;
/// Parameters per chunk of the element-wise phases.
const CHUNK: usize = 4096;
/// Padding of the random crop, in pixels (DESIGN §3; `TrainConfig::crop_pad` changes it).
pub const CROP_PAD: usize = 4;
/// The largest `--crop-pad`: a shift of up to 12 pixels leaves over half of each digit.
pub const MAX_CROP_PAD: usize = 12;

/// How the KL term of the ELBO is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KlReduction {
    /// The mean over the 5 layers (torch-uncertainty's).
    LayerMean,
    /// The sum over all parameters (with a KL weight of 1/N: the per-example ELBO).
    Sum,
}

impl KlReduction {
    fn divisor(self) -> usize {
        match self {
            KlReduction::LayerMean => 5,
            KlReduction::Sum => 1,
        }
    }
}

/// Learning rate as a function of the global step `t` (from 0) of `T` steps in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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

/// `--kl-weight`: a finite number ≥ 0, or a fraction `a/b` of such numbers (e.g. `1/60000`).
pub fn parse_kl_weight(s: &str) -> Result<f64, String> {
    let num = |p: &str| -> Result<f64, String> {
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number or a fraction a/b"))?;
        if !v.is_finite() {
            return Err(format!("must be a finite number, got {s}"));
        }
        Ok(v)
    };
    let v = match s.split_once('/') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b == 0.0 {
                return Err(format!("division by zero in {s}"));
            }
            a / b
        }
        None => num(s)?,
    };
    if v < 0.0 {
        return Err(format!("must not be negative, got {s}"));
    }
    Ok(v)
}

/// The training recipe.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step (the last partial batch is kept).
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Weight of the KL term.
    pub kl_weight: f32,
    /// Monte Carlo samples of the ELBO per step.
    pub train_samples: usize,
    /// Seed of initialisation, shuffling, augmentation and weight noise.
    pub seed: u64,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Local reparameterisation of fc1, fc2, fc3 (needs [`KlMode::Closed`]).
    pub local_reparam: bool,
    /// How the KL is computed.
    pub kl: KlMode,
    /// How the layers' KL sums are combined.
    pub kl_reduction: KlReduction,
    /// KL annealing: the weight is `kl_weight·min(1, t/(E·steps per epoch))` at global step
    /// `t` for E epochs (0 = off).
    pub kl_anneal_epochs: usize,
    /// Learning-rate schedule over all `epochs · steps per epoch` steps.
    pub lr_schedule: LrSchedule,
    /// Random-crop augmentation: 28×28 crops of the image zero-padded by this many pixels
    /// (0 = no augmentation).
    pub crop_pad: usize,
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
    /// DESIGN §3: 1 epoch, batch 128, lr 1e-3, kl_weight 1/50000, 3 samples, seed 0.
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 128,
            lr: 1e-3,
            kl_weight: 1.0 / 50_000.0,
            train_samples: 3,
            seed: 0,
            threads: 0,
            local_reparam: false,
            kl: KlMode::Mc,
            kl_reduction: KlReduction::LayerMean,
            kl_anneal_epochs: 0,
            lr_schedule: LrSchedule::Constant,
            crop_pad: CROP_PAD,
        }
    }
}

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
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// The loss or a gradient became NaN or infinite.
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
    Invalid(String),
    /// Saving a checkpoint failed (the message names the file and the problem).
    Checkpoint(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::NonFinite {
                step,
                what,
                layer: Some(l),
            } => {
                write!(
                    f,
                    "training diverged at step {step}: non-finite {what} in layer {l}"
                )
            }
            TrainError::NonFinite {
                step,
                what,
                layer: None,
            } => {
                write!(f, "training diverged at step {step}: non-finite {what}")
            }
            TrainError::Invalid(m) => write!(f, "invalid training input: {m}"),
            TrainError::Checkpoint(m) => write!(f, "cannot save the checkpoint: {m}"),
        }
    }
}

impl std::error::Error for TrainError {}

/// Adam as PyTorch writes it (bias-corrected, no weight decay, no amsgrad).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Steps taken.
    pub t: u32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    /// Adam for `n` parameters with PyTorch's defaults besides `lr`.
    pub fn new(n: usize, lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// Starts a step: advances `t` and returns its (step size, 1/√(bias correction 2)).
    fn begin(&mut self) -> (f32, f32) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        (self.lr / bc1, bc2.sqrt())
    }

    /// Updates `p` (a slice of the parameters starting at `offset`) with gradient `g`.
    fn apply(&self, k: (f32, f32), p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (step, bc2_sqrt) = k;
        for i in 0..p.len() {
            m[i] = self.beta1 * m[i] + (1.0 - self.beta1) * g[i];
            v[i] = self.beta2 * v[i] + (1.0 - self.beta2) * g[i] * g[i];
            let denom = v[i].sqrt() / bc2_sqrt + self.eps;
            p[i] -= step * m[i] / denom;
        }
    }

    /// Steps taken and moment estimates (for a checkpoint).
    pub fn state(&self) -> AdamState {
        AdamState {
            t: self.t,
            m: self.m.clone(),
            v: self.v.clone(),
        }
    }

    /// Adam with learning rate `lr` (PyTorch's other defaults) continuing from `state`.
    pub fn restore(lr: f32, state: AdamState) -> Self {
        Adam {
            t: state.t,
            m: state.m,
            v: state.v,
            ..Adam::new(0, lr)
        }
    }

    /// One step on all parameters (sequential; the trainer uses the chunked path).
    pub fn step(&mut self, p: &mut [f32], g: &[f32]) {
        let k = self.begin();
        let (mut m, mut v) = (std::mem::take(&mut self.m), std::mem::take(&mut self.v));
        self.apply(k, p, g, &mut m, &mut v);
        self.m = m;
        self.v = v;
    }
}

/// Adam's state besides its hyper-parameters: steps taken, first and second moments.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    /// Steps taken.
    pub t: u32,
    /// First-moment estimates, one per parameter.
    pub m: Vec<f32>,
    /// Second-moment estimates, one per parameter.
    pub v: Vec<f32>,
}

/// Where a run stands after a step: with the model's μ and ρ, everything needed to continue
/// bit-exactly. No generator state is stored: shuffling and crops are drawn from streams of
/// (seed, epoch) and the weight noise from streams of (seed, global step).
#[derive(Clone, Debug, PartialEq)]
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

/// Checkpointing and fault injection for [`train_resumable`].
pub struct Checkpoints<'a> {
    /// Continue from this state (with the model as it was saved with it).
    pub resume: Option<TrainState>,
    /// Save after every this many steps of an epoch too (0: only at the end of each epoch).
    pub every_steps: usize,
    /// Saves the model and the state; an error stops training.
    pub save: &'a mut dyn FnMut(&Lenet, &TrainState) -> Result<(), String>,
    /// Fault injection for tests: make the ρ gradient of this global step NaN in this layer
    /// (an index into [`crate::nn::lenet::LAYERS`]).
    pub inject_nan: Option<(usize, usize)>,
}

/// Buffers reused by every step.
pub(crate) struct Engine {
    s: usize,
    pub(crate) sigma: Vec<f32>,
    ln_sigma: Vec<f32>,
    dsigma: Vec<f32>,
    /// σ², used by the locally reparameterised fc layers only.
    var: Vec<f32>,
    /// ε per sample, `[s][PARAMS]`.
    pub(crate) eps: Vec<f32>,
    /// Sampled weights per sample, `[s][PARAMS]` (the fc part stays unused under local
    /// reparameterisation).
    pub(crate) w: Vec<f32>,
    pub(crate) gmu: Vec<f32>,
    pub(crate) grho: Vec<f32>,
    /// Per shard, per sample: `∂L/∂w` of the shard's images (fixed shards: a deterministic sum);
    /// `∂L/∂μ` for the locally reparameterised fc layers.
    shard_grads: Vec<Vec<Vec<f32>>>,
    /// Per shard, per sample: `∂L/∂σ²` of the locally reparameterised fc layers (empty when off).
    shard_gvars: Vec<Vec<Vec<f32>>>,
    /// Per shard, per sample: the fc pre-activation noise, `SHARD · FC_UNITS` values (empty when
    /// off), drawn from streams of (seed, step, sample, shard).
    lr_eps: Vec<Vec<Vec<f32>>>,
    /// Scratch buffers, one per worker thread (kept warm in that core's cache).
    scratch: Vec<Mutex<Workspace>>,
    prior: Prior,
    local_reparam: bool,
    kl: KlMode,
    reduction: KlReduction,
}

/// Losses of one step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepLoss {
    pub ce: f64,
    pub kl: f64,
    pub correct: usize,
}

impl Engine {
    pub(crate) fn new(s: usize, batch: usize, threads: usize) -> Self {
        let shards = batch.div_ceil(SHARD);
        Engine {
            s,
            sigma: vec![0.0; PARAMS],
            ln_sigma: vec![0.0; PARAMS],
            dsigma: vec![0.0; PARAMS],
            var: vec![],
            eps: vec![0.0; s * PARAMS],
            w: vec![0.0; s * PARAMS],
            gmu: vec![0.0; PARAMS],
            grho: vec![0.0; PARAMS],
            shard_grads: vec![vec![vec![0.0; PARAMS]; s]; shards],
            shard_gvars: vec![vec![]; shards],
            lr_eps: vec![vec![]; shards],
            scratch: (0..threads.max(1))
                .map(|_| Mutex::new(Workspace::new(SHARD, s, true)))
                .collect(),
            prior: PRIOR,
            local_reparam: false,
            kl: KlMode::Mc,
            reduction: KlReduction::LayerMean,
        }
    }

    /// The engine for `cfg`'s local reparameterisation and KL options.
    pub(crate) fn with_options(mut self, cfg: &TrainConfig) -> Self {
        self.local_reparam = cfg.local_reparam;
        self.kl = cfg.kl;
        self.reduction = cfg.kl_reduction;
        if cfg.local_reparam {
            let s = self.s;
            self.var = vec![0.0; PARAMS];
            for g in &mut self.shard_gvars {
                *g = vec![vec![0.0; PARAMS]; s];
            }
            for e in &mut self.lr_eps {
                *e = vec![vec![0.0; SHARD * FC_UNITS]; s];
            }
        }
        self
    }

    /// σ terms of the current ρ, then fresh ε (from `seed`, `step`) unless `keep_eps`, and the
    /// weight samples; returns Σ_s KL_s (each reduced over the layers) for the Monte Carlo KL,
    /// the KL itself for the closed form.
    pub(crate) fn sample(&mut self, model: &Lenet, seed: u64, step: u64, keep_eps: bool) -> f64 {
        let (sigma, ln_sigma, dsigma) = (&mut self.sigma, &mut self.ln_sigma, &mut self.dsigma);
        sigma
            .par_chunks_mut(CHUNK)
            .zip(ln_sigma.par_chunks_mut(CHUNK))
            .zip(dsigma.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, ((s, l), d))| {
                bayes::sigma_terms(&model.rho[c * CHUNK..c * CHUNK + s.len()], s, l, d);
            });
        if self.kl == KlMode::Closed {
            return self.sample_closed(model, seed, step, keep_eps);
        }
        let per_sample = PARAMS.div_ceil(CHUNK);
        let (sigma, ln_sigma, prior) = (&self.sigma, &self.ln_sigma, &self.prior);
        let parts: Vec<f64> = sample_chunks(&mut self.eps, &mut self.w)
            .map(|(s, c, e, w)| {
                if !keep_eps {
                    Rng::stream(seed, &[purpose::TRAIN_EPS, step, s as u64, c as u64])
                        .fill_normal(e);
                }
                let r = c * CHUNK..c * CHUNK + e.len();
                bayes::sample(&model.mu[r.clone()], &sigma[r.clone()], e, w);
                bayes::kl_sum(&ln_sigma[r], e, w, prior)
            })
            .collect();
        debug_assert_eq!(parts.len(), self.s * per_sample);
        parts.iter().sum::<f64>() / self.reduction.divisor() as f64
    }

    /// [`Engine::sample`] for the closed-form KL: samples the weights (only the conv layers'
    /// under local reparameterisation, plus σ² and the fc noise) and returns the KL.
    fn sample_closed(&mut self, model: &Lenet, seed: u64, step: u64, keep_eps: bool) -> f64 {
        let limit = if self.local_reparam { FC_START } else { PARAMS };
        let sigma = &self.sigma;
        sample_chunks(&mut self.eps, &mut self.w).for_each(|(s, c, e, w)| {
            let lo = c * CHUNK;
            if lo >= limit {
                return;
            }
            let len = e.len().min(limit - lo);
            let (e, w) = (&mut e[..len], &mut w[..len]);
            if !keep_eps {
                Rng::stream(seed, &[purpose::TRAIN_EPS, step, s as u64, c as u64]).fill_normal(e);
            }
            bayes::sample(&model.mu[lo..lo + len], &sigma[lo..lo + len], e, w);
        });
        if self.local_reparam {
            self.var
                .par_chunks_mut(CHUNK)
                .zip(sigma.par_chunks(CHUNK))
                .for_each(|(v, s)| {
                    for (v, &s) in v.iter_mut().zip(s) {
                        *v = s * s;
                    }
                });
            if !keep_eps {
                self.lr_eps
                    .par_iter_mut()
                    .enumerate()
                    .flat_map(|(k, per)| {
                        per.par_iter_mut().enumerate().map(move |(j, e)| (k, j, e))
                    })
                    .for_each(|(k, j, e)| {
                        Rng::stream(seed, &[purpose::TRAIN_LR_EPS, step, j as u64, k as u64])
                            .fill_normal(e);
                    });
            }
        }
        let (ln_sigma, prior) = (&self.ln_sigma, &self.prior);
        let parts: Vec<f64> = model
            .mu
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, m)| {
                let r = c * CHUNK..c * CHUNK + m.len();
                bayes::closed_kl_sum(m, &sigma[r.clone()], &ln_sigma[r], prior)
            })
            .collect();
        parts.iter().sum::<f64>() / self.reduction.divisor() as f64
    }

    /// Forward + backward of the batch (normalised images produced by `fill`) and the μ, ρ
    /// gradients of the ELBO into `gmu`, `grho`. `kl_sum` is [`Engine::sample`]'s result for
    /// the same `model`.
    pub(crate) fn gradients(
        &mut self,
        model: &Lenet,
        n: usize,
        labels: &[u8],
        kl_weight: f32,
        kl_sum: f64,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> StepLoss {
        let s = self.s;
        let scale = 1.0 / (n * s) as f32;
        let weights: Vec<&[f32]> = self.w.chunks_exact(PARAMS).collect();
        let nshards = n.div_ceil(SHARD);
        let scratch = &self.scratch;
        let local_reparam = self.local_reparam;
        let (var, lr_eps) = (&self.var, &self.lr_eps);
        let outs: Vec<(f64, usize)> = self.shard_grads[..nshards]
            .par_iter_mut()
            .zip(self.shard_gvars[..nshards].par_iter_mut())
            .enumerate()
            .map(|(k, (grads, gvars))| {
                let t = rayon::current_thread_index().unwrap_or(0) % scratch.len();
                let mut ws = scratch[t].lock().unwrap_or_else(|e| e.into_inner());
                let lo = k * SHARD;
                let m = SHARD.min(n - lo);
                for i in 0..m {
                    fill(lo + i, &mut ws.x[i * IN..(i + 1) * IN]);
                }
                let labels = &labels[lo..lo + m];
                let ce = if local_reparam {
                    let lrs: Vec<LocalReparam> = lr_eps[k]
                        .iter()
                        .map(|e| LocalReparam {
                            mu: &model.mu,
                            var,
                            eps: e,
                        })
                        .collect();
                    ws.forward_backward_lr(m, labels, &weights, &lrs, scale, grads, gvars)
                } else {
                    ws.forward_backward(m, labels, &weights, scale, grads)
                };
                (
                    ce.iter().map(|c| c.ce_sum).sum(),
                    ce.iter().map(|c| c.correct).sum(),
                )
            })
            .collect();
        let c = kl_weight / (self.reduction.divisor() * s) as f32;
        let c_closed = kl_weight / self.reduction.divisor() as f32;
        let closed = self.kl == KlMode::Closed;
        let shards = &self.shard_grads[..nshards];
        let gvars = &self.shard_gvars[..nshards];
        let (sigma, dsigma, eps, w, prior) =
            (&self.sigma, &self.dsigma, &self.eps, &self.w, &self.prior);
        self.gmu
            .par_chunks_mut(CHUNK)
            .zip(self.grho.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(ci, (gm, gr))| {
                let lo = ci * CHUNK;
                let len = gm.len();
                gm.fill(0.0);
                gr.fill(0.0);
                let mut g = [0.0f32; CHUNK];
                let g = &mut g[..len];
                // Local reparameterisation: [split, len) of this chunk is fc (∂/∂μ, ∂/∂σ²).
                let split = if local_reparam {
                    FC_START.clamp(lo, lo + len) - lo
                } else {
                    len
                };
                let mut gv = [0.0f32; CHUNK];
                let gv = &mut gv[split..len];
                for j in 0..s {
                    g.copy_from_slice(&shards[0][j][lo..lo + len]);
                    for sg in &shards[1..] {
                        for (a, &b) in g.iter_mut().zip(&sg[j][lo..lo + len]) {
                            *a += b;
                        }
                    }
                    let r = j * PARAMS + lo..j * PARAMS + lo + len;
                    if !closed {
                        bayes::accumulate_grads(
                            &sigma[lo..lo + len],
                            &dsigma[lo..lo + len],
                            &eps[r.clone()],
                            &w[r],
                            g,
                            c,
                            prior,
                            gm,
                            gr,
                        );
                        continue;
                    }
                    let e = &eps[j * PARAMS + lo..j * PARAMS + lo + split];
                    let (gm0, gm1) = gm.split_at_mut(split);
                    let (gr0, gr1) = gr.split_at_mut(split);
                    bayes::accumulate_data_grads(&dsigma[lo..lo + split], e, &g[..split], gm0, gr0);
                    if split < len {
                        let f = lo + split..lo + len;
                        gv.copy_from_slice(&gvars[0][j][f.clone()]);
                        for sv in &gvars[1..] {
                            for (a, &b) in gv.iter_mut().zip(&sv[j][f.clone()]) {
                                *a += b;
                            }
                        }
                        bayes::accumulate_var_grads(
                            &sigma[f.clone()],
                            &dsigma[f],
                            &g[split..],
                            gv,
                            gm1,
                            gr1,
                        );
                    }
                }
                if closed {
                    let r = lo..lo + len;
                    bayes::accumulate_closed_kl_grads(
                        &model.mu[r.clone()],
                        &sigma[r.clone()],
                        &dsigma[r],
                        c_closed,
                        prior,
                        gm,
                        gr,
                    );
                }
            });
        let ce: f64 = outs.iter().map(|o| o.0).sum();
        let correct = outs.iter().map(|o| o.1).sum();
        StepLoss {
            ce: ce / (n * s) as f64,
            kl: if closed { kl_sum } else { kl_sum / s as f64 },
            correct,
        }
    }

    /// The first non-finite gradient, as (what, layer).
    fn check(&self) -> Option<(&'static str, &'static str)> {
        let bad = |v: &[f32]| v.par_iter().position_first(|g| !g.is_finite());
        if let Some(i) = bad(&self.gmu) {
            return Some(("μ gradient", layer_of(i).name));
        }
        bad(&self.grho).map(|i| ("ρ gradient", layer_of(i).name))
    }

    /// The first layer whose sampled weights are not finite.
    fn nonfinite_weights(&self) -> Option<&'static str> {
        let i = self.w.par_iter().position_first(|w| !w.is_finite())?;
        Some(layer_of(i % PARAMS).name)
    }
}

/// The noise and weight vectors of every sample, cut into fixed parameter chunks: items
/// `(sample, chunk, ε, w)`, the unit of the parallel sampling (independent of thread count).
fn sample_chunks<'a>(
    eps: &'a mut [f32],
    w: &'a mut [f32],
) -> impl ParallelIterator<Item = (usize, usize, &'a mut [f32], &'a mut [f32])> {
    eps.par_chunks_mut(PARAMS)
        .zip(w.par_chunks_mut(PARAMS))
        .enumerate()
        .flat_map(|(s, (e, w))| {
            e.par_chunks_mut(CHUNK)
                .zip(w.par_chunks_mut(CHUNK))
                .enumerate()
                .map(move |(c, (e, w))| (s, c, e, w))
        })
}

/// Writes the normalised random crop of `img` (28×28 u8) at offset (`dy`, `dx`) ∈ 0..=2·`pad`
/// of the image zero-padded by `pad` pixels (`dy = dx = pad` is the image itself).
#[inline]
pub fn crop_normalized(
    img: &[u8],
    pad: usize,
    (dy, dx): (usize, usize),
    lut: &[f32; 256],
    out: &mut [f32],
) {
    for y in 0..28 {
        let sy = y + dy;
        let row = &mut out[y * 28..(y + 1) * 28];
        if !(pad..pad + 28).contains(&sy) {
            row.fill(lut[0]);
            continue;
        }
        let src = &img[(sy - pad) * 28..(sy - pad + 1) * 28];
        for (x, o) in row.iter_mut().enumerate() {
            let sx = x + dx;
            *o = if (pad..pad + 28).contains(&sx) {
                lut[src[sx - pad] as usize]
            } else {
                lut[0]
            };
        }
    }
}

/// Trains `model` on `images` (`n × 784` u8) and `labels` (`n` values in 0..10) with `cfg`,
/// calling `on_step` after every step.
pub fn train(
    model: &mut Lenet,
    images: &[u8],
    labels: &[u8],
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<TrainSummary, TrainError> {
    let mut save = |_: &Lenet, _: &TrainState| Ok(());
    let checkpoints = Checkpoints {
        resume: None,
        every_steps: 0,
        save: &mut save,
        inject_nan: None,
    };
    train_resumable(model, images, labels, cfg, checkpoints, on_step)
}

/// [`train`], continuing from `checkpoints.resume` when given (`model` must then be the model
/// saved with that state), and handing the model and state to `checkpoints.save` after every
/// epoch (and every `checkpoints.every_steps` steps). A run resumed from any checkpoint ends with
/// the same parameters, bit for bit, as an uninterrupted run. Training stops with
/// [`TrainError::NonFinite`] at the first non-finite loss, gradient or updated parameter: a bad
/// gradient is caught before Adam applies it, and no state after it reaches `save`.
pub fn train_resumable(
    model: &mut Lenet,
    images: &[u8],
    labels: &[u8],
    cfg: &TrainConfig,
    checkpoints: Checkpoints<'_>,
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<TrainSummary, TrainError> {
    let n = labels.len();
    if images.len() != n * IN {
        return Err(TrainError::Invalid(format!(
            "{} image bytes for {n} labels (expected {})",
            images.len(),
            n * IN
        )));
    }
    if let Some(i) = labels.iter().position(|&l| l >= 10) {
        return Err(TrainError::Invalid(format!(
            "label {} at index {i} is not in 0..10",
            labels[i]
        )));
    }
    if n == 0 || cfg.batch_size == 0 || cfg.train_samples == 0 {
        return Err(TrainError::Invalid(
            "need at least one image, a batch size ≥ 1 and ≥ 1 training sample".into(),
        ));
    }
    if model.mu.len() != PARAMS || model.rho.len() != PARAMS {
        return Err(TrainError::Invalid(
            "model has the wrong number of parameters".into(),
        ));
    }
    cfg.check_options(&PRIOR)?;
    if let Some(s) = &checkpoints.resume {
        check_resume(s, n.div_ceil(cfg.batch_size.min(n)), cfg.epochs)?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| TrainError::Invalid(format!("cannot start worker threads: {e}")))?;
    train_in_pool(&pool, model, images, labels, cfg, checkpoints, on_step)
}

/// A resume state must sit inside the run: a step of an epoch ≤ `epochs`, consistent counts,
/// moments for every parameter.
fn check_resume(s: &TrainState, steps_per_epoch: usize, epochs: usize) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Invalid(format!("cannot resume: {m}")));
    if s.step >= steps_per_epoch {
        return bad(format!(
            "step {} of an epoch of {steps_per_epoch} steps",
            s.step
        ));
    }
    if s.epoch > epochs || (s.epoch == epochs && s.step > 0) {
        return bad(format!(
            "the checkpoint is past the {epochs} epoch(s) asked for (epoch {}, step {})",
            s.epoch + 1,
            s.step
        ));
    }
    if s.global_step != s.epoch * steps_per_epoch + s.step {
        return bad(format!(
            "global step {} is not epoch {} step {} of {steps_per_epoch}",
            s.global_step, s.epoch, s.step
        ));
    }
    for a in [&s.adam_mu, &s.adam_rho] {
        if a.m.len() != PARAMS || a.v.len() != PARAMS || a.t as usize != s.global_step {
            return bad("Adam's state does not match the parameters or the step".into());
        }
    }
    Ok(())
}

fn train_in_pool(
    pool: &rayon::ThreadPool,
    model: &mut Lenet,
    images: &[u8],
    labels: &[u8],
    cfg: &TrainConfig,
    checkpoints: Checkpoints<'_>,
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<TrainSummary, TrainError> {
    let start = Instant::now();
    let n = labels.len();
    let batch = cfg.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut engine =
        Engine::new(cfg.train_samples, batch, pool.current_num_threads()).with_options(cfg);
    let Checkpoints {
        resume,
        every_steps,
        save,
        inject_nan,
    } = checkpoints;
    let (start_epoch, start_step, mut global, mut adam_mu, mut adam_rho, mut loss_sum, mut acc_sum) =
        match resume {
            Some(s) => (
                s.epoch,
                s.step,
                s.global_step,
                Adam::restore(cfg.lr, s.adam_mu),
                Adam::restore(cfg.lr, s.adam_rho),
                s.epoch_loss_sum,
                s.epoch_accuracy_sum,
            ),
            None => (
                0,
                0,
                0,
                Adam::new(PARAMS, cfg.lr),
                Adam::new(PARAMS, cfg.lr),
                0.0,
                0.0,
            ),
        };
    let lut = norm_lut();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut crops = vec![(0u8, 0u8); n];
    let mut batch_labels = vec![0u8; batch];
    for epoch in start_epoch..cfg.epochs {
        order
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = i as u32);
        Rng::stream(cfg.seed, &[purpose::SHUFFLE, epoch as u64]).shuffle(&mut order);
        let mut rng = Rng::stream(cfg.seed, &[purpose::AUGMENT, epoch as u64]);
        for c in &mut crops {
            *c = (
                rng.below(2 * cfg.crop_pad + 1) as u8,
                rng.below(2 * cfg.crop_pad + 1) as u8,
            );
        }
        let first = if epoch == start_epoch { start_step } else { 0 };
        if first == 0 {
            (loss_sum, acc_sum) = (0.0, 0.0);
        }
        for step in first..steps_per_epoch {
            let lo = step * batch;
            let hi = (lo + batch).min(n);
            let m = hi - lo;
            for (b, &o) in batch_labels.iter_mut().zip(&order[lo..hi]) {
                *b = labels[o as usize];
            }
            let (order, crops) = (&order, &crops);
            let fill = |i: usize, out: &mut [f32]| {
                let idx = order[lo + i] as usize;
                let (dy, dx) = crops[lo + i];
                crop_normalized(
                    &images[idx * IN..(idx + 1) * IN],
                    cfg.crop_pad,
                    (dy as usize, dx as usize),
                    &lut,
                    out,
                );
            };
            let bl = &batch_labels[..m];
            let kl_weight = cfg.kl_weight_at(global, steps_per_epoch);
            let lr = cfg.lr_schedule.at(cfg.lr, global, total_steps);
            (adam_mu.lr, adam_rho.lr) = (lr, lr);
            let (l, bad) = pool.install(|| {
                let kl_sum = engine.sample(model, cfg.seed, global as u64, false);
                let l = engine.gradients(model, m, bl, kl_weight, kl_sum, &fill);
                if let Some((_, layer)) = inject_nan.filter(|&(s, _)| s == global) {
                    let r = &crate::nn::lenet::LAYERS[layer.min(4)];
                    engine.grho[r.b] = f32::NAN;
                }
                (l, engine.check())
            });
            let loss = l.ce + kl_weight as f64 * l.kl;
            if !loss.is_finite() {
                let layer = pool.install(|| engine.nonfinite_weights().or(bad.map(|b| b.1)));
                return Err(TrainError::NonFinite {
                    step: global,
                    what: "loss",
                    layer,
                });
            }
            if let Some((what, layer)) = bad {
                return Err(TrainError::NonFinite {
                    step: global,
                    what,
                    layer: Some(layer),
                });
            }
            let bad_param = pool.install(|| {
                apply_adam(&mut adam_mu, &mut model.mu, &engine.gmu);
                apply_adam(&mut adam_rho, &mut model.rho, &engine.grho);
                let bad = |v: &[f32]| v.par_iter().position_first(|p| !p.is_finite());
                bad(&model.mu)
                    .map(|i| ("μ after the Adam update", layer_of(i).name))
                    .or_else(|| {
                        bad(&model.rho).map(|i| ("ρ after the Adam update", layer_of(i).name))
                    })
            });
            if let Some((what, layer)) = bad_param {
                return Err(TrainError::NonFinite {
                    step: global,
                    what,
                    layer: Some(layer),
                });
            }
            let acc = l.correct as f64 / (m * cfg.train_samples) as f64;
            loss_sum += loss;
            acc_sum += acc;
            on_step(StepInfo {
                epoch,
                step,
                steps_per_epoch,
                loss: loss as f32,
                ce: l.ce as f32,
                kl: l.kl as f32,
                batch_accuracy: acc as f32,
            });
            global += 1;
            let end_of_epoch = step + 1 == steps_per_epoch;
            if end_of_epoch || (every_steps > 0 && (step + 1) % every_steps == 0) {
                let (e, s) = if end_of_epoch {
                    (epoch + 1, 0)
                } else {
                    (epoch, step + 1)
                };
                let state = TrainState {
                    epoch: e,
                    step: s,
                    global_step: global,
                    epoch_loss_sum: loss_sum,
                    epoch_accuracy_sum: acc_sum,
                    adam_mu: adam_mu.state(),
                    adam_rho: adam_rho.state(),
                };
                save(model, &state).map_err(TrainError::Checkpoint)?;
            }
        }
    }
    Ok(TrainSummary {
        steps: global,
        seconds: start.elapsed().as_secs_f64(),
        last_epoch_loss: (loss_sum / steps_per_epoch as f64) as f32,
        last_epoch_accuracy: (acc_sum / steps_per_epoch as f64) as f32,
    })
}

/// Adam on fixed chunks in parallel.
fn apply_adam(adam: &mut Adam, p: &mut [f32], g: &[f32]) {
    let k = adam.begin();
    let (mut m, mut v) = (std::mem::take(&mut adam.m), std::mem::take(&mut adam.v));
    let a = &*adam;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, ((p, m), v))| a.apply(k, p, &g[c * CHUNK..c * CHUNK + p.len()], m, v));
    adam.m = m;
    adam.v = v;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::mnist;

    #[test]
    fn adam_matches_hand_computed_steps() {
        // PyTorch's formula in f64 by hand, lr 0.1, three steps.
        let mut adam = Adam::new(2, 0.1);
        let mut p = [1.0f32, -2.0];
        let want = [
            [0.900_000_002, -1.900_000_01],
            [0.936_610_354, -1.936_610_360],
            [0.947_377_474, -1.964_910_267],
        ];
        for (g, w) in [[0.5f32, -0.1], [-1.0, 0.2], [0.3, 0.0]].iter().zip(want) {
            adam.step(&mut p, g);
            assert!(
                (p[0] as f64 - w[0]).abs() < 1e-6 && (p[1] as f64 - w[1]).abs() < 1e-6,
                "{p:?} vs {w:?}"
            );
        }
        assert_eq!(adam.t, 3);
    }

    #[test]
    fn crop_pads_black_and_shifts() {
        let img: Vec<u8> = (0..784).map(|i| (i % 251) as u8 + 1).collect();
        let lut = norm_lut();
        let mut out = vec![0.0; 784];
        crop_normalized(&img, 4, (4, 4), &lut, &mut out);
        assert!(out.iter().zip(&img).all(|(&o, &p)| o == lut[p as usize]));
        crop_normalized(&img, 4, (0, 8), &lut, &mut out);
        // Output (y, x) = input (y − 4, x + 4): the top 4 rows and right 4 columns are padding.
        assert!(out[..4 * 28].iter().all(|&v| v == lut[0]));
        assert_eq!(out[4 * 28], lut[img[4] as usize]);
        assert_eq!(out[5 * 28 + 23], lut[img[28 + 27] as usize]);
        assert_eq!(out[5 * 28 + 24], lut[0]);
    }

    /// The whole ELBO (CE over a batch, 2 samples, KL mean over layers) with ε fixed: analytic
    /// ∂/∂μ and ∂/∂ρ against central differences, on the largest gradients of every layer.
    #[test]
    fn elbo_gradients_match_finite_differences() {
        check_elbo_gradients(&TrainConfig::default());
    }

    /// The same with local reparameterisation and the closed-form KL (layer mean and sum), and
    /// with the closed-form KL on sampled weights.
    #[test]
    fn elbo_gradients_match_finite_differences_with_options() {
        let lr = TrainConfig {
            local_reparam: true,
            kl: KlMode::Closed,
            ..TrainConfig::default()
        };
        check_elbo_gradients(&lr);
        check_elbo_gradients(&TrainConfig {
            kl_reduction: KlReduction::Sum,
            ..lr.clone()
        });
        check_elbo_gradients(&TrainConfig {
            kl: KlMode::Closed,
            ..TrainConfig::default()
        });
    }

    fn check_elbo_gradients(cfg: &TrainConfig) {
        let mut model = Lenet::init(3);
        for m in &mut model.mu {
            *m *= 3.0;
        }
        for r in &mut model.rho {
            *r += 5.0; // σ ≈ 0.13: the noise matters
        }
        let n = 20; // two shards: the shard sum is checked too
        let mut x = vec![0.0f32; n * IN];
        Rng::new(4).fill_normal(&mut x);
        let labels: Vec<u8> = (0..n as u8).map(|i| i % 10).collect();
        let fill = |i: usize, out: &mut [f32]| out.copy_from_slice(&x[i * IN..(i + 1) * IN]);
        let klw = 0.05; // large enough that the KL's gradients count
        let mut e = Engine::new(2, n, rayon::current_num_threads()).with_options(cfg);
        let kl = e.sample(&model, 9, 0, false);
        e.gradients(&model, n, &labels, klw, kl, &fill);
        let (gmu, grho) = (e.gmu.clone(), e.grho.clone());
        let mut loss = |m: &Lenet| -> f64 {
            let kl = e.sample(m, 9, 0, true);
            let l = e.gradients(m, n, &labels, klw, kl, &fill);
            l.ce + klw as f64 * l.kl
        };
        let mut checked = 0;
        for l in crate::nn::lenet::LAYERS {
            for (which, g) in [("mu", &gmu), ("rho", &grho)] {
                let mut idx: Vec<usize> = (l.w..l.end).collect();
                idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
                let mut picks = idx[..2].to_vec();
                picks.push(
                    (l.b..l.end)
                        .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
                        .unwrap(),
                );
                for i in picks {
                    // f32 rounding favours a large step, ReLU kinks a small one: accept the
                    // analytic value when one of four steps agrees with it.
                    let an = g[i] as f64;
                    let fds: Vec<f64> = [1e-2f32, 3e-3, 1e-3, 3e-4]
                        .iter()
                        .map(|&h| {
                            let (mut a, mut b) = (model.clone(), model.clone());
                            let (pa, pb) = if which == "mu" {
                                (&mut a.mu, &mut b.mu)
                            } else {
                                (&mut a.rho, &mut b.rho)
                            };
                            pa[i] += h;
                            pb[i] -= h;
                            (loss(&a) - loss(&b)) / (2.0 * h as f64)
                        })
                        .collect();
                    assert!(
                        fds.iter()
                            .any(|fd| (an - fd).abs() <= 0.01 * fd.abs() + 5e-4),
                        "{cfg:?}: {} {which}[{i}]: analytic {an} vs finite differences {fds:?}",
                        l.name
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 30);
    }

    fn small_run(threads: usize, n: usize, epochs: usize) -> (Lenet, Vec<StepInfo>) {
        small_run_with(threads, n, epochs, &TrainConfig::default())
    }

    fn small_run_with(
        threads: usize,
        n: usize,
        epochs: usize,
        base: &TrainConfig,
    ) -> (Lenet, Vec<StepInfo>) {
        let (x, y) = mnist("train", n);
        let cfg = TrainConfig {
            epochs,
            batch_size: 64,
            seed: 5,
            threads,
            ..base.clone()
        };
        let mut model = Lenet::init(cfg.seed);
        let mut steps = vec![];
        train(&mut model, &x, &y, &cfg, &mut |s| steps.push(s)).unwrap();
        (model, steps)
    }

    #[test]
    fn same_seed_same_parameters_for_one_or_two_threads() {
        let (a, sa) = small_run(1, 300, 1);
        let (b, sb) = small_run(2, 300, 1);
        assert_eq!(sa.len(), 5); // 4 full batches and the partial one of 44
        assert_eq!(sa, sb);
        assert!(
            a.mu == b.mu && a.rho == b.rho,
            "parameters differ between 1 and 2 threads"
        );
        assert_ne!(a.mu, Lenet::init(5).mu);
    }

    /// Local reparameterisation (one sample, closed KL): the same parameters and steps for 1 and
    /// 2 threads, and different from the default recipe's.
    #[test]
    fn local_reparam_is_the_same_for_one_or_two_threads() {
        let cfg = TrainConfig {
            local_reparam: true,
            kl: KlMode::Closed,
            train_samples: 1,
            lr_schedule: LrSchedule::OneCycle,
            kl_anneal_epochs: 1,
            ..TrainConfig::default()
        };
        let (a, sa) = small_run_with(1, 300, 2, &cfg);
        let (b, sb) = small_run_with(2, 300, 2, &cfg);
        assert_eq!(sa.len(), 10);
        assert_eq!(sa, sb);
        assert!(a == b, "parameters differ between 1 and 2 threads");
        let (d, _) = small_run(2, 300, 2);
        assert_ne!(a.mu, d.mu);
        // The KL is the closed form (annealed from 0: the first step's loss is its CE).
        assert_eq!(sa[0].loss, sa[0].ce);
        assert!(sa.iter().all(|s| s.kl > 0.0 && s.loss.is_finite()));
    }

    /// A short run with local reparameterisation, closed KL summed and weighted 1/60000 (as on
    /// the full set), and one-cycle learns as well as the default.
    #[test]
    fn local_reparam_training_lowers_the_loss() {
        let cfg = TrainConfig {
            local_reparam: true,
            kl: KlMode::Closed,
            kl_reduction: KlReduction::Sum,
            kl_weight: 1.0 / 60000.0,
            lr: 3e-3,
            train_samples: 1,
            lr_schedule: LrSchedule::OneCycle,
            ..TrainConfig::default()
        };
        let (_, steps) = small_run_with(0, 1024, 3, &cfg);
        assert_eq!(steps.len(), 48);
        let first = steps[0].ce;
        let last: f32 = steps[40..].iter().map(|s| s.ce).sum::<f32>() / 8.0;
        let acc: f32 = steps[40..].iter().map(|s| s.batch_accuracy).sum::<f32>() / 8.0;
        assert!(first > 2.0, "first CE {first}");
        assert!(last < 0.75 * first, "CE {first} → {last}");
        assert!(acc > 0.3, "accuracy {acc}");
        assert!(steps
            .iter()
            .all(|s| (s.loss - s.ce - s.kl / 60000.0).abs() < 1e-4 * (1.0 + s.loss.abs())));
    }

    #[test]
    fn lr_schedules_at_known_steps() {
        let lr = 3e-3f32;
        let near = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-6 * b.abs() + 1e-12;
        for t in [0, 7, 99, 1000] {
            assert_eq!(LrSchedule::Constant.at(lr, t, 100), lr);
        }
        let l = lr as f64;
        let cos = |t, total| LrSchedule::Cosine.at(lr, t, total);
        assert!(near(cos(0, 100), l));
        assert!(near(cos(25, 100), l * 0.5 * (1.0 + 0.5f64.sqrt())));
        assert!(near(cos(50, 100), l * 0.5));
        assert!(near(
            cos(99, 100),
            l * 0.5 * (1.0 + (std::f64::consts::PI * 0.99).cos())
        ));
        let one = |t| LrSchedule::OneCycle.at(lr, t, 100);
        assert!(near(one(0), l / 25.0));
        assert!(near(one(15), l / 25.0 + (l - l / 25.0) * 0.5));
        assert!(near(one(30), l));
        assert!(near(one(65), l / 1e4 + (l - l / 1e4) * 0.5));
        assert!(near(one(100), l / 1e4));
        let v: Vec<f32> = (0..100).map(one).collect();
        assert!(v[..31].windows(2).all(|w| w[0] < w[1]), "warm-up rises");
        assert!(v[30..].windows(2).all(|w| w[0] > w[1]), "then falls");
    }

    #[test]
    fn kl_weight_anneals_linearly_per_step() {
        let cfg = TrainConfig {
            kl_weight: 0.02,
            kl_anneal_epochs: 2,
            ..TrainConfig::default()
        };
        assert_eq!(cfg.kl_weight_at(0, 10), 0.0);
        assert!((cfg.kl_weight_at(5, 10) - 0.005).abs() < 1e-9);
        assert!((cfg.kl_weight_at(19, 10) - 0.019).abs() < 1e-9);
        assert_eq!(cfg.kl_weight_at(20, 10), 0.02);
        assert_eq!(cfg.kl_weight_at(500, 10), 0.02);
        let off = TrainConfig::default();
        assert_eq!(off.kl_weight_at(0, 10), off.kl_weight);
    }

    #[test]
    fn kl_weight_parses_numbers_and_fractions() {
        assert_eq!(parse_kl_weight("2e-5"), Ok(2e-5));
        assert_eq!(parse_kl_weight("1/60000"), Ok(1.0 / 60000.0));
        assert_eq!(parse_kl_weight(" 3 / 4 "), Ok(0.75));
        assert_eq!(parse_kl_weight("0"), Ok(0.0));
        for (bad, why) in [
            ("1/0", "division by zero"),
            ("-1/5", "must not be negative"),
            ("a/b", "not a number"),
            ("1/2/3", "not a number"),
            ("inf", "finite"),
            ("", "not a number"),
        ] {
            let e = parse_kl_weight(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn inconsistent_options_are_refused() {
        let mut m = Lenet::init(0);
        let cfg = TrainConfig {
            local_reparam: true,
            ..TrainConfig::default()
        };
        let e = train(&mut m, &[0; 784], &[1], &cfg, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("--kl closed"), "{e}");
        let closed = TrainConfig {
            kl: KlMode::Closed,
            ..TrainConfig::default()
        };
        assert!(closed.check_options(&PRIOR).is_ok());
        let mixture = Prior { pi: 0.5, ..PRIOR };
        let e = closed.check_options(&mixture).unwrap_err();
        assert!(e.to_string().contains("mixture"), "{e}");
        assert!(TrainConfig::default().check_options(&mixture).is_ok());
        assert_eq!(KlMode::resolve(None, true), KlMode::Closed);
        assert_eq!(KlMode::resolve(None, false), KlMode::Mc);
        assert_eq!(KlMode::resolve(Some(KlMode::Mc), true), KlMode::Mc);
    }

    #[test]
    fn small_training_run_lowers_the_loss() {
        let (_, steps) = small_run(0, 1024, 3);
        assert_eq!(steps.len(), 48);
        let first = steps[0].ce;
        let last: f32 = steps[40..].iter().map(|s| s.ce).sum::<f32>() / 8.0;
        let acc: f32 = steps[40..].iter().map(|s| s.batch_accuracy).sum::<f32>() / 8.0;
        assert!(first > 2.0, "first CE {first}");
        assert!(last < 0.75 * first, "CE {first} → {last}");
        assert!(acc > 0.3, "accuracy {acc}");
        assert!(steps
            .iter()
            .all(|s| s.kl > 0.0 && (s.loss - s.ce - s.kl / 50_000.0).abs() < 1e-4));
    }

    /// Every saved state (mid-epoch every 2 steps, and at each epoch's end), resumed in a fresh
    /// run, ends with the parameters and step losses of the uninterrupted run, bit for bit.
    #[test]
    fn resuming_from_any_checkpoint_is_bit_exact() {
        check_resume_bit_exact(&TrainConfig::default());
    }

    /// The same with a learning-rate schedule, KL annealing, local reparameterisation and the
    /// closed-form KL summed (and with the schedule alone on the default ELBO).
    #[test]
    fn resuming_with_schedules_and_options_is_bit_exact() {
        check_resume_bit_exact(&TrainConfig {
            local_reparam: true,
            kl: KlMode::Closed,
            kl_reduction: KlReduction::Sum,
            kl_weight: 1.0 / 300.0,
            kl_anneal_epochs: 1,
            lr_schedule: LrSchedule::OneCycle,
            train_samples: 2,
            ..TrainConfig::default()
        });
        check_resume_bit_exact(&TrainConfig {
            lr_schedule: LrSchedule::Cosine,
            ..TrainConfig::default()
        });
    }

    fn check_resume_bit_exact(base: &TrainConfig) {
        let (x, y) = mnist("train", 300);
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 64,
            seed: 11,
            threads: 2,
            ..base.clone()
        };
        let mut saved: Vec<(Lenet, TrainState)> = vec![];
        let mut save = |m: &Lenet, s: &TrainState| {
            saved.push((m.clone(), s.clone()));
            Ok(())
        };
        let mut full = Lenet::init(cfg.seed);
        let mut losses = vec![];
        let ck = Checkpoints {
            resume: None,
            every_steps: 2,
            save: &mut save,
            inject_nan: None,
        };
        let whole =
            train_resumable(&mut full, &x, &y, &cfg, ck, &mut |s| losses.push(s.loss)).unwrap();
        let at: Vec<(usize, usize)> = saved.iter().map(|(_, s)| (s.epoch, s.step)).collect();
        assert_eq!(at, [(0, 2), (0, 4), (1, 0), (1, 2), (1, 4), (2, 0)]);
        for (model, state) in saved {
            let g = state.global_step;
            let mut m = model;
            let mut rest = vec![];
            let mut nothing = |_: &Lenet, _: &TrainState| Ok(());
            let ck = Checkpoints {
                resume: Some(state),
                every_steps: 0,
                save: &mut nothing,
                inject_nan: None,
            };
            let cfg1 = TrainConfig {
                threads: 1,
                ..cfg.clone()
            };
            let sum =
                train_resumable(&mut m, &x, &y, &cfg1, ck, &mut |s| rest.push(s.loss)).unwrap();
            assert_eq!(rest, losses[g..], "losses after resuming at step {g}");
            assert!(m == full, "parameters differ after resuming at step {g}");
            assert_eq!(sum.last_epoch_loss, whole.last_epoch_loss);
            assert_eq!(sum.steps, whole.steps);
        }
    }

    /// A NaN gradient stops training at its step, names its layer, leaves the parameters as
    /// after the previous step, and no later state is saved.
    #[test]
    fn a_nan_gradient_stops_before_the_update() {
        let (x, y) = mnist("train", 300);
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 64,
            seed: 2,
            ..TrainConfig::default()
        };
        let run = |inject: (usize, usize)| {
            let mut saved = vec![];
            let mut save = |_: &Lenet, s: &TrainState| {
                saved.push(s.global_step);
                Ok(())
            };
            let mut m = Lenet::init(cfg.seed);
            let mut steps = 0;
            let ck = Checkpoints {
                resume: None,
                every_steps: 0,
                save: &mut save,
                inject_nan: Some(inject),
            };
            let e = train_resumable(&mut m, &x, &y, &cfg, ck, &mut |_| steps += 1).unwrap_err();
            (e, m, steps, saved)
        };
        let (e, m, steps, saved) = run((7, 2));
        assert_eq!(
            e,
            TrainError::NonFinite {
                step: 7,
                what: "ρ gradient",
                layer: Some("fc1")
            }
        );
        assert_eq!(
            e.to_string(),
            "training diverged at step 7: non-finite ρ gradient in layer fc1"
        );
        assert_eq!(steps, 7);
        assert_eq!(saved, [5], "only the end of epoch 1 was saved");
        let (e0, _, _, _) = run((7, 0));
        assert!(e0.to_string().ends_with("in layer conv1"), "{e0}");
        // The parameters are those after 7 good steps of a clean run.
        let mut after7 = None;
        let mut save = |m: &Lenet, s: &TrainState| {
            if s.global_step == 7 {
                after7 = Some(m.clone());
            }
            Ok(())
        };
        let mut clean = Lenet::init(cfg.seed);
        let ck = Checkpoints {
            resume: None,
            every_steps: 1,
            save: &mut save,
            inject_nan: None,
        };
        train_resumable(&mut clean, &x, &y, &cfg, ck, &mut |_| {}).unwrap();
        assert!(
            after7.as_ref() == Some(&m),
            "the parameters changed at the failing step"
        );
        assert!(m.mu.iter().chain(&m.rho).all(|v| v.is_finite()));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let mut m = Lenet::init(0);
        let cfg = TrainConfig::default();
        let e = train(&mut m, &[0; 784 * 2], &[1], &cfg, &mut |_| {}).unwrap_err();
        assert!(matches!(e, TrainError::Invalid(_)));
        let e = train(&mut m, &[0; 784], &[10], &cfg, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("label 10"));
        let mut bad = Lenet::init(0);
        bad.rho[40_000] = f32::NAN;
        let e = train(&mut bad, &[0; 784], &[1], &cfg, &mut |_| {}).unwrap_err();
        assert!(matches!(e, TrainError::NonFinite { step: 0, .. }), "{e}");
    }
}
