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

pub mod arch;
pub mod error;
pub mod format;
pub mod samples;

pub use error::{Error, Result};
pub use format::Model;
