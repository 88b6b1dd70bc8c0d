//! The training loop: epochs of shuffled, augmented batches, one engine step each, Adam, the
//! checks for non-finite values and the checkpoints.

use std::time::Instant;

use rayon::prelude::*;

use super::adam::{apply_adam, Adam};
use super::config::TrainConfig;
use super::engine::Engine;
use super::{StepInfo, TrainError, TrainState, TrainSummary};
use crate::data::augment::crop_normalized;
use crate::error::TrainerError;
use crate::eval::monte_carlo::norm_lut;
use crate::model::Lenet;
use crate::nn::bayes::PRIOR;
use crate::nn::lenet::{layer_of, IN, PARAMS};
use crate::nn::parallel::thread_pool;
use crate::nn::rng::{purpose, Rng};

/// Checkpointing and fault injection for [`train_resumable`].
pub struct Checkpoints<'a> {
    /// Continue from this state (with the model as it was saved with it).
    pub resume: Option<TrainState>,
    /// Save after every this many steps of an epoch too (0: only at the end of each epoch).
    pub every_steps: usize,
    /// Saves the model and the state; an error stops training.
    pub save: &'a mut dyn FnMut(&Lenet, &TrainState) -> Result<(), TrainerError>,
    /// Fault injection for tests: make the ρ gradient of this global step NaN in this layer
    /// (an index into [`crate::nn::lenet::LAYERS`]).
    pub inject_nan: Option<(usize, usize)>,
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
    let pool = thread_pool(Some(cfg.threads))?;
    let data = Data {
        images,
        labels,
        cfg,
    };
    run_epochs(&pool, model, data, checkpoints, on_step)
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

/// The images, labels and configuration of a run, checked.
struct Data<'a> {
    images: &'a [u8],
    labels: &'a [u8],
    cfg: &'a TrainConfig,
}

/// Where a run stands between steps: the global step, Adam of μ and of ρ, and the loss and
/// batch-accuracy sums of the current epoch.
struct Position {
    global: usize,
    adam_mu: Adam,
    adam_rho: Adam,
    loss_sum: f64,
    acc_sum: f64,
}

impl Position {
    /// The position of `resume` (with its epoch and step), or the start of a run.
    fn start(resume: Option<TrainState>, lr: f32) -> (usize, usize, Position) {
        match resume {
            Some(s) => (
                s.epoch,
                s.step,
                Position {
                    global: s.global_step,
                    adam_mu: Adam::restore(lr, s.adam_mu),
                    adam_rho: Adam::restore(lr, s.adam_rho),
                    loss_sum: s.epoch_loss_sum,
                    acc_sum: s.epoch_accuracy_sum,
                },
            ),
            None => (
                0,
                0,
                Position {
                    global: 0,
                    adam_mu: Adam::new(PARAMS, lr),
                    adam_rho: Adam::new(PARAMS, lr),
                    loss_sum: 0.0,
                    acc_sum: 0.0,
                },
            ),
        }
    }

    /// The state to save at `step` of `epoch` (the next epoch's step 0 at its end).
    fn state(&self, epoch: usize, step: usize) -> TrainState {
        TrainState {
            epoch,
            step,
            global_step: self.global,
            epoch_loss_sum: self.loss_sum,
            epoch_accuracy_sum: self.acc_sum,
            adam_mu: self.adam_mu.state(),
            adam_rho: self.adam_rho.state(),
        }
    }
}

/// The order of the images in `epoch` and each one's crop offset, from the (seed, epoch)
/// streams.
fn plan_epoch(cfg: &TrainConfig, epoch: usize, order: &mut [u32], crops: &mut [(u8, u8)]) {
    order
        .iter_mut()
        .enumerate()
        .for_each(|(i, o)| *o = i as u32);
    Rng::stream(cfg.seed, &[purpose::SHUFFLE, epoch as u64]).shuffle(order);
    let mut rng = Rng::stream(cfg.seed, &[purpose::AUGMENT, epoch as u64]);
    for c in crops {
        *c = (
            rng.below(2 * cfg.crop_pad + 1) as u8,
            rng.below(2 * cfg.crop_pad + 1) as u8,
        );
    }
}

/// The first non-finite μ or ρ after an update, as (what, layer).
fn nonfinite_parameter(model: &Lenet) -> Option<(&'static str, &'static str)> {
    let bad = |v: &[f32]| v.par_iter().position_first(|p| !p.is_finite());
    bad(&model.mu)
        .map(|i| ("μ after the Adam update", layer_of(i).name))
        .or_else(|| bad(&model.rho).map(|i| ("ρ after the Adam update", layer_of(i).name)))
}

/// Every epoch from the checkpoint's (or the first) to the last, in `pool`.
fn run_epochs(
    pool: &rayon::ThreadPool,
    model: &mut Lenet,
    data: Data<'_>,
    checkpoints: Checkpoints<'_>,
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<TrainSummary, TrainError> {
    let start = Instant::now();
    let Data {
        images,
        labels,
        cfg,
    } = data;
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
    let (start_epoch, start_step, mut pos) = Position::start(resume, cfg.lr);
    let lut = norm_lut();
    let mut order: Vec<u32> = vec![0; n];
    let mut crops = vec![(0u8, 0u8); n];
    let mut batch_labels = vec![0u8; batch];
    for epoch in start_epoch..cfg.epochs {
        plan_epoch(cfg, epoch, &mut order, &mut crops);
        let first = if epoch == start_epoch { start_step } else { 0 };
        if first == 0 {
            (pos.loss_sum, pos.acc_sum) = (0.0, 0.0);
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
            let global = pos.global;
            let kl_weight = cfg.kl_weight_at(global, steps_per_epoch);
            let lr = cfg.lr_schedule.at(cfg.lr, global, total_steps);
            (pos.adam_mu.lr, pos.adam_rho.lr) = (lr, lr);
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
            let diverged = |what, layer| TrainError::NonFinite {
                step: global,
                what,
                layer,
            };
            if !loss.is_finite() {
                let layer = pool.install(|| engine.nonfinite_weights().or(bad.map(|b| b.1)));
                return Err(diverged("loss", layer));
            }
            if let Some((what, layer)) = bad {
                return Err(diverged(what, Some(layer)));
            }
            let bad_param = pool.install(|| {
                apply_adam(&mut pos.adam_mu, &mut model.mu, &engine.gmu);
                apply_adam(&mut pos.adam_rho, &mut model.rho, &engine.grho);
                nonfinite_parameter(model)
            });
            if let Some((what, layer)) = bad_param {
                return Err(diverged(what, Some(layer)));
            }
            let acc = l.correct as f64 / (m * cfg.train_samples) as f64;
            pos.loss_sum += loss;
            pos.acc_sum += acc;
            on_step(StepInfo {
                epoch,
                step,
                steps_per_epoch,
                loss: loss as f32,
                ce: l.ce as f32,
                kl: l.kl as f32,
                batch_accuracy: acc as f32,
            });
            pos.global += 1;
            let end_of_epoch = step + 1 == steps_per_epoch;
            if end_of_epoch || (every_steps > 0 && (step + 1) % every_steps == 0) {
                let state = if end_of_epoch {
                    pos.state(epoch + 1, 0)
                } else {
                    pos.state(epoch, step + 1)
                };
                save(model, &state).map_err(|e| TrainError::Checkpoint(Box::new(e)))?;
            }
        }
    }
    Ok(TrainSummary {
        steps: pos.global,
        seconds: start.elapsed().as_secs_f64(),
        last_epoch_loss: (pos.loss_sum / steps_per_epoch as f64) as f32,
        last_epoch_accuracy: (pos.acc_sum / steps_per_epoch as f64) as f32,
    })
}
