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

pub mod ablation;
pub mod bench;
pub mod calibrate;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod pipeline;
pub mod quantize;
pub mod recipe;
pub mod report;
pub mod samples;
pub mod train;

pub use evaluate::{evaluate, evaluate_with_threads, McOutputs};
pub use export::{export, try_export};
pub use model::Lenet;
pub use train::{
    train, train_resumable, StepInfo, TrainConfig, TrainError, TrainState, TrainSummary,
};

#[cfg(test)]
mod testdata;
