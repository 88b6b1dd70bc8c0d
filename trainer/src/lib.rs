//! tinyvi's trainer: data, Bayes-by-Backprop training of the variational LeNet, Monte Carlo
//! evaluation, metrics, reports, export and the command line.

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
