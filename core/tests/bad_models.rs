//! Bad model files: each gives a typed [`tinyvi::Error`] with a one-line message naming the
//! problem, never a panic and never a model. One test per row of the README's table.

mod common;

use tinyvi::arch::{is_lenet, LENET_INPUT, LENET_LAYERS};
use tinyvi::format::{
    crc32, encode, encoded_len, Activation, Input, LayerKind, LayerSpec, ModelSpec, OodScore,
    OodThreshold, CHECKSUM_LEN, FORMAT_VERSION,
};
use tinyvi::{Error, Model};

/// splitmix64, for reproducible random weights.
struct SplitMix(u64);

impl SplitMix {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * ((z >> 40) as f32 / (1u64 << 24) as f32)
    }
}

fn encode_vec(spec: &ModelSpec<'_>) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; encoded_len(spec)?];
    let n = encode(spec, &mut out)?;
    assert_eq!(n, out.len());
    Ok(out)
}

/// The LeNet's four arrays per layer, random: means in ±0.1, variances in [0, 0.01).
fn lenet_arrays(seed: u64) -> Vec<[Vec<f32>; 4]> {
    let mut rng = SplitMix(seed);
    LENET_LAYERS
        .iter()
        .map(|&(kind, _)| {
            let (w, b) = (kind.weight_count() as usize, kind.bias_count() as usize);
            let mut v = |n: usize, lo: f32, hi: f32| (0..n).map(|_| rng.uniform(lo, hi)).collect();
            [
                v(w, -0.1, 0.1),
                v(w, 0.0, 0.01),
                v(b, -0.1, 0.1),
                v(b, 0.0, 0.01),
            ]
        })
        .collect()
}

/// Encodes the LeNet's layers with `arrays`, the kinds of `kinds` and `classes` outputs.
fn encode_layers(
    input: Input,
    kinds: &[(LayerKind, Activation)],
    arrays: &[[Vec<f32>; 4]],
    classes: u16,
) -> Result<Vec<u8>, Error> {
    let layers = common::layer_specs(kinds, arrays);
    encode_vec(&ModelSpec {
        input,
        classes,
        ood: Some(OodThreshold {
            score: OodScore::Entropy,
            value: 1.0,
        }),
        layers: &layers,
    })
}

/// A valid LeNet-shaped model with random weights (355,540 bytes).
fn lenet() -> Vec<u8> {
    encode_layers(LENET_INPUT, &LENET_LAYERS, &lenet_arrays(1), 10).unwrap()
}

/// The 188-byte model of `format.rs`'s tests: 2×1 input → Linear(2→2) + ReLU → Linear(2→3).
fn tiny() -> Vec<u8> {
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
        ood: None,
        layers: &layers,
    })
    .unwrap()
}

/// Replaces the CRC-32 trailer by the right one for the bytes before it.
fn fix_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - CHECKSUM_LEN;
    let crc = crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Byte offset in `bytes` of value `index` of layer `layer`'s array number `tensor`
/// (0 weight mean, 1 weight variance, 2 bias mean, 3 bias variance).
fn offset_of(bytes: &[u8], layer: usize, tensor: usize, index: usize) -> usize {
    let model = Model::from_bytes(bytes).unwrap();
    let l = model.layers()[layer];
    let t = [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var][tensor];
    assert!(index < t.len());
    t.as_bytes().as_ptr() as usize - bytes.as_ptr() as usize + 4 * index
}

/// `bytes` with value `index` of the given array set to `v`, behind a valid checksum.
fn patched(bytes: &[u8], layer: usize, tensor: usize, index: usize, v: f32) -> Vec<u8> {
    let at = offset_of(bytes, layer, tensor, index);
    let mut b = bytes.to_vec();
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    fix_crc(b)
}

/// The error for `bytes`, which must not decode, and its message, which must be one line.
fn error_of(bytes: &[u8]) -> (Error, String) {
    let e = Model::from_bytes(bytes).expect_err("bad bytes decoded");
    let msg = e.to_string();
    assert!(!msg.contains('\n') && !msg.is_empty(), "{msg:?}");
    (e, msg)
}

/// What a file cut to `len` bytes must give: too short for the magic and version → truncated,
/// else the last four bytes are taken as the checksum and do not match.
fn assert_truncation(full: &[u8], len: usize) {
    let cut = &full[..len];
    let (e, msg) = error_of(cut);
    if len < 5 {
        assert_eq!(e, Error::Truncated, "length {len}");
        assert_eq!(msg, "model file is truncated");
    } else {
        let stored = u32::from_le_bytes(cut[len - 4..].try_into().unwrap());
        let computed = crc32(&cut[..len - 4]);
        assert_eq!(
            e,
            Error::ChecksumMismatch { stored, computed },
            "length {len}"
        );
        assert_eq!(
            msg,
            format!(
                "model file is corrupt: CRC-32 {computed:#010x} does not match the stored {stored:#010x}"
            )
        );
    }
}

#[test]
fn seeds_are_valid() {
    let tiny = tiny();
    assert!(!is_lenet(&Model::from_bytes(&tiny).unwrap()));
    let bytes = lenet();
    assert_eq!(bytes.len(), 355_540);
    assert!(is_lenet(&Model::from_bytes(&bytes).unwrap()));
}

#[test]
fn empty_file() {
    assert_eq!(
        error_of(&[]),
        (Error::Truncated, "model file is truncated".into())
    );
}

#[test]
fn not_a_model_file() {
    // An IDX label file, a PNG header and text where a model should be.
    for bytes in [
        &[0, 0, 8, 1, 0, 0, 0, 1, 7][..],
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        b"hello",
    ] {
        assert_eq!(
            error_of(bytes),
            (Error::BadMagic, "not a tinyvi model (bad magic tag)".into())
        );
    }
}

#[test]
fn tiny_model_truncated_at_every_length() {
    let full = tiny();
    for len in 0..full.len() {
        assert_truncation(&full, len);
    }
}

#[test]
fn lenet_truncated_at_every_997th_length() {
    let full = lenet();
    let mut tried = 0;
    for len in (0..full.len())
        .step_by(997)
        .chain([1, 4, 5, full.len() - 1])
    {
        assert_truncation(&full, len);
        tried += 1;
    }
    assert!(tried > 350);
}

/// Cut short and given a valid checksum again, as a writer that died mid-file and then
/// appended a CRC would leave it: the body ends before the model does.
#[test]
fn truncated_body_with_a_valid_checksum() {
    for full in [tiny(), lenet()] {
        let body = full.len() - CHECKSUM_LEN;
        let step = if full.len() > 1000 { 997 } else { 1 };
        for len in (5..body).step_by(step) {
            let b = fix_crc([&full[..len], &[0; CHECKSUM_LEN]].concat());
            assert_eq!(
                error_of(&b),
                (Error::Truncated, "model file is truncated".into()),
                "body length {len}"
            );
        }
    }
}

/// Every single bit flipped: in the magic → bad magic; in the version → another version;
/// anywhere else (the trailer included) → checksum mismatch, which CRC-32 always detects.
#[test]
fn tiny_model_every_single_bit_flipped() {
    let full = tiny();
    for bit in 0..full.len() * 8 {
        let mut b = full.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let (e, msg) = error_of(&b);
        match bit / 8 {
            0..=3 => assert_eq!(e, Error::BadMagic, "bit {bit}"),
            4 => {
                // Version 1 becomes 1 ^ (1 << k); bit 7 makes it a two-byte varint 0x81 0x01.
                let found = if bit % 8 == 7 {
                    129
                } else {
                    1 ^ (1 << (bit % 8))
                };
                assert_eq!(e, Error::UnsupportedVersion { found }, "bit {bit}");
                assert_eq!(
                    msg,
                    format!(
                        "model format version {found} is not supported (this build reads versions 1 and 2)"
                    )
                );
            }
            _ => {
                assert!(
                    matches!(e, Error::ChecksumMismatch { .. }),
                    "bit {bit}: {e:?}"
                );
                assert!(msg.starts_with("model file is corrupt: CRC-32 0x"), "{msg}");
            }
        }
    }
}

/// Every 7919th bit of the LeNet flipped (360 flips): all past the version, so all checksum
/// mismatches.
#[test]
fn lenet_every_7919th_bit_flipped() {
    let full = lenet();
    for bit in (40..full.len() * 8).step_by(7919) {
        let mut b = full.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            matches!(error_of(&b).0, Error::ChecksumMismatch { .. }),
            "bit {bit}"
        );
    }
}

#[test]
fn another_format_version() {
    let full = tiny();
    // Version 3 with a valid checksum, version 0, and version 300 (a two-byte varint) without
    // one: the version is checked before the checksum, so the message names the real problem.
    let mut v3 = full.clone();
    v3[4] = 3;
    let v3 = fix_crc(v3);
    assert_eq!(
        error_of(&v3),
        (
            Error::UnsupportedVersion { found: 3 },
            "model format version 3 is not supported (this build reads versions 1 and 2)".into()
        )
    );
    // A version-1 body labelled version 2 reads its input as a precision and fails to parse.
    let mut v2 = full.clone();
    v2[4] = 2;
    assert_eq!(error_of(&fix_crc(v2)).0, Error::Malformed);
    let mut v0 = full.clone();
    v0[4] = 0;
    assert_eq!(error_of(&v0).0, Error::UnsupportedVersion { found: 0 });
    let v300 = [&full[..4], &[0xac, 0x02], &full[5..]].concat();
    assert_eq!(
        error_of(&v300),
        (
            Error::UnsupportedVersion { found: 300 },
            format!(
                "model format version 300 is not supported (this build reads versions 1 and {FORMAT_VERSION})"
            )
        )
    );
}

/// Valid model files of other architectures decode, but are not the LeNet the engine runs.
#[test]
fn another_architecture() {
    let tiny = tiny();
    let m = Model::from_bytes(&tiny).unwrap();
    assert!(!is_lenet(&m));

    // The LeNet with 5 classes instead of 10.
    let mut kinds = LENET_LAYERS;
    kinds[4].0 = LayerKind::Linear {
        in_features: 84,
        out_features: 5,
    };
    let mut arrays = lenet_arrays(2);
    arrays[4][0].truncate(84 * 5);
    arrays[4][1].truncate(84 * 5);
    arrays[4][2].truncate(5);
    arrays[4][3].truncate(5);
    let five = encode_layers(LENET_INPUT, &kinds, &arrays, 5).unwrap();
    assert!(!is_lenet(&Model::from_bytes(&five).unwrap()));

    // The LeNet without max-pooling after conv2 cannot chain to fc1 at all.
    let mut kinds = LENET_LAYERS;
    kinds[1].1 = Activation::Relu;
    assert_eq!(
        encode_layers(LENET_INPUT, &kinds, &lenet_arrays(3), 10),
        Err(Error::BadShape { layer: 2 })
    );
    assert_eq!(
        Error::BadShape { layer: 2 }.to_string(),
        "layer 2 has an invalid shape"
    );
    // What the inference engine says about a valid non-LeNet model.
    assert_eq!(
        tinyvi::LeNet::new(&m).err(),
        Some(Error::UnsupportedArchitecture)
    );
    assert_eq!(
        tinyvi::LeNet::new(&Model::from_bytes(&five).unwrap()).err(),
        Some(Error::UnsupportedArchitecture)
    );
    assert_eq!(
        Error::UnsupportedArchitecture.to_string(),
        "model architecture is not the LeNet-5 this engine runs"
    );
}

#[test]
fn nan_and_infinite_means() {
    let full = lenet();
    for (layer, tensor, index, v, name) in [
        (0, 0, 0, f32::NAN, "weight mean"),
        (2, 0, 30_719, f32::INFINITY, "weight mean"),
        (4, 2, 9, f32::NEG_INFINITY, "bias mean"),
        (1, 1, 17, f32::NAN, "weight variance"),
        (3, 3, 83, f32::INFINITY, "bias variance"),
    ] {
        let b = patched(&full, layer, tensor, index, v);
        let tensor_name = [
            tinyvi::error::TensorName::WeightMean,
            tinyvi::error::TensorName::WeightVar,
            tinyvi::error::TensorName::BiasMean,
            tinyvi::error::TensorName::BiasVar,
        ][tensor];
        assert_eq!(
            error_of(&b),
            (
                Error::NonFinite {
                    layer: layer as u8,
                    tensor: tensor_name,
                    index: index as u32
                },
                format!("layer {layer}: {name} [{index}] is not finite")
            )
        );
    }
}

#[test]
fn negative_variances() {
    let full = lenet();
    for (layer, tensor, index, v, name) in [
        (0, 1, 149, -1e-3, "weight variance"),
        (2, 3, 0, -f32::MIN_POSITIVE, "bias variance"),
        (4, 1, 839, -1.0, "weight variance"),
    ] {
        let b = patched(&full, layer, tensor, index, v);
        let tensor_name = [
            tinyvi::error::TensorName::WeightVar,
            tinyvi::error::TensorName::BiasVar,
        ][tensor / 2];
        assert_eq!(
            error_of(&b),
            (
                Error::NegativeVariance {
                    layer: layer as u8,
                    tensor: tensor_name,
                    index: index as u32
                },
                format!("layer {layer}: {name} [{index}] is negative")
            )
        );
    }
    // −0.0 is not negative: σ² = 0 is a valid (deterministic) weight.
    let b = patched(&full, 0, 1, 3, -0.0);
    assert!(Model::from_bytes(&b).is_ok());
    // A negative *mean* is fine.
    assert!(Model::from_bytes(&patched(&full, 0, 0, 3, -5.0)).is_ok());
}

#[test]
fn bytes_after_the_model() {
    let full = tiny();
    let b = fix_crc([&full[..], &[0; 8]].concat());
    // The old checksum and 4 zero bytes now sit between the model and the new trailer.
    assert_eq!(
        error_of(&b),
        (
            Error::TrailingBytes,
            "model file has unexpected bytes after the model".into()
        )
    );
}

#[test]
fn bad_input_normalisation_and_threshold() {
    let full = tiny();
    // Bytes 8..12 are the input mean, 12..16 the std (see format.rs's pinned layout).
    for (at, v) in [(8, f32::NAN), (12, 0.0), (12, -0.25), (12, f32::INFINITY)] {
        let mut b = full.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        assert_eq!(
            error_of(&fix_crc(b)),
            (Error::BadInput, "model input description is invalid".into())
        );
    }
    let lenet = lenet();
    // The LeNet's threshold: Some (1), Entropy (0), then the f32 at bytes 19..23.
    assert_eq!(&lenet[17..19], &[1, 0]);
    assert_eq!(&lenet[19..23], &1.0f32.to_le_bytes());
    for v in [f32::NAN, -1.0, f32::INFINITY] {
        let mut b = lenet.clone();
        b[19..23].copy_from_slice(&v.to_le_bytes());
        assert_eq!(
            error_of(&fix_crc(b)),
            (
                Error::BadThreshold,
                "the stored out-of-distribution threshold is invalid".into()
            )
        );
    }
}
