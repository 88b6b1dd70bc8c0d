//! What the fuzz targets check, and the valid files their corpora start from.
//!
//! The targets in `fuzz_targets/` are thin: each calls one function here, so the same checks
//! also run under `cargo test` on the seeds (see `tests` below) without libFuzzer.

use std::io::Write;

use tinyvi::arch::{is_lenet, IMAGE_LEN, LENET_INPUT, LENET_LAYERS};
use tinyvi::format::{
    crc32, encode, encode_as, encoded_len, encoded_len_as, Activation, Input, LayerKind, LayerSpec,
    ModelSpec, OodScore, OodThreshold, Precision, CHECKSUM_LEN,
};
use tinyvi::Model;
use trainer::data::idx::{encode_images, encode_labels, gunzip, parse_images, parse_labels};

/// The `model` target: decode `data` as it is, then again with its CRC-32 trailer recomputed
/// (random bytes almost never carry a right checksum, and the checks behind it are the
/// interesting ones).
pub fn fuzz_model(data: &[u8]) {
    check_model(data);
    if data.len() >= CHECKSUM_LEN {
        let mut fixed = data.to_vec();
        let body = fixed.len() - CHECKSUM_LEN;
        let crc = crc32(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        check_model(&fixed);
    }
}

/// Decodes `bytes`; a model that decodes must encode again (as `f32`) and decode to the same
/// model (an `f32` file) or to the same values bit for bit (an `f16` or `int8` file, whose
/// values are then quantised again at its precision, which must encode and decode); a LeNet
/// must predict (with the `infer` feature).
fn check_model(bytes: &[u8]) {
    let Ok(model) = Model::from_bytes(bytes) else {
        return;
    };
    let again = reencode_as(&model, Precision::F32);
    let decoded = Model::from_bytes(&again).expect("a re-encoded model decodes");
    if model.precision() == Precision::F32 {
        assert_eq!(decoded, model, "re-encoding changes the model");
    } else {
        assert_eq!(
            values(&decoded),
            values(&model),
            "f32 of the decoded values differs"
        );
        let q = reencode_as(&model, model.precision());
        let requantised = Model::from_bytes(&q).expect("a re-quantised model decodes");
        assert_eq!(requantised.precision(), model.precision());
    }
    if is_lenet(&model) {
        predict(&model, bytes);
    }
}

/// Every decoded value's bits, layer by layer.
fn values(model: &Model<'_>) -> Vec<Vec<u32>> {
    model
        .layers()
        .iter()
        .flat_map(|l| [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var])
        .map(|t| t.iter().map(f32::to_bits).collect())
        .collect()
}

/// Encodes a decoded model with [`encode`] as `f32` (the tests' round trip).
#[cfg(test)]
fn reencode(model: &Model<'_>) -> Vec<u8> {
    reencode_as(model, Precision::F32)
}

/// Encodes a decoded model's values at `precision` with [`encode_as`].
fn reencode_as(model: &Model<'_>, precision: Precision) -> Vec<u8> {
    let arrays: Vec<[Vec<f32>; 4]> = model
        .layers()
        .iter()
        .map(|l| [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var].map(|t| t.iter().collect()))
        .collect();
    let layers: Vec<LayerSpec<'_>> = model
        .layers()
        .iter()
        .zip(&arrays)
        .map(|(l, [wm, wv, bm, bv])| LayerSpec {
            kind: l.kind,
            then: l.then,
            weight_mean: wm,
            weight_var: wv,
            bias_mean: bm,
            bias_var: bv,
        })
        .collect();
    let spec = ModelSpec {
        input: model.input(),
        classes: model.classes(),
        ood: model.ood_threshold(),
        layers: &layers,
    };
    let mut out =
        vec![0u8; encoded_len_as(&spec, precision).expect("encoded_len of a decoded model")];
    let n = encode_as(&spec, precision, &mut out).expect("encode of a decoded model");
    assert_eq!(n, out.len());
    out
}

/// One prediction with 2 samples in each mode, on an image and a seed taken from the input.
#[cfg(feature = "infer")]
fn predict(model: &Model<'_>, bytes: &[u8]) {
    use tinyvi::infer::{Config, LeNet, Mode, Scratch};
    let net = LeNet::new(model).expect("is_lenet models are LeNets");
    let image: Vec<u8> = bytes
        .iter()
        .rev()
        .copied()
        .cycle()
        .take(IMAGE_LEN)
        .collect();
    let seed = bytes
        .iter()
        .take(8)
        .fold(0u64, |s, &b| s.rotate_left(8) ^ u64::from(b));
    let mut scratch = Scratch::new();
    for mode in [Mode::Weights, Mode::LocalReparam, Mode::Mean] {
        let config = Config {
            samples: 2,
            seed,
            mode,
            threshold: None,
        };
        if let Ok(p) = net.predict(&image, &config, &mut scratch) {
            assert!(usize::from(p.class) < p.probs.len(), "class out of range");
        }
    }
}

/// Without the `infer` feature (before `tinyvi::infer` is merged) the prediction is skipped.
/// TODO(lead): once core-infer is on main, make `infer` a default feature of this crate.
#[cfg(not(feature = "infer"))]
fn predict(model: &Model<'_>, _bytes: &[u8]) {
    let _ = (model, IMAGE_LEN);
}

/// The `idx` target: both parsers on the raw bytes, and on the inflated bytes of a gzip
/// stream; whatever they accept must be what the header promises.
pub fn fuzz_idx(data: &[u8]) {
    check_idx(data);
    if let Ok(inflated) = gunzip(data) {
        check_idx(&inflated);
    }
}

fn check_idx(bytes: &[u8]) {
    if let Ok(pixels) = parse_images(bytes) {
        let n = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        assert!(n > 0);
        assert_eq!(
            pixels.len(),
            n * IMAGE_LEN,
            "pixels disagree with the header"
        );
        assert_eq!(bytes.len(), 16 + pixels.len());
    }
    if let Ok(labels) = parse_labels(bytes) {
        let n = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        assert!(n > 0);
        assert_eq!(labels.len(), n, "labels disagree with the header");
        assert!(
            labels.iter().all(|&l| l <= 9),
            "label out of range accepted"
        );
    }
}

/// splitmix64: a fixed, dependency-free generator for the seed weights.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

fn encode_vec(spec: &ModelSpec<'_>) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(spec).expect("valid spec")];
    encode(spec, &mut out).expect("valid spec");
    out
}

/// A valid 188-byte model: 2×1 input → Linear(2→2) + ReLU → Linear(2→3), with a threshold.
pub fn tiny_model() -> Vec<u8> {
    let layers = [
        LayerSpec {
            kind: LayerKind::Linear {
                in_features: 2,
                out_features: 2,
            },
            then: Activation::Relu,
            weight_mean: &[0.5, -1.0, 0.25, 2.0],
            weight_var: &[0.01, 0.02, 0.03, 0.04],
            bias_mean: &[0.0, 1.0],
            bias_var: &[0.001, 0.002],
        },
        LayerSpec {
            kind: LayerKind::Linear {
                in_features: 2,
                out_features: 3,
            },
            then: Activation::Identity,
            weight_mean: &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5],
            weight_var: &[0.0; 6],
            bias_mean: &[0.1, 0.2, 0.3],
            bias_var: &[0.0; 3],
        },
    ];
    encode_vec(&ModelSpec {
        input: Input {
            channels: 1,
            height: 2,
            width: 1,
            mean: 0.5,
            std: 0.25,
        },
        classes: 3,
        ood: Some(OodThreshold {
            score: OodScore::MutualInformation,
            value: 0.125,
        }),
        layers: &layers,
    })
}

/// A small valid convolutional model: 1×6×6 → Conv(1→2, 3) + ReLU + pool → Linear(8→4).
pub fn small_conv_model() -> Vec<u8> {
    let mut rng = SplitMix(7);
    let mut v =
        |n: usize, lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| rng.uniform(lo, hi)).collect() };
    let (w0, wv0, b0, bv0) = (
        v(18, -0.5, 0.5),
        v(18, 0.0, 0.01),
        v(2, -0.1, 0.1),
        v(2, 0.0, 0.01),
    );
    let (w1, wv1, b1, bv1) = (
        v(32, -0.5, 0.5),
        v(32, 0.0, 0.01),
        v(4, -0.1, 0.1),
        v(4, 0.0, 0.01),
    );
    let layers = [
        LayerSpec {
            kind: LayerKind::Conv2d {
                in_channels: 1,
                out_channels: 2,
                kernel: 3,
            },
            then: Activation::ReluMaxPool2,
            weight_mean: &w0,
            weight_var: &wv0,
            bias_mean: &b0,
            bias_var: &bv0,
        },
        LayerSpec {
            kind: LayerKind::Linear {
                in_features: 8,
                out_features: 4,
            },
            then: Activation::Identity,
            weight_mean: &w1,
            weight_var: &wv1,
            bias_mean: &b1,
            bias_var: &bv1,
        },
    ];
    encode_vec(&ModelSpec {
        input: Input {
            channels: 1,
            height: 6,
            width: 6,
            mean: 0.0,
            std: 1.0,
        },
        classes: 4,
        ood: None,
        layers: &layers,
    })
}

/// A valid LeNet (≈355 KB) with random means in ±0.1 and variances in [0, 0.01).
pub fn lenet_model(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    let arrays: Vec<[Vec<f32>; 4]> = LENET_LAYERS
        .iter()
        .map(|&(kind, _)| {
            let (w, b) = (kind.weight_count() as usize, kind.bias_count() as usize);
            let mut v = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
                (0..n).map(|_| rng.uniform(lo, hi)).collect()
            };
            [
                v(w, -0.1, 0.1),
                v(w, 0.0, 0.01),
                v(b, -0.1, 0.1),
                v(b, 0.0, 0.01),
            ]
        })
        .collect();
    let layers: Vec<LayerSpec<'_>> = LENET_LAYERS
        .iter()
        .zip(&arrays)
        .map(|(&(kind, then), [wm, wv, bm, bv])| LayerSpec {
            kind,
            then,
            weight_mean: wm,
            weight_var: wv,
            bias_mean: bm,
            bias_var: bv,
        })
        .collect();
    encode_vec(&ModelSpec {
        input: LENET_INPUT,
        classes: 10,
        ood: Some(OodThreshold {
            score: OodScore::Entropy,
            value: 1.0,
        }),
        layers: &layers,
    })
}

/// Gzip of `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

/// Valid IDX files: 2 images and 3 labels, raw and gzipped.
pub fn idx_files() -> Vec<(&'static str, Vec<u8>)> {
    let pixels: Vec<u8> = (0..2 * IMAGE_LEN).map(|i| (i * 7 % 256) as u8).collect();
    let images = encode_images(&pixels, 28, 28);
    let labels = encode_labels(&[0, 9, 4]);
    vec![
        ("images-2.idx3", images.clone()),
        ("labels-3.idx1", labels.clone()),
        ("images-2.idx3.gz", gz(&images)),
        ("labels-3.idx1.gz", gz(&labels)),
    ]
}

/// `bytes` (a valid model) at `precision`.
pub fn as_precision(bytes: &[u8], precision: Precision) -> Vec<u8> {
    let model = Model::from_bytes(bytes).expect("a valid model");
    reencode_as(&model, precision)
}

/// Seed files of the `model` target: three `f32` models, and the `f16` and `int8` files of
/// the tiny and the convolutional model and of the LeNet (version 2).
pub fn model_files() -> Vec<(&'static str, Vec<u8>)> {
    let (tiny, conv, lenet) = (tiny_model(), small_conv_model(), lenet_model(1));
    vec![
        ("tiny-f16.tnvi", as_precision(&tiny, Precision::F16)),
        ("tiny-int8.tnvi", as_precision(&tiny, Precision::Int8)),
        ("small-conv-int8.tnvi", as_precision(&conv, Precision::Int8)),
        (
            "lenet-random-f16.tnvi",
            as_precision(&lenet, Precision::F16),
        ),
        (
            "lenet-random-int8.tnvi",
            as_precision(&lenet, Precision::Int8),
        ),
        ("tiny.tnvi", tiny),
        ("small-conv.tnvi", conv),
        ("lenet-random.tnvi", lenet),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_and_pass_the_checks() {
        for (name, bytes) in model_files() {
            let m = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(is_lenet(&m), name.starts_with("lenet"), "{name}");
            if m.precision() == Precision::F32 {
                assert_eq!(reencode(&m), bytes, "{name} re-encodes to other bytes");
            } else {
                assert!(name.contains(m.precision().name()), "{name}");
            }
            fuzz_model(&bytes);
        }
        for (name, bytes) in idx_files() {
            let raw = if name.ends_with(".gz") {
                gunzip(&bytes).unwrap()
            } else {
                bytes.clone()
            };
            assert!(
                parse_images(&raw).is_ok() || parse_labels(&raw).is_ok(),
                "{name}"
            );
            fuzz_idx(&bytes);
        }
    }
}
