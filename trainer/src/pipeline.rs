//! The `train` and `eval` commands end to end: load the data, train (or load an exported
//! model), evaluate with Monte Carlo sampling, and write every output file into `--out`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use tinyvi::arch::{CLASSES, IMAGE_LEN};
use tinyvi::format::{OodScore, OodThreshold};
use tinyvi::infer::{Config, LeNet, Mode, Scratch};
use tinyvi::rng::image_seed;

use crate::calibrate;
use crate::checkpoint::{self, Checkpoint, Settings};
use crate::cli::{EvalArgs, EvalMode, TrainArgs};
use crate::data::idx::Dataset;
use crate::data::mnist::{load_fashion_test, load_mnist};
use crate::error::{Result, TrainerError};
use crate::evaluate::{evaluate, mc_logits, McOutputs};
use crate::metrics::{self, Metrics, Predictions};
use crate::model::Lenet;
use crate::recipe;
use crate::report;
use crate::train::{train_resumable, Checkpoints, TrainConfig, TrainState};

/// Images of MNIST test and of Fashion-MNIST test written to `samples.bin` for the firmware.
pub const DEVICE_SAMPLES_PER_SET: usize = 32;
/// Share of in-distribution images the stored OOD threshold accepts.
pub const OOD_RECALL: f64 = 0.95;
/// Training images used to choose the OOD threshold.
pub const THRESHOLD_IMAGES: usize = 2_000;

/// Output file names inside `--out`.
pub mod files {
    /// The exported model.
    pub const MODEL: &str = "model.postcard";
    /// Every metric as one flat JSON object.
    pub const METRICS: &str = "metrics.json";
    /// `p̄` of every test image.
    pub const PREDICTIONS: &str = "predictions.csv";
    /// Reliability diagram.
    pub const RELIABILITY: &str = "reliability.png";
    /// Entropy and MI histograms, in vs out of distribution.
    pub const UNCERTAINTY: &str = "uncertainty.png";
    /// Sample images for the firmware.
    pub const SAMPLES: &str = "samples.bin";
}

/// A rayon pool of `threads` workers (all cores when `None`).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| TrainerError::invalid("--threads", e.to_string()))
}

/// The test sets: MNIST test and, when installed, Fashion-MNIST test.
struct TestSets {
    mnist: Dataset,
    fashion: Option<Dataset>,
}

/// Evaluation outputs of both test sets.
struct Evaluated {
    mnist: McOutputs,
    fashion: Option<McOutputs>,
}

/// `trainer train`: the recipe of DESIGN §3 end to end.
pub fn run_train(args: &TrainArgs) -> Result<()> {
    report::create_out_dir(&args.out)?;
    let h = recipe::resolve(args);
    let (mut train_set, mnist_test) = load_mnist(&args.data)?;
    let fashion = load_fashion_test(&args.data)?;
    let total_train = train_set.len();
    if h.holdout >= total_train {
        return Err(TrainerError::invalid(
            "--holdout",
            format!(
                "{} leaves no training image (the training set has {total_train})",
                h.holdout
            ),
        ));
    }
    if h.temperature_scaling && h.holdout == 0 {
        return Err(TrainerError::invalid(
            "--temperature-scaling",
            "needs held-out images to choose the temperature: add --holdout N (e.g. 5000)",
        ));
    }
    let train_end = total_train - h.holdout;
    let limit = args.limit.unwrap_or(train_end).min(train_end);
    // The OOD threshold (and the temperature) are chosen on training images the model did not
    // see: the --holdout images, else those --limit leaves out, else the last training images
    // (seen once in training: slightly optimistic).
    let (calibration_start, held_out) = if h.holdout > 0 {
        (train_end, true)
    } else {
        let start = total_train - THRESHOLD_IMAGES.min(total_train);
        (start, limit <= start)
    };
    let calibration_images = images_range(&train_set, calibration_start, total_train).to_vec();
    let calibration_labels = train_set.labels[calibration_start..total_train].to_vec();
    train_set.truncate(limit);

    let pool = thread_pool(args.threads)?;
    let cfg = TrainConfig {
        epochs: h.epochs,
        batch_size: h.batch_size,
        lr: h.lr as f32,
        kl_weight: h.kl_weight as f32,
        train_samples: h.train_samples,
        seed: args.seed,
        threads: pool.current_num_threads(),
        local_reparam: h.local_reparam,
        kl: h.kl,
        kl_reduction: h.kl_reduction,
        kl_anneal_epochs: h.kl_anneal_epochs,
        lr_schedule: h.lr_schedule,
        crop_pad: h.crop_pad,
    };
    outln!(
        "training the Bayesian LeNet on {} MNIST images (recipe {}): {} epoch(s), batch {}, Adam lr {} ({}), KL {} {} weight {}{}, {} samples per step{}, crop padding {}, seed {}, {} threads",
        train_set.len(),
        args.recipe.name(),
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        flag_value(cfg.lr_schedule),
        flag_value(cfg.kl),
        flag_value(cfg.kl_reduction),
        cfg.kl_weight,
        if cfg.kl_anneal_epochs > 0 {
            format!(" annealed over {} epoch(s)", cfg.kl_anneal_epochs)
        } else {
            String::new()
        },
        cfg.train_samples,
        if cfg.local_reparam {
            " (local reparameterisation in fc1-fc3)"
        } else {
            ""
        },
        cfg.crop_pad,
        cfg.seed,
        cfg.threads
    );

    let settings = Settings::new(&cfg, &train_set.images, &train_set.labels);
    let checkpoint_path = args.out.join(checkpoint::FILE);
    let (mut model, resume) = if args.resume {
        let c = Checkpoint::load_for(&checkpoint_path, &settings)?;
        remove_stale_temporaries(&args.out);
        let at = if c.state.step == 0 {
            format!("after epoch {}", c.state.epoch)
        } else {
            format!("at epoch {} step {}", c.state.epoch + 1, c.state.step)
        };
        if c.state.epoch > h.epochs || (c.state.epoch == h.epochs && c.state.step > 0) {
            return Err(TrainerError::invalid(
                "--resume",
                format!(
                    "{} is {at}, past --epochs {}",
                    checkpoint_path.display(),
                    h.epochs
                ),
            ));
        }
        outln!(
            "resuming from {} {at} ({} steps done)",
            checkpoint_path.display(),
            c.state.global_step
        );
        (c.model, Some(c.state))
    } else {
        (Lenet::init(args.seed), None)
    };
    let steps_per_epoch = train_set.len().div_ceil(h.batch_size.min(train_set.len()));
    let done = resume.as_ref().map_or(0, |s| s.global_step);
    let bar = report::progress(
        (steps_per_epoch * h.epochs - done) as u64,
        "train",
        args.quiet,
    );
    let (mut loss_sum, mut acc_sum, mut seen) = (0.0f64, 0.0f64, 0usize);
    let mut saved: Option<(usize, usize)> = resume.as_ref().map(|s| (s.epoch, s.step));
    let mut save = |model: &Lenet, state: &TrainState| -> std::result::Result<(), String> {
        Checkpoint {
            settings: settings.clone(),
            model: model.clone(),
            state: state.clone(),
        }
        .save(&checkpoint_path)
        .map_err(|e| e.to_string())?;
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
        &train_set.images,
        &train_set.labels,
        &cfg,
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
                h.epochs,
                loss_sum / seen as f64,
                acc_sum / seen as f64
            ));
            bar.inc(1);
        },
    )
    .map_err(|e| {
        let kept = match saved {
            Some((epoch, 0)) => format!(
                "; the last good checkpoint ({}, after epoch {epoch}) is kept",
                checkpoint_path.display()
            ),
            Some((epoch, step)) => format!(
                "; the last good checkpoint ({}, epoch {} step {step}) is kept",
                checkpoint_path.display(),
                epoch + 1
            ),
            None => String::new(),
        };
        TrainerError::Training(format!("{e}{kept}"))
    })?;
    let train_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    outln!(
        "trained {} steps in {train_seconds:.2} s; last epoch: loss {:.4}, running accuracy {:.4}",
        summary.steps,
        summary.last_epoch_loss,
        summary.last_epoch_accuracy
    );

    let temperature = if h.temperature_scaling {
        let started = Instant::now();
        let logits = pool.install(|| {
            mc_logits(
                &model,
                &calibration_images,
                args.eval_samples,
                args.seed ^ 0x7E4D,
            )
        });
        let t = calibrate::fit_temperature(&logits, &calibration_labels, args.eval_samples);
        let before = calibrate::nll(&logits, &calibration_labels, args.eval_samples, 1.0);
        let after = calibrate::nll(&logits, &calibration_labels, args.eval_samples, t);
        calibrate::fold_temperature(&mut model, t);
        outln!(
            "temperature scaling: T = {t:.4} on {} held-out images (their NLL {before:.4} -> {after:.4}), folded into fc3, {:.2} s",
            calibration_labels.len(),
            started.elapsed().as_secs_f64()
        );
        Some(t)
    } else {
        None
    };

    let tests = TestSets {
        mnist: mnist_test,
        fashion,
    };
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

    let calibration = pool.install(|| {
        evaluate(
            &model,
            &calibration_images,
            args.eval_samples,
            args.seed ^ 0x5EED,
        )
    });
    let threshold = ood_threshold(&calibration);
    outln!(
        "OOD threshold: predictive entropy > {:.4} nats (accepts {:.0}% of {} {} training images)",
        threshold.value,
        OOD_RECALL * 100.0,
        calibration.probs.len(),
        if held_out { "held-out" } else { "seen" }
    );

    let mut m = compute_metrics(&tests, &evaluated)?;
    m.epochs = h.epochs;
    m.seed = args.seed;
    m.eval_samples = args.eval_samples;
    m.train_seconds = train_seconds;
    m.eval_seconds = eval_seconds;
    m.train_images = train_set.len();
    m.temperature = temperature;

    let model_bytes =
        crate::export::try_export_as(&model, Some(threshold), args.export_precision.into())
            .map_err(|e| TrainerError::invalid("export", e.to_string()))?;
    report::write_atomic(&args.out.join(files::MODEL), &model_bytes)?;
    write_samples(&args.out.join(files::SAMPLES), &tests)?;
    write_reports(&args.out, &tests, &evaluated, &m)?;
    report::print_metrics_table(&m);
    print_written(&args.out, true);
    Ok(())
}

/// How a value of an option is spelled on the command line (e.g. `one-cycle`).
fn flag_value(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
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

/// `trainer eval`: the metrics of an exported model, computed through the no_std core.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let model = tinyvi::Model::from_bytes(&bytes)
        .map_err(|e| TrainerError::data(&args.model, e.to_string()))?;
    let net = LeNet::new(&model).map_err(|e| TrainerError::data(&args.model, e.to_string()))?;
    report::create_out_dir(&args.out)?;
    let (_, mnist) = load_mnist(&args.data)?;
    let tests = TestSets {
        mnist,
        fashion: load_fashion_test(&args.data)?,
    };
    let mode = core_mode(args.mode);
    let pool = thread_pool(args.threads)?;
    outln!(
        "evaluating {} through the tinyvi core: {} mode, {} samples, seed {}, {} threads",
        args.model.display(),
        mode.name(),
        args.samples,
        args.seed,
        pool.current_num_threads()
    );
    let started = Instant::now();
    let evaluated = pool.install(|| -> Result<Evaluated> {
        Ok(Evaluated {
            mnist: predict_all(&net, &tests.mnist, mode, args.samples, args.seed, 0)?,
            fashion: match &tests.fashion {
                Some(f) => Some(predict_all(
                    &net,
                    f,
                    mode,
                    args.samples,
                    args.seed,
                    tests.mnist.len(),
                )?),
                None => None,
            },
        })
    })?;
    let eval_seconds = started.elapsed().as_secs_f64();
    outln!("evaluated in {eval_seconds:.2} s");
    let mut m = compute_metrics(&tests, &evaluated)?;
    m.seed = args.seed;
    m.eval_samples = args.samples;
    m.eval_seconds = eval_seconds;
    write_reports(&args.out, &tests, &evaluated, &m)?;
    report::print_metrics_table(&m);
    print_written(&args.out, false);
    Ok(())
}

/// The core's sampling mode for a CLI mode.
pub fn core_mode(mode: EvalMode) -> Mode {
    match mode {
        EvalMode::Weights => Mode::Weights,
        EvalMode::LocalReparam => Mode::LocalReparam,
        EvalMode::Mean => Mode::Mean,
    }
}

/// Predicts every image of `set` with the core, in parallel; image `i` uses the seed
/// `image_seed(seed, first_index + i)`, so the result does not depend on the thread count.
pub fn predict_all(
    net: &LeNet<'_>,
    set: &Dataset,
    mode: Mode,
    samples: usize,
    seed: u64,
    first_index: usize,
) -> Result<McOutputs> {
    let samples =
        u32::try_from(samples).map_err(|_| TrainerError::invalid("--samples", "too large"))?;
    let results: Vec<(usize, [f32; CLASSES], f32)> = (0..set.len())
        .into_par_iter()
        .map_init(
            || Box::new(Scratch::new()),
            |scratch, i| {
                let config = Config {
                    samples,
                    seed: image_seed(seed, (first_index + i) as u32),
                    mode,
                    threshold: None,
                };
                net.predict(set.image(i), &config, scratch)
                    .map(|p| (i, p.probs, p.expected_entropy))
            },
        )
        .collect::<std::result::Result<_, tinyvi::Error>>()
        .map_err(|e| TrainerError::invalid("inference", e.to_string()))?;
    let mut out = McOutputs {
        probs: vec![[0.0; CLASSES]; set.len()],
        expected_entropy: vec![0.0; set.len()],
    };
    for (i, p, h) in results {
        out.probs[i] = p;
        out.expected_entropy[i] = h;
    }
    Ok(out)
}

/// The entropy threshold that accepts [`OOD_RECALL`] of `calibration`'s images.
pub fn ood_threshold(calibration: &McOutputs) -> OodThreshold {
    let mut h: Vec<f64> = calibration.probs.iter().map(metrics::entropy).collect();
    h.sort_by(f64::total_cmp);
    let k = ((h.len() as f64 * OOD_RECALL).ceil() as usize).clamp(1, h.len().max(1)) - 1;
    OodThreshold {
        score: OodScore::Entropy,
        value: h.get(k).copied().unwrap_or(0.0) as f32,
    }
}

fn images_range(set: &Dataset, start: usize, end: usize) -> &[u8] {
    &set.images[start * IMAGE_LEN..end * IMAGE_LEN]
}

fn predictions<'a>(set: &'a Dataset, out: &'a McOutputs) -> Predictions<'a> {
    Predictions {
        probs: &out.probs,
        labels: &set.labels,
        expected_entropy: &out.expected_entropy,
    }
}

fn compute_metrics(tests: &TestSets, ev: &Evaluated) -> Result<Metrics> {
    let id = predictions(&tests.mnist, &ev.mnist);
    let ood = match (&tests.fashion, &ev.fashion) {
        (Some(f), Some(o)) => Some(predictions(f, o)),
        _ => None,
    };
    metrics::compute(&id, ood.as_ref())
}

fn write_reports(out: &Path, tests: &TestSets, ev: &Evaluated, m: &Metrics) -> Result<()> {
    let id = predictions(&tests.mnist, &ev.mnist);
    let ood = match (&tests.fashion, &ev.fashion) {
        (Some(f), Some(o)) => Some(predictions(f, o)),
        _ => None,
    };
    let mut sets = vec![("mnist", id)];
    sets.extend(ood.map(|o| ("fashion", o)));
    report::write_metrics_json(&out.join(files::METRICS), m)?;
    report::write_predictions_csv(&out.join(files::PREDICTIONS), &sets)?;
    report::write_reliability_png(&out.join(files::RELIABILITY), &id, m.ece)?;
    report::write_uncertainty_png(&out.join(files::UNCERTAINTY), &id, ood.as_ref())?;
    Ok(())
}

/// Writes the firmware's sample images: the first [`DEVICE_SAMPLES_PER_SET`] of MNIST test and
/// of Fashion-MNIST test (when installed).
fn write_samples(path: &Path, tests: &TestSets) -> Result<()> {
    let bytes =
        crate::samples::sample_set(&tests.mnist, tests.fashion.as_ref(), DEVICE_SAMPLES_PER_SET)?;
    report::write_atomic(path, &bytes)
}

fn print_written(out: &Path, trained: bool) {
    let mut names = vec![];
    if trained {
        names.extend([files::MODEL, files::SAMPLES]);
    }
    names.extend([
        files::METRICS,
        files::PREDICTIONS,
        files::RELIABILITY,
        files::UNCERTAINTY,
    ]);
    let paths: Vec<PathBuf> = names.iter().map(|n| out.join(n)).collect();
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    outln!("wrote {}", list.join(", "));
}

/// `trainer export-samples`: writes the firmware's sample images without training.
pub fn run_export_samples(args: &crate::cli::ExportSamplesArgs) -> Result<()> {
    let (_, mnist) = load_mnist(&args.data)?;
    let tests = TestSets {
        mnist,
        fashion: load_fashion_test(&args.data)?,
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        report::create_out_dir(dir)?;
    }
    let bytes = crate::samples::sample_set(&tests.mnist, tests.fashion.as_ref(), args.count)?;
    report::write_atomic(&args.out, &bytes)?;
    outln!("wrote {}", args.out.display());
    Ok(())
}

/// `trainer compare`: replays a device log on the host and fails unless every result is
/// bit-identical; also reports agreement with the trainer's own evaluation when available.
pub fn run_compare(args: &crate::cli::CompareArgs) -> Result<()> {
    use crate::compare::{agreement, parse_log, replay};
    let text = std::fs::read_to_string(&args.log).map_err(|e| TrainerError::read(&args.log, e))?;
    let log = parse_log(&text).map_err(|e| TrainerError::data(&args.log, e.to_string()))?;
    let model = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let sample_bytes =
        std::fs::read(&args.samples).map_err(|e| TrainerError::read(&args.samples, e))?;
    let samples = tinyvi::samples::SampleSet::from_bytes(&sample_bytes)
        .map_err(|e| TrainerError::data(&args.samples, e.to_string()))?;
    let report = replay(&log, &model, &samples);
    outln!("{report}");
    if args.predictions.exists() {
        let trainer = read_trainer_predictions(&args.predictions)?;
        outln!("{}", agreement(&log, &trainer));
    } else {
        outln!(
            "({} not found: no comparison with the trainer's own evaluation)",
            args.predictions.display()
        );
    }
    if report.passed() {
        Ok(())
    } else {
        Err(TrainerError::invalid(
            "compare",
            format!(
                "{} of {} device results are bit-identical to the host replay",
                report.bit_identical, report.expected_images
            ),
        ))
    }
}

/// Reads `predictions.csv` (as [`report::write_predictions_csv`] writes it).
pub fn read_trainer_predictions(path: &Path) -> Result<Vec<crate::compare::TrainerImage>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainerError::read(path, e))?;
    let bad = |line: usize, what: &str| TrainerError::data(path, format!("line {line}: {what}"));
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 + CLASSES + 2 {
            return Err(bad(n + 1, "too few columns"));
        }
        let dataset = tinyvi::samples::Dataset::from_name(f[0])
            .ok_or_else(|| bad(n + 1, "unknown dataset"))?;
        let index = f[1].parse().map_err(|_| bad(n + 1, "bad index"))?;
        let num = |s: &str| s.parse::<f32>().map_err(|_| bad(n + 1, "bad number"));
        let mut probs = [0.0; CLASSES];
        for (c, p) in probs.iter_mut().enumerate() {
            *p = num(f[3 + c])?;
        }
        rows.push(crate::compare::TrainerImage {
            dataset,
            index,
            probs,
            entropy: num(f[3 + CLASSES])?,
            mutual_information: num(f[4 + CLASSES])?,
        });
    }
    Ok(rows)
}
