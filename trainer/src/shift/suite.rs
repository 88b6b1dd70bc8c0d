//! `trainer shift`: an exported model on every [`Condition`] of the suite, for the Monte Carlo
//! prediction and the mean-weights network side by side; writes `shift.json`, `shift.csv`,
//! `predictions_shift.csv` and the figures.
//!
//! In `weights` mode (the default) the Monte Carlo prediction is the trainer's batched one
//! (as `trainer train` evaluates): sample `s` is one draw `w = μ + σ·ε_s` of every weight,
//! `ε_s` from the stream (`--seed`, EVAL_EPS, s), shared by every image of every condition;
//! σ = √variance of the model file. In `local-reparam` mode each image goes through the
//! no_std core as `trainer eval` runs it (per-image seeds; slower). The mean-weights network
//! is one pass with every weight at its mean. `mean` mode makes both predictors that network.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};
use tinyvi::arch::IMAGE_LEN;
use tinyvi::infer::LeNet;

use super::{generate, suite, Condition};
use crate::cli::parsers::positive_usize;
use crate::cli::EvalMode;
use crate::data::idx::Dataset;
use crate::data::mnist::{load_fashion_test, load_mnist};
use crate::error::{Result, TrainerError};
use crate::eval::metrics::{self, Predictions};
use crate::eval::monte_carlo::{forward_weight_sets, McOutputs};
use crate::nn::lenet::{LAYERS, PARAMS};
use crate::nn::rng::{purpose, Rng};
use crate::report;

/// Flags of `shift`.
#[derive(Debug, Clone, Args)]
pub struct ShiftArgs {
    /// Exported model to evaluate.
    #[arg(long, value_name = "FILE", default_value = "artifacts/model.postcard")]
    pub model: PathBuf,
    /// Monte Carlo samples per image.
    #[arg(long, default_value_t = 16, value_parser = positive_usize)]
    pub samples: usize,
    /// Sampling mode of the Monte Carlo prediction (weights: batched, one weight draw per
    /// sample shared by all images; local-reparam: per image through the core, slower; mean:
    /// the mean network only).
    #[arg(long, value_enum, default_value_t = EvalMode::Weights)]
    pub mode: EvalMode,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the shift generators (noise, random directions, lines).
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Directory of the MNIST IDX files.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Directory for shift.json, shift.csv, predictions_shift.csv and the figures.
    #[arg(long, value_name = "DIR", default_value = "artifacts/shift")]
    pub out: PathBuf,
    /// Only the first N test images of MNIST (and Fashion-MNIST) per condition.
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub limit: Option<usize>,
    /// Only these conditions, comma-separated (e.g. rotate:60,mnistc:fog) [default: the
    /// whole suite]; clean MNIST is always evaluated (the OOD reference).
    #[arg(long, value_delimiter = ',', value_parser = Condition::parse)]
    pub only: Option<Vec<Condition>>,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

/// Output file names inside `--out`.
pub mod files {
    /// Every row and the run's facts.
    pub const JSON: &str = "shift.json";
    /// One row per condition and predictor.
    pub const CSV: &str = "shift.csv";
    /// `p̄` of every image of every condition and predictor.
    pub const PREDICTIONS: &str = "predictions_shift.csv";
    /// Accuracy, ECE and entropy against the rotation angle.
    pub const ROTATION_PNG: &str = "shift_rotation.png";
    /// The same against the translation.
    pub const TRANSLATION_PNG: &str = "shift_translation.png";
    /// Accuracy and OOD AUROC per MNIST-C corruption.
    pub const CORRUPTIONS_PNG: &str = "shift_corruptions.png";
}

/// The two predictors of every row.
pub const PREDICTORS: [&str; 2] = ["mc", "mean"];

/// The metrics of one condition under one predictor. Label metrics are `None` where the
/// images no longer show their digit; OOD AUROCs (the condition's images positive, clean
/// MNIST negative) are `None` for the clean condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub condition: String,
    pub family: String,
    /// Degrees, pixels or severity; 0 for clean and OOD sets.
    pub level: f64,
    /// `mc` (Monte Carlo p̄) or `mean` (the mean-weights network).
    pub predictor: String,
    pub images: usize,
    pub acc: Option<f64>,
    pub nll: Option<f64>,
    pub brier: Option<f64>,
    pub ece: Option<f64>,
    pub entropy: f64,
    pub mi: f64,
    /// AUROC of the score −max p̄.
    pub auroc_msp: Option<f64>,
    /// AUROC of the predictive entropy H[p̄].
    pub auroc_entropy: Option<f64>,
    /// AUROC of the mutual information.
    pub auroc_mi: Option<f64>,
}

/// `shift.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub model: String,
    pub mode: String,
    pub samples: usize,
    pub seed: u64,
    pub data_seed: u64,
    pub generate_seconds: f64,
    pub eval_seconds: f64,
    pub rows: Vec<Row>,
}

/// The posterior of an exported model, flat in the trainer's parameter layout.
pub struct Posterior {
    pub mu: Vec<f32>,
    pub sigma: Vec<f32>,
}

/// Reads means and standard deviations (√variance) out of a decoded model.
pub fn posterior(model: &tinyvi::Model<'_>) -> Result<Posterior> {
    let mut mu = vec![0.0f32; PARAMS];
    let mut var = vec![0.0f32; PARAMS];
    let layers = model.layers();
    if layers.len() != LAYERS.len() {
        return Err(TrainerError::invalid(
            "model",
            "not the LeNet of the trainer",
        ));
    }
    for (l, r) in layers.iter().zip(LAYERS) {
        let ok = l.weight_mean.copy_to(&mut mu[r.w..r.b])
            && l.weight_var.copy_to(&mut var[r.w..r.b])
            && l.bias_mean.copy_to(&mut mu[r.b..r.end])
            && l.bias_var.copy_to(&mut var[r.b..r.end]);
        if !ok {
            return Err(TrainerError::invalid(
                "model",
                "layer sizes differ from the LeNet",
            ));
        }
    }
    Ok(Posterior {
        mu,
        sigma: var.iter().map(|v| v.sqrt()).collect(),
    })
}

/// `samples` weight draws `μ + σ·ε`, ε from the streams (`seed`, EVAL_EPS, s), as
/// [`crate::eval::monte_carlo::sample_weight_sets`] draws them.
pub fn weight_sets(p: &Posterior, samples: usize, seed: u64) -> Vec<f32> {
    let mut sets = vec![0.0f32; samples * PARAMS];
    for (s, w) in sets.chunks_mut(PARAMS).enumerate() {
        Rng::stream(seed, &[purpose::EVAL_EPS, s as u64]).fill_normal(w);
        for ((w, &m), &s) in w.iter_mut().zip(&p.mu).zip(&p.sigma) {
            *w = m + s * *w;
        }
    }
    sets
}

/// Predicts images with both predictors.
pub struct Predictor<'m> {
    mode: EvalMode,
    samples: usize,
    seed: u64,
    sets: Vec<f32>,
    mean: Vec<f32>,
    net: LeNet<'m>,
}

impl<'m> Predictor<'m> {
    /// A predictor of `model` (decoded) in `mode` with `samples` samples and sampler `seed`.
    pub fn new(
        model: &tinyvi::Model<'m>,
        mode: EvalMode,
        samples: usize,
        seed: u64,
    ) -> Result<Self> {
        let p = posterior(model)?;
        let net = LeNet::new(model).map_err(|e| TrainerError::invalid("model", e.to_string()))?;
        let sets = if mode == EvalMode::Weights {
            weight_sets(&p, samples, seed)
        } else {
            Vec::new()
        };
        Ok(Predictor {
            mode,
            samples,
            seed,
            sets,
            mean: p.mu,
            net,
        })
    }

    /// `(Monte Carlo, mean network)` outputs of `images` (`n × 784`), in the current rayon
    /// pool; the core's per-image seeds (local-reparam) count from `first_index`.
    pub fn predict(&self, images: &[u8], first_index: usize) -> Result<(McOutputs, McOutputs)> {
        let mean = forward_weight_sets(&self.mean, 1, images);
        let mc = match self.mode {
            EvalMode::Weights => forward_weight_sets(&self.sets, self.samples, images),
            EvalMode::Mean => mean.clone(),
            EvalMode::LocalReparam => {
                let n = images.len() / IMAGE_LEN;
                let set = Dataset::new(images.to_vec(), vec![0; n])?;
                crate::commands::eval::predict_all(
                    &self.net,
                    &set,
                    crate::commands::eval::core_mode(self.mode),
                    self.samples,
                    self.seed,
                    first_index,
                )?
            }
        };
        Ok((mc, mean))
    }
}

/// The outputs of one condition.
pub struct Evaluated {
    pub condition: Condition,
    pub labels: Vec<u8>,
    /// Monte Carlo, then mean network.
    pub outputs: [McOutputs; 2],
}

impl Evaluated {
    /// The predictions of predictor `k` (0 = mc, 1 = mean).
    pub fn predictions(&self, k: usize) -> Predictions<'_> {
        Predictions {
            probs: &self.outputs[k].probs,
            labels: &self.labels,
            expected_entropy: &self.outputs[k].expected_entropy,
        }
    }
}

/// Degrees, pixels or severity of a condition (0 for clean and the OOD sets).
pub fn level(c: &Condition) -> f64 {
    match *c {
        Condition::Rotate(d) => f64::from(d),
        Condition::Translate(p) => f64::from(p),
        Condition::Corrupt(_, s) => f64::from(s),
        _ => 0.0,
    }
}

/// The rows of `ev` under both predictors, against the clean outputs `clean`.
pub fn rows(ev: &Evaluated, clean: &Evaluated) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for (k, name) in PREDICTORS.iter().enumerate() {
        let p = ev.predictions(k);
        let m = metrics::compute(&p, None)?;
        let digit = ev.condition.keeps_digit();
        let keep = |v: f64| digit.then_some(v);
        let ood = if ev.condition == Condition::Clean {
            None
        } else {
            Some(metrics::compute(&clean.predictions(k), Some(&p))?)
        };
        out.push(Row {
            condition: ev.condition.to_string(),
            family: ev.condition.family().to_string(),
            level: level(&ev.condition),
            predictor: name.to_string(),
            images: p.len(),
            acc: keep(m.acc),
            nll: keep(m.nll),
            brier: keep(m.brier),
            ece: keep(m.ece),
            entropy: m.entropy,
            mi: m.mi,
            auroc_msp: ood.as_ref().and_then(|o| o.ood_auroc),
            auroc_entropy: ood.as_ref().and_then(|o| o.ood_auroc_entropy),
            auroc_mi: ood.as_ref().and_then(|o| o.ood_auroc_mi),
        });
    }
    Ok(out)
}

/// The text of `shift.csv`.
pub fn csv(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "condition,family,level,predictor,images,acc,nll,brier,ece,entropy,mi,auroc_msp,auroc_entropy,auroc_mi\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.condition,
            r.family,
            r.level,
            r.predictor,
            r.images,
            opt(r.acc),
            opt(r.nll),
            opt(r.brier),
            opt(r.ece),
            r.entropy,
            r.mi,
            opt(r.auroc_msp),
            opt(r.auroc_entropy),
            opt(r.auroc_mi)
        );
    }
    s
}

/// The first `n` images of `set` (all when `None`).
fn head(set: &Dataset, n: Option<usize>) -> (&[u8], &[u8]) {
    let n = n.unwrap_or(set.len()).min(set.len());
    (&set.images[..n * IMAGE_LEN], &set.labels[..n])
}

/// `trainer shift`.
pub fn run(args: &ShiftArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let model = tinyvi::Model::from_bytes(&bytes)
        .map_err(|e| TrainerError::data(&args.model, e.to_string()))?;
    let predictor = Predictor::new(&model, args.mode, args.samples, args.seed)
        .map_err(|e| TrainerError::data(&args.model, e.to_string()))?;
    report::create_out_dir(&args.out)?;
    let (_, mnist) = load_mnist(&args.data)?;
    let fashion = load_fashion_test(&args.data)?;
    let (images, labels) = head(&mnist, args.limit);
    let mut conditions = match &args.only {
        Some(only) => {
            let mut v = vec![Condition::Clean];
            v.extend(only.iter().copied().filter(|c| *c != Condition::Clean));
            v
        }
        None => suite(),
    };
    if fashion.is_none() && conditions.contains(&Condition::Fashion) {
        outln!("Fashion-MNIST test is not installed: skipping ood:fashion");
        conditions.retain(|c| *c != Condition::Fashion);
    }
    let pool = crate::nn::parallel::thread_pool(args.threads)?;
    outln!(
        "shift suite of {}: {} conditions × {} images, {} mode, {} samples, seed {}, data seed {}, {} threads",
        args.model.display(),
        conditions.len(),
        labels.len(),
        crate::commands::eval::core_mode(args.mode).name(),
        args.samples,
        args.seed,
        args.data_seed,
        pool.current_num_threads()
    );
    let bar = report::progress(conditions.len() as u64, "shift", args.quiet);
    let (mut generate_seconds, mut eval_seconds) = (0.0, 0.0);
    let mut evaluated: Vec<Evaluated> = Vec::with_capacity(conditions.len());
    for &c in &conditions {
        bar.set_message(c.to_string());
        let started = Instant::now();
        let (imgs, labs, first) = match (c, &fashion) {
            (Condition::Fashion, Some(f)) => {
                let (i, l) = head(f, args.limit);
                (i.to_vec(), l.to_vec(), mnist.len())
            }
            _ => (
                pool.install(|| generate(c, images, 0, args.data_seed)),
                labels.to_vec(),
                0,
            ),
        };
        generate_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let (mc, mean) = pool.install(|| predictor.predict(&imgs, first))?;
        eval_seconds += started.elapsed().as_secs_f64();
        evaluated.push(Evaluated {
            condition: c,
            labels: labs,
            outputs: [mc, mean],
        });
        bar.inc(1);
    }
    bar.finish();
    let clean = &evaluated[0];
    let mut all = Vec::new();
    for ev in &evaluated {
        all.extend(rows(ev, clean)?);
    }
    let report_json = Report {
        model: args.model.display().to_string(),
        mode: crate::commands::eval::core_mode(args.mode)
            .name()
            .to_string(),
        samples: args.samples,
        seed: args.seed,
        data_seed: args.data_seed,
        generate_seconds,
        eval_seconds,
        rows: all,
    };
    write_outputs(&args.out, &report_json, &evaluated)?;
    outln!(
        "generated the images in {generate_seconds:.2} s, evaluated them in {eval_seconds:.2} s"
    );
    outln!("{}", summary_table(&report_json.rows));
    outln!("wrote {}", args.out.join(files::JSON).display());
    Ok(())
}

/// Writes every output file of `trainer shift` into `out`.
pub fn write_outputs(out: &std::path::Path, r: &Report, evaluated: &[Evaluated]) -> Result<()> {
    let mut json = serde_json::to_string_pretty(r)
        .map_err(|e| TrainerError::invalid("shift report", e.to_string()))?;
    json.push('\n');
    report::write_atomic(&out.join(files::JSON), json.as_bytes())?;
    report::write_atomic(&out.join(files::CSV), csv(&r.rows).as_bytes())?;
    let names: Vec<String> = evaluated
        .iter()
        .flat_map(|e| {
            PREDICTORS
                .iter()
                .map(move |p| format!("{}/{p}", e.condition))
        })
        .collect();
    let sets: Vec<(&str, Predictions<'_>)> = evaluated
        .iter()
        .flat_map(|e| (0..PREDICTORS.len()).map(move |k| e.predictions(k)))
        .zip(&names)
        .map(|(p, n)| (n.as_str(), p))
        .collect();
    report::write_predictions_csv(&out.join(files::PREDICTIONS), &sets)?;
    super::plots::write_all(out, &r.rows)
}

/// A compact text table: condition, then acc / ece / entropy / AUROC(entropy) for mc and mean.
pub fn summary_table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let f = |v: Option<f64>| v.map_or("     -".to_string(), |v| format!("{v:6.4}"));
    let mut s = format!(
        "{:<26} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6}\n",
        "condition", "acc", "(mean)", "ece", "(mean)", "H", "(mean)", "AUC_H", "(mean)"
    );
    for pair in rows.chunks(2) {
        let [mc, mean] = pair else { continue };
        let _ = writeln!(
            s,
            "{:<26} {} {} | {} {} | {} {} | {} {}",
            mc.condition,
            f(mc.acc),
            f(mean.acc),
            f(mc.ece),
            f(mean.ece),
            f(Some(mc.entropy)),
            f(Some(mean.entropy)),
            f(mc.auroc_entropy),
            f(mean.auroc_entropy)
        );
    }
    s
}
