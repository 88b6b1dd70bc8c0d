//! Numerical building blocks: GEMM, im2col convolution, fused ReLU + max-pool, linear layers,
//! the Bayes-by-Backprop parameterisation, the LeNet's batched passes, RNG and thread pools.

// Index loops read best in numeric kernels.
#![allow(clippy::needless_range_loop)]

pub mod bayes;
pub mod conv;
pub mod gemm;
pub mod kernels;
pub mod lenet;
pub mod linear;
pub mod parallel;
pub mod rng;

#[cfg(test)]
mod gradcheck;
