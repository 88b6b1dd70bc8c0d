//! # tinyvi
//!
//! Monte Carlo inference of a variational Bayesian LeNet on 28×28 grey images, for
//! microcontrollers and hosts alike: `no_std`, no heap, no `unsafe`, no panics on any input.
//!
//! The model file ([`format`]) holds every weight's posterior mean and variance and is read in
//! place from a borrowed `&[u8]` (flash on a device). [`LeNet::predict`] runs `samples`
//! forward passes with parameters drawn as the [`Mode`] says and returns the mean
//! probabilities with their uncertainty ([`Prediction`]): entropy, mutual information,
//! per-class spread, and an out-of-distribution flag.
//!
//! ```
//! use tinyvi::arch::{LENET_INPUT, LENET_LAYERS};
//! use tinyvi::format::{encode, encoded_len, LayerSpec, ModelSpec};
//! use tinyvi::{Config, LeNet, Mode, Model, Scratch};
//!
//! // A LeNet whose means and variances are all zero, encoded into a Vec (doctests have std;
//! // on a device the bytes come from `include_bytes!`).
//! let zeros = vec![0.0f32; 256 * 120];
//! let layers: Vec<LayerSpec> = LENET_LAYERS
//!     .iter()
//!     .map(|&(kind, then)| {
//!         let (w, b) = (kind.weight_count() as usize, kind.bias_count() as usize);
//!         LayerSpec {
//!             kind,
//!             then,
//!             weight_mean: &zeros[..w],
//!             weight_var: &zeros[..w],
//!             bias_mean: &zeros[..b],
//!             bias_var: &zeros[..b],
//!         }
//!     })
//!     .collect();
//! let spec = ModelSpec { input: LENET_INPUT, classes: 10, ood: None, layers: &layers };
//! let mut bytes = vec![0u8; encoded_len(&spec)?];
//! encode(&spec, &mut bytes)?;
//!
//! // Decode in place and predict with 16 samples.
//! let model = Model::from_bytes(&bytes)?;
//! let net = LeNet::new(&model)?;
//! let mut scratch = Scratch::new(); // 16,752 bytes; may be a `static`
//! let config = Config { samples: 16, seed: 42, mode: Mode::Weights, threshold: None };
//! let p = net.predict(&[0u8; 784], &config, &mut scratch)?;
//! // Every pass gives exactly 0.1 per class; their f32 mean is 0.1 to rounding.
//! assert!(p.probs.iter().all(|&q| (q - 0.1).abs() < 1e-6));
//! assert!((p.entropy - 10f32.ln()).abs() < 1e-6);
//! assert_eq!(p.mutual_information, 0.0);
//! # Ok::<(), tinyvi::Error>(())
//! ```
//!
//! # Same bits on every target
//!
//! A device's log and the host's replay of it must agree bit for bit, so everything that
//! could differ between targets is pinned down:
//! - the random numbers come from the crate's own generator ([`rng`], xoshiro128++) and
//!   normal sampler ([`gauss`], a ziggurat), in a documented order ([`infer`]);
//! - every transcendental function is `libm`'s (`expf`, `logf`), never `std`'s: the
//!   platform's `exp`/`ln` differ from `libm` in the last bit for some inputs. Square roots
//!   are correctly rounded everywhere, so `libm::sqrtf` (the default) and a hardware
//!   instruction give the same bits: a firmware may pass its own ([`params::Sqrt`],
//!   [`LeNet::predict_with`]; `libm::sqrtf` is a ≈ 60-instruction software routine on the
//!   Cortex-M4, `vsqrt.f32` one instruction);
//! - all arithmetic is plain `f32` in a fixed, documented order (the loop nesting may vary
//!   but each output's sequence of operations does not); Rust never contracts `a*b + c` into
//!   a fused multiply-add and the Cortex-M4's `vmla` is not fused, and no `mul_add` is used;
//! - comparisons that could see NaN or `−0.0` (ReLU, max-pooling, argmax) are written with
//!   `>` rather than `f32::max`, whose choice between `±0` is unspecified.
//!
//! # Memory
//!
//! One prediction works in a caller-owned [`Scratch`] of [`Scratch::BYTES`] = 16,752 bytes
//! plus about 3.3 KB of stack on `thumbv7em-none-eabihf` (release: `predict`'s own frame is
//! 2,080 bytes, its deepest callee, fc1 in `LocalReparam`, 1,160 bytes, libm and the
//! ziggurat's slow paths < 100, measured with a painted stack under
//! QEMU); ≈ 20.1 KB in all. The parameters are read from the model
//! bytes and never copied.
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
#[cfg(feature = "quant")]
pub mod quant;
pub mod report;
pub mod rng;
pub mod samples;

pub use error::{Error, Result};
pub use format::Model;
pub use infer::{Config, LeNet, Mode, Prediction, Scratch};
