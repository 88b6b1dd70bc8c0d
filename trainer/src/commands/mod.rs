//! One module per subcommand of `trainer` (each reads its flags, runs, prints and writes files),
//! and what `train` and `eval` share: the output file names, the test sets and the reports.

use std::path::{Path, PathBuf};

use crate::data::idx::Dataset;
use crate::data::mnist::{load_fashion_test, load_mnist};
use crate::error::Result;
use crate::eval::metrics::{self, Metrics, Predictions};
use crate::eval::monte_carlo::McOutputs;
use crate::report;

pub mod ablation;
pub mod bench;
pub mod compare;
pub mod eval;
pub mod export;
pub mod export_samples;
pub mod train;

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

impl TestSets {
    /// MNIST test and, when installed, Fashion-MNIST test from `data`.
    fn load(data: &Path) -> Result<TestSets> {
        let (_, mnist) = load_mnist(data)?;
        Ok(TestSets {
            mnist,
            fashion: load_fashion_test(data)?,
        })
    }
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
