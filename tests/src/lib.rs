//! Helpers shared by the integration tests: fixture models and sample sets, the firmware
//! build and its QEMU run, and defmt decoding.

use std::path::{Path, PathBuf};

use tinyvi::arch::{IMAGE_LEN, LENET_INPUT, LENET_LAYERS};
use tinyvi::format::{encode, encoded_len, LayerSpec, ModelSpec, OodScore, OodThreshold};
use tinyvi::samples::{self, Dataset, Sample};

pub mod firmware;

/// `trainer compare`'s log parser and host replay.
pub use trainer::compare;

/// splitmix64: a small deterministic generator for fixtures.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, host only).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A random LeNet as an untrained Bayes-by-Backprop one starts: μ ~ N(0, 0.1²), ρ = −7
/// (σ² = softplus(−7)²), with an optional out-of-distribution threshold. Encoded model bytes.
pub fn random_lenet(seed: u64, ood: Option<OodThreshold>) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let sigma = (1.0f64 + (-7.0f64).exp()).ln();
    let var = (sigma * sigma) as f32;
    let arrays: Vec<[Vec<f32>; 4]> = LENET_LAYERS
        .iter()
        .map(|(kind, _)| {
            let (w, b) = (kind.weight_count() as usize, kind.bias_count() as usize);
            let mut means = |n: usize| (0..n).map(|_| (0.1 * rng.normal()) as f32).collect();
            [means(w), vec![var; w], means(b), vec![var; b]]
        })
        .collect();
    let layers: Vec<LayerSpec<'_>> = LENET_LAYERS
        .iter()
        .zip(&arrays)
        .map(|((kind, then), [wm, wv, bm, bv])| LayerSpec {
            kind: *kind,
            then: *then,
            weight_mean: wm,
            weight_var: wv,
            bias_mean: bm,
            bias_var: bv,
        })
        .collect();
    let spec = ModelSpec {
        input: LENET_INPUT,
        classes: 10,
        ood,
        layers: &layers,
    };
    let mut out = vec![0u8; encoded_len(&spec).expect("LeNet spec encodes")];
    encode(&spec, &mut out).expect("LeNet spec encodes");
    out
}

/// The threshold the fixture model carries, so that the `ood` flag is exercised.
pub const FIXTURE_THRESHOLD: OodThreshold = OodThreshold {
    score: OodScore::Entropy,
    value: 1.5,
};

/// `n` synthetic images, the first half "MNIST" (a bright stroke on black), the second half
/// "Fashion" (a textured blob): encoded sample-set bytes.
pub fn synthetic_samples(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let images: Vec<(Dataset, u32, u8, Vec<u8>)> = (0..n)
        .map(|k| {
            let fashion = k >= n / 2;
            let mut img = vec![0u8; IMAGE_LEN];
            if fashion {
                let (r0, r1) = (
                    4 + (rng.next_u64() % 6) as usize,
                    20 + (rng.next_u64() % 6) as usize,
                );
                for (p, px) in img.iter_mut().enumerate() {
                    let (r, c) = (p / 28, p % 28);
                    if (r0..r1).contains(&r) && (4..24).contains(&c) {
                        *px = 80 + (rng.next_u64() % 150) as u8;
                    }
                }
            } else {
                let col = 8 + (rng.next_u64() % 12) as usize;
                for r in 4..24 {
                    for dc in 0..3 {
                        img[r * 28 + col + dc] = 200 + (rng.next_u64() % 56) as u8;
                    }
                }
            }
            let dataset = if fashion {
                Dataset::Fashion
            } else {
                Dataset::Mnist
            };
            (dataset, k as u32, (rng.next_u64() % 10) as u8, img)
        })
        .collect();
    let records: Vec<Sample<'_>> = images
        .iter()
        .map(|(dataset, index, label, img)| Sample {
            dataset: *dataset,
            index: *index,
            label: *label,
            pixels: img,
        })
        .collect();
    let mut out = vec![0u8; samples::encoded_len(&records)];
    samples::encode(&records, &mut out).expect("synthetic samples encode");
    out
}

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The workspace's data folder, with MNIST in it (fetched when missing).
pub fn data_dir() -> PathBuf {
    trainer::data::workspace::mnist_dir()
}

/// A scratch directory under the workspace's `target/`, emptied.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target")
        .join("tinyvi-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyvi::samples::SampleSet;
    use tinyvi::Model;

    #[test]
    fn fixtures_decode() {
        let m = random_lenet(1, Some(FIXTURE_THRESHOLD));
        let model = Model::from_bytes(&m).unwrap();
        assert!(tinyvi::arch::is_lenet(&model));
        let s = synthetic_samples(2, 8);
        let set = SampleSet::from_bytes(&s).unwrap();
        assert_eq!(set.len(), 8);
        assert_eq!(set.iter().filter(|s| s.dataset.is_ood()).count(), 4);
    }
}
