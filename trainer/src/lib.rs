//! The tinyvi trainer: Bayes-by-Backprop training, Monte Carlo evaluation and export of the
//! variational LeNet.

pub mod evaluate;
pub mod export;
pub mod model;
pub mod nn;
pub mod train;

#[cfg(test)]
mod testdata;
