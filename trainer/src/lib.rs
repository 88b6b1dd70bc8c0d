//! The tinyvi trainer: Bayes-by-Backprop training, Monte Carlo evaluation and export of the
//! variational LeNet.

pub mod evaluate;
pub mod export;
pub mod model;
pub mod nn;
pub mod train;

pub use evaluate::{evaluate, evaluate_with_threads, McOutputs};
pub use export::{export, try_export};
pub use model::Lenet;
pub use train::{train, StepInfo, TrainConfig, TrainError, TrainSummary};

#[cfg(test)]
mod testdata;
