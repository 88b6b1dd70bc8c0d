//! # tinyvi
//!
//! Monte Carlo inference of a variational Bayesian LeNet on 28×28 grey images, for
//! microcontrollers and hosts alike: `no_std`, no heap, no `unsafe`, no panics on any input.
//!
//! The model file ([`format`]) holds every weight's posterior mean and variance and is read in
//! place from a borrowed `&[u8]` (flash on a device).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod arch;
pub mod conv;
pub mod dense;
pub mod error;
pub mod format;
pub mod gauss;
pub mod infer;
pub mod params;
pub mod pool;
pub mod rng;

pub use error::{Error, Result};
pub use format::Model;
pub use infer::{Config, LeNet, Mode, Prediction, Scratch};
