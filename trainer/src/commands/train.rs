//! `trainer train`: load the data, train with checkpoints, optionally scale the temperature,
//! evaluate with Monte Carlo sampling, choose the OOD threshold, and write every output file
//! into `--out`.

use std::path::Path;
use std::time::Instant;

use tinyvi::arch::IMAGE_LEN;

use super::export_samples::write_samples;
use super::{compute_metrics, files, print_written, write_reports, Evaluated, TestSets};
use crate::cli::{recipe, TrainArgs};
use crate::data::idx::Dataset;
use crate::data::mnist::{load_fashion_test, load_mnist};
use crate::error::{Result, TrainerError};
use crate::eval::monte_carlo::{evaluate, mc_logits};
use crate::eval::threshold::{ood_threshold, OOD_RECALL, THRESHOLD_IMAGES};
use crate::model::{temperature, Lenet};
use crate::nn::parallel::thread_pool;
use crate::report;
use crate::train::checkpoint::{self, Checkpoint, Settings};
use crate::train::{train_resumable, Checkpoints, TrainConfig, TrainState};

/// `trainer train`: the configured recipe end to end.
pub fn run_train(args: &TrainArgs) -> Result<()> {
    report::create_out_dir(&args.out)?;
    let mut cfg = recipe::resolve(args);
    let data = Data::load(args, &cfg)?;
    let pool = thread_pool(args.threads)?;
    cfg.threads = pool.current_num_threads();
    print_settings(args, &cfg, data.train.len());

    let (mut model, train_seconds) = train_with_checkpoints(args, &cfg, &data.train)?;
    let temperature = cfg
        .temperature_scaling
        .then(|| scale_temperature(&pool, &mut model, &data.calibration, args));

    let tests = data.tests;
    let started = Instant::now();
    let evaluated = pool.install(|| Evaluated {
        mnist: evaluate(&model, &tests.mnist.images, args.eval_samples, args.seed),
        fashion: tests
            .fashion
            .as_ref()
            .map(|f| evaluate(&model, &f.images, args.eval_samples, args.seed)),
    });
    let eval_seconds = started.elapsed().as_secs_f64();
    let images = tests.mnist.len() + tests.fashion.as_ref().map_or(0, Dataset::len);
    outln!(
        "evaluated {images} test images × {} Monte Carlo samples in {eval_seconds:.2} s",
        args.eval_samples
    );
    let threshold = pool.install(|| choose_threshold(&model, &data.calibration, args));

    let mut m = compute_metrics(&tests, &evaluated)?;
    m.epochs = cfg.epochs;
    m.seed = args.seed;
    m.eval_samples = args.eval_samples;
    m.train_seconds = train_seconds;
    m.eval_seconds = eval_seconds;
    m.train_images = data.train.len();
    m.temperature = temperature;

    let model_bytes =
        crate::model::export::try_export_as(&model, Some(threshold), args.export_precision.into())
            .map_err(|e| TrainerError::invalid("export", e.to_string()))?;
    report::write_atomic(&args.out.join(files::MODEL), &model_bytes)?;
    write_samples(&args.out.join(files::SAMPLES), &tests)?;
    write_reports(&args.out, &tests, &evaluated, &m)?;
    report::print_metrics_table(&m);
    print_written(&args.out, true);
    Ok(())
}

/// The images of a run: those trained on, those that choose the OOD threshold and the
/// temperature, and the test sets.
struct Data {
    train: Dataset,
    calibration: Calibration,
    tests: TestSets,
}

/// Training images the OOD threshold and the temperature are chosen on.
struct Calibration {
    images: Vec<u8>,
    labels: Vec<u8>,
    /// Whether the model never saw them (else they are the last training images, seen once:
    /// a slightly optimistic threshold).
    held_out: bool,
}

impl Data {
    /// Loads MNIST (and Fashion-MNIST test when installed) and cuts the training set by
    /// `--holdout` and `--limit`.
    fn load(args: &TrainArgs, cfg: &TrainConfig) -> Result<Data> {
        let (mut train, mnist) = load_mnist(&args.data)?;
        let fashion = load_fashion_test(&args.data)?;
        let total = train.len();
        if cfg.holdout >= total {
            return Err(TrainerError::invalid(
                "--holdout",
                format!(
                    "{} leaves no training image (the training set has {total})",
                    cfg.holdout
                ),
            ));
        }
        if cfg.temperature_scaling && cfg.holdout == 0 {
            return Err(TrainerError::invalid(
                "--temperature-scaling",
                "needs held-out images to choose the temperature: add --holdout N (e.g. 5000)",
            ));
        }
        let train_end = total - cfg.holdout;
        let limit = args.limit.unwrap_or(train_end).min(train_end);
        // The --holdout images, else those --limit leaves out, else the last training images.
        let (start, held_out) = if cfg.holdout > 0 {
            (train_end, true)
        } else {
            let start = total - THRESHOLD_IMAGES.min(total);
            (start, limit <= start)
        };
        let calibration = Calibration {
            images: train.images[start * IMAGE_LEN..total * IMAGE_LEN].to_vec(),
            labels: train.labels[start..total].to_vec(),
            held_out,
        };
        train.truncate(limit);
        Ok(Data {
            train,
            calibration,
            tests: TestSets { mnist, fashion },
        })
    }
}

/// Prints the run's settings in one line.
fn print_settings(args: &TrainArgs, cfg: &TrainConfig, images: usize) {
    let anneal = if cfg.kl_anneal_epochs > 0 {
        format!(" annealed over {} epoch(s)", cfg.kl_anneal_epochs)
    } else {
        String::new()
    };
    let local = if cfg.local_reparam {
        " (local reparameterisation in fc1-fc3)"
    } else {
        ""
    };
    outln!(
        "training the Bayesian LeNet on {images} MNIST images (recipe {}): {} epoch(s), batch {}, Adam lr {} ({}), KL {} {} weight {}{anneal}, {} samples per step{local}, crop padding {}, seed {}, {} threads",
        args.recipe.name(),
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.lr_schedule.name(),
        cfg.kl.name(),
        cfg.kl_reduction.name(),
        cfg.kl_weight,
        cfg.train_samples,
        cfg.crop_pad,
        cfg.seed,
        cfg.threads
    );
}

/// The model and the state to start from: the checkpoint in `--out` with `--resume`, else a
/// fresh model.
fn start(
    args: &TrainArgs,
    cfg: &TrainConfig,
    settings: &Settings,
    path: &Path,
) -> Result<(Lenet, Option<TrainState>)> {
    if !args.resume {
        return Ok((Lenet::init(args.seed), None));
    }
    let c = Checkpoint::load_for(path, settings)?;
    remove_stale_temporaries(&args.out);
    let at = if c.state.step == 0 {
        format!("after epoch {}", c.state.epoch)
    } else {
        format!("at epoch {} step {}", c.state.epoch + 1, c.state.step)
    };
    if c.state.epoch > cfg.epochs || (c.state.epoch == cfg.epochs && c.state.step > 0) {
        return Err(TrainerError::invalid(
            "--resume",
            format!("{} is {at}, past --epochs {}", path.display(), cfg.epochs),
        ));
    }
    outln!(
        "resuming from {} {at} ({} steps done)",
        path.display(),
        c.state.global_step
    );
    Ok((c.model, Some(c.state)))
}

/// Trains on `train` with a progress bar, saving a checkpoint after every epoch (and every
/// `--checkpoint-steps` steps); returns the model and the seconds training took. A failure
/// names the last good checkpoint.
fn train_with_checkpoints(
    args: &TrainArgs,
    cfg: &TrainConfig,
    train: &Dataset,
) -> Result<(Lenet, f64)> {
    let settings = Settings::new(cfg, &train.images, &train.labels);
    let path = args.out.join(checkpoint::FILE);
    let (mut model, resume) = start(args, cfg, &settings, &path)?;
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size.min(train.len()));
    let done = resume.as_ref().map_or(0, |s| s.global_step);
    let bar = report::progress(
        (steps_per_epoch * cfg.epochs - done) as u64,
        "train",
        args.quiet,
    );
    let (mut loss_sum, mut acc_sum, mut seen) = (0.0f64, 0.0f64, 0usize);
    let mut saved: Option<(usize, usize)> = resume.as_ref().map(|s| (s.epoch, s.step));
    let mut save = |model: &Lenet, state: &TrainState| -> Result<()> {
        Checkpoint {
            settings: settings.clone(),
            model: model.clone(),
            state: state.clone(),
        }
        .save(&path)?;
        saved = Some((state.epoch, state.step));
        Ok(())
    };
    let checkpoints = Checkpoints {
        resume,
        every_steps: args.checkpoint_steps.unwrap_or(0),
        save: &mut save,
        inject_nan: args.inject_nan,
    };
    let started = Instant::now();
    let summary = train_resumable(
        &mut model,
        &train.images,
        &train.labels,
        cfg,
        checkpoints,
        &mut |s| {
            if s.step == 0 || seen == 0 {
                (loss_sum, acc_sum, seen) = (0.0, 0.0, 0);
            }
            loss_sum += f64::from(s.loss);
            acc_sum += f64::from(s.batch_accuracy);
            seen += 1;
            bar.set_message(format!(
                "epoch {}/{} loss {:.4} acc {:.4}",
                s.epoch + 1,
                cfg.epochs,
                loss_sum / seen as f64,
                acc_sum / seen as f64
            ));
            bar.inc(1);
        },
    )
    .map_err(|source| TrainerError::Training {
        source,
        kept: kept_checkpoint(&path, saved),
    })?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish();
    outln!(
        "trained {} steps in {seconds:.2} s; last epoch: loss {:.4}, running accuracy {:.4}",
        summary.steps,
        summary.last_epoch_loss,
        summary.last_epoch_accuracy
    );
    Ok((model, seconds))
}

/// The note that a failed run keeps its last good checkpoint (empty when there is none).
fn kept_checkpoint(path: &Path, saved: Option<(usize, usize)>) -> String {
    match saved {
        Some((epoch, 0)) => format!(
            "; the last good checkpoint ({}, after epoch {epoch}) is kept",
            path.display()
        ),
        Some((epoch, step)) => format!(
            "; the last good checkpoint ({}, epoch {} step {step}) is kept",
            path.display(),
            epoch + 1
        ),
        None => String::new(),
    }
}

/// Fits the temperature on the calibration images and folds it into fc3; returns it.
fn scale_temperature(
    pool: &rayon::ThreadPool,
    model: &mut Lenet,
    calibration: &Calibration,
    args: &TrainArgs,
) -> f64 {
    let started = Instant::now();
    let (images, labels, samples) = (&calibration.images, &calibration.labels, args.eval_samples);
    let logits = pool.install(|| mc_logits(model, images, samples, args.seed ^ 0x7E4D));
    let t = temperature::fit_temperature(&logits, labels, samples);
    let before = temperature::nll(&logits, labels, samples, 1.0);
    let after = temperature::nll(&logits, labels, samples, t);
    temperature::fold_temperature(model, t);
    outln!(
        "temperature scaling: T = {t:.4} on {} held-out images (their NLL {before:.4} -> {after:.4}), folded into fc3, {:.2} s",
        labels.len(),
        started.elapsed().as_secs_f64()
    );
    t
}

/// The OOD threshold stored in the model, chosen on the calibration images.
fn choose_threshold(
    model: &Lenet,
    calibration: &Calibration,
    args: &TrainArgs,
) -> tinyvi::format::OodThreshold {
    let outputs = evaluate(
        model,
        &calibration.images,
        args.eval_samples,
        args.seed ^ 0x5EED,
    );
    let threshold = ood_threshold(&outputs);
    outln!(
        "OOD threshold: predictive entropy > {:.4} nats (accepts {:.0}% of {} {} training images)",
        threshold.value,
        OOD_RECALL * 100.0,
        outputs.probs.len(),
        if calibration.held_out {
            "held-out"
        } else {
            "seen"
        }
    );
    threshold
}

/// Removes the temporary files (`.NAME.XXXXXX.tmp`) that a killed run left behind while
/// writing an output of `train` (never read; the outputs themselves are whole or absent).
fn remove_stale_temporaries(out: &Path) {
    let names = [
        checkpoint::FILE,
        files::MODEL,
        files::METRICS,
        files::PREDICTIONS,
        files::RELIABILITY,
        files::UNCERTAINTY,
        files::SAMPLES,
    ];
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours =
            name.ends_with(".tmp") && names.iter().any(|n| name.starts_with(&format!(".{n}.")));
        if ours && e.file_type().is_ok_and(|t| t.is_file()) {
            // Best effort: a leftover that cannot be removed is harmless.
            let _ = std::fs::remove_file(e.path());
        }
    }
}
