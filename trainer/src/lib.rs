//! tinyvi's trainer: data, Bayes-by-Backprop training of the variational LeNet, Monte Carlo
//! evaluation, metrics, reports, export and the command line.

/// `println!` that does not panic when stdout is closed (`trainer … | head`): the line is
/// dropped and the run goes on writing its files.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` with the same tolerance as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod cli;
pub mod commands;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod interop;
pub mod model;
pub mod nn;
pub mod quantize;
pub mod report;
pub mod shift;
pub mod train;

pub use eval::monte_carlo::{evaluate, evaluate_with_threads, McOutputs};
pub use model::export::{export, try_export};
pub use model::Lenet;
pub use train::{
    train, train_resumable, StepInfo, TrainConfig, TrainError, TrainState, TrainSummary,
};
