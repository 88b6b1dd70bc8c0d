//! The command line: `trainer [train|eval|compare|bench|export-samples|ablation|import|export|
//! quantize-report|shift]`, `train` by default.
//!
//! Flags of `train` may also be given without the subcommand (`trainer --epochs 2`). Bad values
//! (0 or negative counts, a non-finite or non-positive learning rate, a negative KL weight) are
//! refused by clap with a one-line message and exit code 2.

pub mod args;
pub mod parsers;
pub mod recipe;
mod values;

use clap::{Parser, Subcommand};

pub use args::{
    AblationArgs, BenchArgs, CompareArgs, EvalArgs, EvalMode, ExportSamplesArgs, TrainArgs,
};

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
    /// Import a torch-uncertainty `bayesian_lenet` (safetensors) as a tinyvi model file.
    Import(crate::interop::ImportArgs),
    /// Write a model file at another precision (f32, f16, int8), or as torch-uncertainty's
    /// `bayesian_lenet` (--format safetensors).
    Export(crate::commands::export::ExportArgs),
    /// f32, f16 and int8 of the same trained weights side by side (both recipes, all seeds).
    QuantizeReport(crate::quantize::QuantizeReportArgs),
    /// Evaluate an exported model on rotated, translated and corrupted MNIST and OOD sets.
    #[command(allow_negative_numbers = true)]
    Shift(crate::shift::suite::ShiftArgs),
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::cli::recipe::Recipe;
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
        let h = crate::cli::recipe::resolve(&t);
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
        let e = Cli::try_parse_from(["trainer", "--epochs", "2", "eval"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
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
