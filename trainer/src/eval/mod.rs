//! Evaluation: Monte Carlo prediction of the trained model and the metrics computed from it.

pub mod metrics;
pub mod monte_carlo;
pub mod threshold;
