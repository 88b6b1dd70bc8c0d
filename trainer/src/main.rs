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
        Command::Train(args) => trainer::pipeline::run_train(&args),
        Command::Eval(args) => trainer::pipeline::run_eval(&args),
        Command::Compare(args) => trainer::pipeline::run_compare(&args),
        Command::Bench(args) => trainer::bench::run(&args),
        Command::ExportSamples(args) => trainer::pipeline::run_export_samples(&args),
        Command::Ablation(args) => trainer::ablation::run(&args),
        Command::Export(args) => trainer::quantize::run_export(&args),
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
