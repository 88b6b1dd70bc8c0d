//! `trainer`: train, evaluate, export and check tinyvi's variational Bayesian LeNet.
//! `cargo run -p trainer --release` trains with the seed recipe; `--help` lists the rest.

use std::process::ExitCode;

use trainer::cli::{self, Command};

fn main() -> ExitCode {
    let command = cli::parse().into_command();
    if let Err(e) = trainer::nn::kernels::init() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match command {
        Command::Train(args) => trainer::commands::train::run_train(&args),
        Command::Eval(args) => trainer::commands::eval::run_eval(&args),
        Command::Compare(args) => trainer::commands::compare::run_compare(&args),
        Command::Bench(args) => trainer::commands::bench::run(&args),
        Command::ExportSamples(args) => {
            trainer::commands::export_samples::run_export_samples(&args)
        }
        Command::Ablation(args) => trainer::commands::ablation::run(&args),
        Command::Import(args) => trainer::interop::run_import(&args),
        Command::Export(args) => trainer::commands::export::run_export(&args),
        Command::Shift(args) => trainer::shift::suite::run(&args),
        Command::QuantizeReport(args) => trainer::quantize::run_report(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
