//! tinyvi's trainer: data, metrics, reports and the command line.
pub mod cli;
pub mod data;
pub mod error;
pub mod metrics;
pub mod report;
