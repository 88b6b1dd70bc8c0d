//! TEMPORARY STAND-IN — delete when branch `core-infer` is merged.
//!
//! Mirrors the public API of `tinyvi::infer` and `tinyvi::rng::image_seed` exactly, with a
//! deliberately small computation (a noisy linear read-out of a few pixels through fc3's
//! parameters, softmax, entropy, mutual information) so that the firmware, the host replay
//! and the QEMU test can be built and checked for bit-identity before the real inference
//! exists. It uses the same ingredients as the real core (a seeded PRNG, f32 multiply-adds in
//! a fixed order, `libm::expf`/`logf`/`sqrtf`), so a host ⇄ device difference would show.
//!
//! The firmware uses it through one line in `main.rs` (`use crate::stub_infer as infer;`),
//! the host replay through one `#[path]` module in `trainer/src/compare.rs`.
#![allow(dead_code)]

use tinyvi::arch::{normalize, CLASSES, IMAGE_LEN};
use tinyvi::format::{Model, OodScore, OodThreshold};
use tinyvi::{Error, Result};

/// How weights are sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A fresh sample of every weight per Monte Carlo sample.
    Weights,
    /// Local reparameterisation: sample pre-activations.
    LocalReparam,
    /// Posterior means only (deterministic).
    Mean,
}

impl Mode {
    /// The name used in logs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Weights => "weights",
            Mode::LocalReparam => "local-reparam",
            Mode::Mean => "mean",
        }
    }

    /// The mode called `name`.
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "weights" => Some(Mode::Weights),
            "local-reparam" => Some(Mode::LocalReparam),
            "mean" => Some(Mode::Mean),
            _ => None,
        }
    }
}

/// What to compute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Monte Carlo samples.
    pub samples: u32,
    /// PRNG seed.
    pub seed: u64,
    /// Sampling mode.
    pub mode: Mode,
    /// Out-of-distribution rule.
    pub threshold: Option<OodThreshold>,
}

/// Working memory.
pub struct Scratch {
    x: [f32; 84],
}

impl Scratch {
    /// Bytes of working memory.
    pub const BYTES: usize = core::mem::size_of::<Scratch>();

    /// Zeroed working memory.
    pub const fn new() -> Self {
        Scratch { x: [0.0; 84] }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// A prediction with its uncertainty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Mean probabilities p̄.
    pub probs: [f32; CLASSES],
    /// argmax p̄.
    pub class: u8,
    /// max p̄.
    pub confidence: f32,
    /// H[p̄].
    pub entropy: f32,
    /// mean H[p_s].
    pub expected_entropy: f32,
    /// H[p̄] − mean H[p_s].
    pub mutual_information: f32,
    /// Standard deviation of p_s over samples.
    pub std: [f32; CLASSES],
    /// Flagged out of distribution by the threshold.
    pub ood: bool,
}

/// The LeNet, ready to run.
pub struct LeNet<'m> {
    model: Model<'m>,
}

impl<'m> LeNet<'m> {
    /// Checks the architecture.
    pub fn new(model: &Model<'m>) -> Result<LeNet<'m>> {
        if !tinyvi::arch::is_lenet(model) {
            return Err(Error::UnsupportedArchitecture);
        }
        Ok(LeNet {
            model: model.clone(),
        })
    }

    /// Runs `config.samples` noisy read-outs and summarises them.
    pub fn predict(
        &self,
        image: &[u8],
        config: &Config,
        scratch: &mut Scratch,
    ) -> Result<Prediction> {
        if image.len() != IMAGE_LEN {
            return Err(Error::ImageSize {
                expected: IMAGE_LEN as u32,
                found: image.len() as u32,
            });
        }
        if config.samples == 0 {
            return Err(Error::ZeroSamples);
        }
        let input = self.model.input();
        for (j, x) in scratch.x.iter_mut().enumerate() {
            *x = normalize(image[j * 9 + 10], input.mean, input.std);
        }
        let fc3 = self.model.layers()[4];
        let mut rng = Rng::new(config.seed);
        let mut sum = [0.0f32; CLASSES];
        let mut sum_sq = [0.0f32; CLASSES];
        let mut sum_h = 0.0f32;
        for _ in 0..config.samples {
            let mut logits = [0.0f32; CLASSES];
            for (c, l) in logits.iter_mut().enumerate() {
                let mut mean = fc3.bias_mean.get(c).unwrap_or(0.0);
                let mut var = fc3.bias_var.get(c).unwrap_or(0.0);
                for (j, &x) in scratch.x.iter().enumerate() {
                    let w = fc3.weight_mean.get(c * 84 + j).unwrap_or(0.0);
                    let v = fc3.weight_var.get(c * 84 + j).unwrap_or(0.0);
                    match config.mode {
                        Mode::Weights => mean += (w + libm::sqrtf(v) * rng.normal()) * x,
                        _ => mean += w * x,
                    }
                    var += v * x * x;
                }
                *l = match config.mode {
                    Mode::LocalReparam => mean + libm::sqrtf(var) * rng.normal(),
                    _ => mean,
                };
            }
            let p = softmax(&logits);
            for c in 0..CLASSES {
                sum[c] += p[c];
                sum_sq[c] += p[c] * p[c];
            }
            sum_h += entropy(&p);
        }
        let n = config.samples as f32;
        let probs = sum.map(|s| s / n);
        let mut std = [0.0f32; CLASSES];
        for c in 0..CLASSES {
            std[c] = libm::sqrtf((sum_sq[c] / n - probs[c] * probs[c]).max(0.0));
        }
        let mut class = 0;
        for c in 1..CLASSES {
            if probs[c] > probs[class] {
                class = c;
            }
        }
        let h = entropy(&probs);
        let expected_entropy = sum_h / n;
        let mi = (h - expected_entropy).max(0.0);
        let ood = match config.threshold {
            Some(OodThreshold {
                score: OodScore::Entropy,
                value,
            }) => h > value,
            Some(OodThreshold {
                score: OodScore::MutualInformation,
                value,
            }) => mi > value,
            None => false,
        };
        Ok(Prediction {
            probs,
            class: class as u8,
            confidence: probs[class],
            entropy: h,
            expected_entropy,
            mutual_information: mi,
            std,
            ood,
        })
    }
}

fn softmax(l: &[f32; CLASSES]) -> [f32; CLASSES] {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e = l.map(|x| libm::expf(x - m));
    let s: f32 = e.iter().sum();
    e.map(|x| x / s)
}

fn entropy(p: &[f32; CLASSES]) -> f32 {
    -p.iter()
        .filter(|&&q| q > 0.0)
        .map(|&q| q * libm::logf(q))
        .sum::<f32>()
}

/// The seed of image `index` under the run seed `seed` (splitmix64 of both).
pub fn image_seed(seed: u64, index: u32) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x2545_F491_4F6C_DD1D)
    }

    fn next_u32(&mut self) -> u32 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// An approximate standard normal: the sum of four uniforms, centred and scaled.
    fn normal(&mut self) -> f32 {
        let mut s = 0.0f32;
        for _ in 0..4 {
            s += (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0);
        }
        (s - 2.0) * 1.732_050_8
    }
}
