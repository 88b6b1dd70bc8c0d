//! Model files at another precision (`trainer export MODEL --precision f32|f16|int8 --out
//! FILE`) and the side-by-side quality of the precisions (`trainer quantize-report`).
//!
//! The quantisation itself is the core's (`tinyvi::format::encode_as`, documented in
//! `core/README.md`, "Format stability"): this module decodes a model file, hands its values to
//! the encoder at the requested precision, and evaluates the results through the core.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser, ValueEnum};
use tinyvi::arch::IMAGE_LEN;
use tinyvi::format::{encode_as, encoded_len_as, LayerSpec, ModelSpec, Precision};
use tinyvi::infer::{LeNet, Mode};
use tinyvi::Model;

use crate::cli::{Cli, Command};
use crate::commands::files;
use crate::data::idx::Dataset;
use crate::data::mnist::{load_fashion_test, load_mnist};
use crate::error::{Result, TrainerError};
use crate::eval::metrics::{self, Metrics, Predictions};
use crate::eval::monte_carlo::McOutputs;
use crate::report;

/// How an exported model stores its parameters (`--precision`, `--export-precision`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// Every mean and variance as `f32` (format version 1, 355,540 bytes for the LeNet).
    #[default]
    F32,
    /// IEEE half means and standard deviations.
    F16,
    /// `i8` weight means with a per-output-channel scale, 8-bit log-scale weight σ codes
    /// with a per-layer range, `f32` biases.
    Int8,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

/// Flags of `quantize-report`.
#[derive(Debug, Clone, Args)]
pub struct QuantizeReportArgs {
    /// Training recipes, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "seed,best")]
    pub recipes: Vec<crate::cli::recipe::Recipe>,
    /// Training seeds of every recipe, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Evaluate the first N images of MNIST test and of Fashion-MNIST test only [default:
    /// all 10,000 of each].
    #[arg(long, value_name = "N")]
    pub images: Option<usize>,
    /// Sampling modes evaluated, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "weights,local-reparam"
    )]
    pub modes: Vec<crate::cli::EvalMode>,
    /// Monte Carlo samples per image.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Seed of the sampler (the same for every precision).
    #[arg(long, default_value_t = 0)]
    pub sampler_seed: u64,
    /// Directory of the MNIST IDX files.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Runs (RECIPE/seed-S/, trained there when model.postcard is missing) and
    /// quantize-report.md.
    #[arg(long, value_name = "DIR", default_value = "artifacts/quantize")]
    pub out: PathBuf,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The model in `bytes` re-encoded at `precision` (its decoded values quantised by the core).
pub fn convert(bytes: &[u8], precision: Precision) -> std::result::Result<Vec<u8>, tinyvi::Error> {
    let model = Model::from_bytes(bytes)?;
    let values: Vec<[Vec<f32>; 4]> = model
        .layers()
        .iter()
        .map(|l| [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var].map(|t| t.iter().collect()))
        .collect();
    let layers: Vec<LayerSpec<'_>> = model
        .layers()
        .iter()
        .zip(&values)
        .map(|(l, [wm, wv, bm, bv])| LayerSpec {
            kind: l.kind,
            then: l.then,
            weight_mean: wm,
            weight_var: wv,
            bias_mean: bm,
            bias_var: bv,
        })
        .collect();
    let spec = ModelSpec {
        input: model.input(),
        classes: model.classes(),
        ood: model.ood_threshold(),
        layers: &layers,
    };
    let mut out = vec![0u8; encoded_len_as(&spec, precision)?];
    let n = encode_as(&spec, precision, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Spearman's rank correlation of `a` and `b` (ties get their mean rank); `None` for fewer
/// than two values, different lengths or a constant input.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - mean) * (y - mean);
        saa += (x - mean) * (x - mean);
        sbb += (y - mean) * (y - mean);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut k = 0;
    while k < idx.len() {
        let mut e = k;
        while e + 1 < idx.len() && v[idx[e + 1]] == v[idx[k]] {
            e += 1;
        }
        let rank = (k + e) as f64 / 2.0 + 1.0;
        for &i in &idx[k..=e] {
            r[i] = rank;
        }
        k = e + 1;
    }
    r
}

/// One evaluation of one model file: its metrics and per-image entropy and MI (MNIST test
/// then the OOD set).
struct Evaluation {
    metrics: Metrics,
    entropy: Vec<f64>,
    mi: Vec<f64>,
}

fn predictions<'a>(set: &'a Dataset, out: &'a McOutputs) -> Predictions<'a> {
    Predictions {
        probs: &out.probs,
        labels: &set.labels,
        expected_entropy: &out.expected_entropy,
    }
}

fn evaluate(
    bytes: &[u8],
    mnist: &Dataset,
    fashion: Option<&Dataset>,
    mode: Mode,
    samples: u32,
    seed: u64,
) -> Result<Evaluation> {
    let invalid = |e: tinyvi::Error| TrainerError::invalid("model", e.to_string());
    let model = Model::from_bytes(bytes).map_err(invalid)?;
    let net = LeNet::new(&model).map_err(invalid)?;
    let samples = samples as usize;
    let id = crate::commands::eval::predict_all(&net, mnist, mode, samples, seed, 0)?;
    let ood = match fashion {
        Some(f) => Some(crate::commands::eval::predict_all(
            &net,
            f,
            mode,
            samples,
            seed,
            mnist.len(),
        )?),
        None => None,
    };
    let ood_pred = match (fashion, &ood) {
        (Some(f), Some(o)) => Some(predictions(f, o)),
        _ => None,
    };
    let m = metrics::compute(&predictions(mnist, &id), ood_pred.as_ref())?;
    let (mut entropy, mut mi) = (vec![], vec![]);
    for out in std::iter::once(&id).chain(ood.as_ref()) {
        for (p, &h) in out.probs.iter().zip(&out.expected_entropy) {
            entropy.push(metrics::entropy(p));
            mi.push(metrics::mutual_information(p, h));
        }
    }
    Ok(Evaluation {
        metrics: m,
        entropy,
        mi,
    })
}

/// The metrics of the table, as `metrics.json` names them.
fn metric_values(m: &Metrics) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("acc", Some(m.acc)),
        ("nll", Some(m.nll)),
        ("brier", Some(m.brier)),
        ("ece", Some(m.ece)),
        ("aece", Some(m.aece)),
        ("entropy", Some(m.entropy)),
        ("mi", Some(m.mi)),
        ("ood_auroc", m.ood_auroc),
        ("ood_auroc_entropy", m.ood_auroc_entropy),
        ("ood_auroc_mi", m.ood_auroc_mi),
        ("ood_aupr", m.ood_aupr),
        ("ood_fpr95", m.ood_fpr95),
    ]
}

/// One row of the report: a (recipe, seed, mode, precision) evaluation and its agreement
/// with the f32 model's.
pub struct ReportRow {
    /// `seed` or `best`.
    pub recipe: &'static str,
    /// Training seed.
    pub seed: u64,
    /// Sampling mode.
    pub mode: Mode,
    /// Precision of the evaluated file.
    pub precision: Precision,
    /// Size of the file in bytes.
    pub bytes: usize,
    /// Its metrics.
    pub metrics: Metrics,
    /// Spearman correlation of per-image MI with the f32 file's.
    pub mi_spearman: Option<f64>,
    /// Spearman correlation of per-image entropy with the f32 file's.
    pub entropy_spearman: Option<f64>,
}

/// Whether `row` (int8) meets the bounds against `f32`: |Δacc| ≤ 0.002,
/// NLL ≤ 1.03 × f32's, |ΔECE| ≤ 0.002, each OOD AUROC ≥ f32's − 0.005, MI Spearman ≥ 0.9.
pub fn int8_bounds(row: &ReportRow, f32: &Metrics) -> Vec<(&'static str, bool)> {
    let m = &row.metrics;
    let auroc = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => a >= b - 0.005,
        _ => true,
    };
    vec![
        ("acc", (m.acc - f32.acc).abs() <= 0.002),
        ("nll", m.nll <= 1.03 * f32.nll),
        ("ece", (m.ece - f32.ece).abs() <= 0.002),
        ("ood_auroc", auroc(m.ood_auroc, f32.ood_auroc)),
        (
            "ood_auroc_entropy",
            auroc(m.ood_auroc_entropy, f32.ood_auroc_entropy),
        ),
        ("ood_auroc_mi", auroc(m.ood_auroc_mi, f32.ood_auroc_mi)),
        ("mi_spearman", row.mi_spearman.is_some_and(|s| s >= 0.9)),
    ]
}

/// The markdown table of `rows` (f32 rows first within each group), with the bounds column.
pub fn table(rows: &[ReportRow]) -> String {
    let mut s = String::new();
    let names: Vec<&str> = metric_values(&Metrics::default())
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let _ = write!(s, "| recipe | seed | mode | precision | bytes |");
    for n in &names {
        let _ = write!(s, " {n} |");
    }
    let _ = writeln!(s, " MI ρ | entropy ρ | int8 bounds |");
    let _ = writeln!(s, "|{}", "---|".repeat(names.len() + 8));
    let mut f32_metrics: Option<&Metrics> = None;
    for r in rows {
        if r.precision == Precision::F32 {
            f32_metrics = Some(&r.metrics);
        }
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.recipe,
            r.seed,
            r.mode.name(),
            r.precision.name(),
            r.bytes
        );
        for (_, v) in metric_values(&r.metrics) {
            match v {
                Some(v) => {
                    let _ = write!(s, " {v:.4} |");
                }
                None => s.push_str(" – |"),
            }
        }
        let rho = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
        let bounds = match (r.precision, f32_metrics) {
            (Precision::Int8, Some(f)) => {
                let failed: Vec<&str> = int8_bounds(r, f)
                    .into_iter()
                    .filter(|(_, ok)| !ok)
                    .map(|(n, _)| n)
                    .collect();
                if failed.is_empty() {
                    "met".to_string()
                } else {
                    format!("missed: {}", failed.join(", "))
                }
            }
            _ => "–".to_string(),
        };
        let _ = writeln!(
            s,
            " {} | {} | {bounds} |",
            rho(r.mi_spearman),
            rho(r.entropy_spearman)
        );
    }
    s
}

/// `trainer quantize-report`: for each recipe and seed, trains (unless RUN/model.postcard
/// exists), converts the model to f16 and int8, evaluates the three files through the core in
/// each mode with the same sampler seed, and writes the table to stdout and
/// `--out/quantize-report.md`.
pub fn run_report(args: &QuantizeReportArgs) -> Result<()> {
    report::create_out_dir(&args.out)?;
    let first = |d: Dataset| -> Result<Dataset> {
        let n = args.images.unwrap_or(d.len()).min(d.len());
        Dataset::new(d.images[..n * IMAGE_LEN].to_vec(), d.labels[..n].to_vec())
    };
    let mnist = first(load_mnist(&args.data)?.1)?;
    let fashion = load_fashion_test(&args.data)?.map(first).transpose()?;
    let pool = crate::nn::parallel::thread_pool(args.threads)?;
    let mut rows = vec![];
    for &r in &args.recipes {
        let recipe = match r {
            crate::cli::recipe::Recipe::Seed => "seed",
            crate::cli::recipe::Recipe::Best => "best",
        };
        for &seed in &args.seeds {
            let dir = args.out.join(recipe).join(format!("seed-{seed}"));
            let model_path = dir.join(files::MODEL);
            if !model_path.exists() {
                outln!("== training: trainer train --recipe {recipe} --seed {seed}");
                crate::commands::train::run_train(&train_args(recipe, seed, args, &dir)?)?;
            }
            let f32_bytes =
                std::fs::read(&model_path).map_err(|e| TrainerError::read(&model_path, e))?;
            let files: Vec<(Precision, Vec<u8>)> = Precision::ALL
                .into_iter()
                .map(|p| convert(&f32_bytes, p).map(|b| (p, b)))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| TrainerError::data(&model_path, e.to_string()))?;
            for (p, b) in &files {
                let path = dir.join(format!("model-{}.postcard", p.name()));
                report::write_atomic(&path, b)?;
            }
            for &mode in &args.modes {
                let mode = crate::commands::eval::core_mode(mode);
                let mut reference: Option<Evaluation> = None;
                for (p, b) in &files {
                    let started = Instant::now();
                    let ev = pool.install(|| {
                        evaluate(
                            b,
                            &mnist,
                            fashion.as_ref(),
                            mode,
                            args.samples,
                            args.sampler_seed,
                        )
                    })?;
                    outln!(
                        "{recipe} seed {seed} {} {}: acc {:.4} nll {:.4} ({:.1} s)",
                        mode.name(),
                        p.name(),
                        ev.metrics.acc,
                        ev.metrics.nll,
                        started.elapsed().as_secs_f64()
                    );
                    let (mi_spearman, entropy_spearman) = match &reference {
                        Some(r) => (spearman(&r.mi, &ev.mi), spearman(&r.entropy, &ev.entropy)),
                        None => (Some(1.0), Some(1.0)),
                    };
                    rows.push(ReportRow {
                        recipe,
                        seed,
                        mode,
                        precision: *p,
                        bytes: b.len(),
                        metrics: ev.metrics.clone(),
                        mi_spearman,
                        entropy_spearman,
                    });
                    if reference.is_none() {
                        reference = Some(ev);
                    }
                }
            }
        }
    }
    let table = table(&rows);
    out!("{table}");
    report::write_atomic(&args.out.join("quantize-report.md"), table.as_bytes())
}

/// The `train` flags of one run, parsed as the command line parses them.
fn train_args(
    recipe: &str,
    seed: u64,
    args: &QuantizeReportArgs,
    dir: &Path,
) -> Result<crate::cli::TrainArgs> {
    let seed = seed.to_string();
    let data = args.data.display().to_string();
    let out = dir.display().to_string();
    let mut argv = vec!["trainer", "train", "--recipe", recipe];
    argv.extend(["--seed", &seed, "--data", &data, "--out", &out, "--quiet"]);
    let threads = args.threads.map(|t| t.to_string());
    if let Some(t) = &threads {
        argv.extend(["--threads", t]);
    }
    match Cli::try_parse_from(&argv).map(Cli::into_command) {
        Ok(Command::Train(t)) => Ok(t),
        Ok(_) => Err(TrainerError::invalid(
            "quantize-report",
            "not a train command",
        )),
        Err(e) => Err(TrainerError::invalid(
            "quantize-report",
            crate::cli::one_line_error(&e),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_ranks() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        // Ties share their mean rank: ranks (1.5, 1.5, 3) and (1, 2, 3).
        let r = spearman(&[5.0, 5.0, 7.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((r - 0.866_025_403_784_438_6).abs() < 1e-12, "{r}");
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn precision_flags_parse() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(Cli::into_command);
        match parse(&["trainer", "train", "--export-precision", "int8"]) {
            Ok(Command::Train(t)) => assert_eq!(t.export_precision, PrecisionArg::Int8),
            other => panic!("{other:?}"),
        }
        match parse(&["trainer", "train"]) {
            Ok(Command::Train(t)) => assert_eq!(t.export_precision, PrecisionArg::F32),
            other => panic!("{other:?}"),
        }
        match parse(&[
            "trainer",
            "export",
            "m.postcard",
            "--precision",
            "f16",
            "--out",
            "o",
        ]) {
            Ok(Command::Export(e)) => {
                assert_eq!(e.precision, PrecisionArg::F16);
                assert_eq!(e.model, PathBuf::from("m.postcard"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["trainer", "export", "m.postcard"]).is_err()); // --out is required
        assert!(parse(&["trainer", "export", "m", "--out", "o", "--precision", "i4"]).is_err());
    }

    #[test]
    fn convert_round_trips_precisions() {
        let bytes = crate::model::export::export(&crate::Lenet::init(3), None);
        let f16 = convert(&bytes, Precision::F16).unwrap();
        let int8 = convert(&bytes, Precision::Int8).unwrap();
        assert_eq!(Model::from_bytes(&f16).unwrap().precision(), Precision::F16);
        assert_eq!(
            Model::from_bytes(&int8).unwrap().precision(),
            Precision::Int8
        );
        assert!(int8.len() <= 92_000, "{}", int8.len());
        assert!(f16.len() < bytes.len() / 2 + 1_000);
        // f32 of an f32 file is the same bytes; f32 of the int8 file holds its decoded values.
        assert_eq!(convert(&bytes, Precision::F32).unwrap(), bytes);
        let back = convert(&int8, Precision::F32).unwrap();
        let (a, b) = (
            Model::from_bytes(&int8).unwrap(),
            Model::from_bytes(&back).unwrap(),
        );
        for (la, lb) in a.layers().iter().zip(b.layers()) {
            assert!(la.weight_mean.iter().eq(lb.weight_mean.iter()));
            assert!(la.weight_var.iter().eq(lb.weight_var.iter()));
        }
    }
}
