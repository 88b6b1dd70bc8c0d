//! The model file: a postcard encoding of the architecture and of every layer's posterior
//! means and variances, followed by a CRC-32, read in place from a borrowed `&[u8]`.
//!
//! The layout is documented in `core/README.md` ("Format stability") and pinned by byte-exact
//! test vectors below. Decoding validates everything and never panics; parameter arrays stay
//! in the borrowed bytes (flash on a device) and are read with [`F32s`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, TensorName};

/// The four bytes every model file starts with.
pub const MAGIC: [u8; 4] = *b"TNVI";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The most layers a model file may hold.
pub const MAX_LAYERS: usize = 8;
/// Bytes of the CRC-32 trailer.
pub const CHECKSUM_LEN: usize = 4;

/// CRC-32 (ISO-HDLC, as zlib and PNG use it), with a 1 KiB table to keep flash small.
const CRC32: crc::Crc<u32, crc::Table<1>> =
    crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);

/// The CRC-32 of `bytes`, as stored in the trailer.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// The model's input: its shape and the normalisation `x = (p/255 − mean) / std`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Input {
    /// Channels (1 for grey images).
    pub channels: u16,
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
    /// Mean subtracted from `p/255`.
    pub mean: f32,
    /// Standard deviation that `p/255 − mean` is divided by.
    pub std: f32,
}

/// A layer's operation and shape.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayerKind {
    /// 2-D convolution, square kernel, stride 1, no padding. Weights in
    /// `[out_channels][in_channels][kernel][kernel]` order.
    Conv2d {
        /// Input channels.
        in_channels: u16,
        /// Output channels.
        out_channels: u16,
        /// Kernel side.
        kernel: u16,
    },
    /// Fully connected layer on the flattened (C, H, W) input. Weights in
    /// `[out_features][in_features]` order.
    Linear {
        /// Inputs.
        in_features: u16,
        /// Outputs.
        out_features: u16,
    },
}

impl LayerKind {
    /// Number of weights (without biases).
    pub const fn weight_count(self) -> u64 {
        match self {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
            } => out_channels as u64 * in_channels as u64 * kernel as u64 * kernel as u64,
            LayerKind::Linear {
                in_features,
                out_features,
            } => out_features as u64 * in_features as u64,
        }
    }

    /// Number of biases (one per output channel or feature).
    pub const fn bias_count(self) -> u64 {
        match self {
            LayerKind::Conv2d { out_channels, .. } => out_channels as u64,
            LayerKind::Linear { out_features, .. } => out_features as u64,
        }
    }
}

/// What follows a layer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// Nothing: the output is the logits (only the last layer), followed by softmax.
    Identity,
    /// ReLU.
    Relu,
    /// ReLU, then 2×2 max-pooling with stride 2.
    ReluMaxPool2,
}

/// Which uncertainty score the out-of-distribution threshold applies to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OodScore {
    /// Predictive entropy H[p̄] (nats).
    Entropy,
    /// Mutual information `H[p̄] − mean H[p_s]` (nats).
    MutualInformation,
}

/// An abstain / out-of-distribution rule: flag an input when `score > value`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OodThreshold {
    /// The score compared.
    pub score: OodScore,
    /// The threshold, in nats.
    pub value: f32,
}

/// A parameter array as stored: 0–3 zero bytes so that `data` starts at a multiple of 4 from
/// the start of the file, then the little-endian f32 values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct TensorRecord<'a> {
    #[serde(borrow)]
    pad: &'a [u8],
    #[serde(borrow)]
    data: &'a [u8],
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct LayerRecord<'a> {
    kind: LayerKind,
    then: Activation,
    #[serde(borrow)]
    weight_mean: TensorRecord<'a>,
    #[serde(borrow)]
    weight_var: TensorRecord<'a>,
    #[serde(borrow)]
    bias_mean: TensorRecord<'a>,
    #[serde(borrow)]
    bias_var: TensorRecord<'a>,
}

/// The fields before the layers, encoded on their own by the writer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Preamble {
    magic: [u8; 4],
    version: u16,
    input: Input,
    classes: u16,
    ood: Option<OodThreshold>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ModelRecord<'a> {
    preamble: Preamble,
    #[serde(borrow)]
    layers: heapless::Vec<LayerRecord<'a>, MAX_LAYERS>,
}

/// A borrowed array of little-endian f32 values (in flash or in a file's bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F32s<'a> {
    bytes: &'a [u8],
}

impl<'a> F32s<'a> {
    /// A view of `bytes`, whose length must be a multiple of 4.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() % 4 == 0).then_some(F32s { bytes })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Value `i`, if in range.
    pub fn get(&self, i: usize) -> Option<f32> {
        let start = i.checked_mul(4)?;
        let b = self.bytes.get(start..start.checked_add(4)?)?;
        Some(le_f32(b))
    }

    /// The values in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = f32> + Clone + 'a {
        self.bytes.chunks_exact(4).map(le_f32)
    }

    /// The raw little-endian bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Copies the values into `out`, which must have exactly [`len`](Self::len) elements;
    /// returns `false` (and copies nothing) otherwise.
    pub fn copy_to(&self, out: &mut [f32]) -> bool {
        if out.len() != self.len() {
            return false;
        }
        for (o, v) in out.iter_mut().zip(self.iter()) {
            *o = v;
        }
        true
    }
}

/// The little-endian `f32` in `b`, which must hold exactly 4 bytes (0.0 otherwise).
#[inline(always)]
pub fn le_f32(b: &[u8]) -> f32 {
    match *b {
        [b0, b1, b2, b3] => f32::from_le_bytes([b0, b1, b2, b3]),
        _ => 0.0,
    }
}

/// One decoded layer: its shape, what follows it, and views of its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layer<'a> {
    /// Operation and shape.
    pub kind: LayerKind,
    /// What follows the layer.
    pub then: Activation,
    /// Posterior means of the weights.
    pub weight_mean: F32s<'a>,
    /// Posterior variances σ² of the weights.
    pub weight_var: F32s<'a>,
    /// Posterior means of the biases.
    pub bias_mean: F32s<'a>,
    /// Posterior variances σ² of the biases.
    pub bias_var: F32s<'a>,
}

/// A validated model, borrowing its parameters from the bytes it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Model<'a> {
    input: Input,
    classes: u16,
    ood: Option<OodThreshold>,
    layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
}

impl<'a> Model<'a> {
    /// Decodes and validates a model file without copying its parameters.
    ///
    /// Checks, in order: the magic tag, the format version, the CRC-32, the encoding, the
    /// architecture (shapes chain from the input to `classes` outputs), the array lengths,
    /// that every mean and variance is finite and every variance non-negative, and the
    /// out-of-distribution threshold.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < MAGIC.len() {
            return Err(Error::Truncated);
        }
        if !bytes.starts_with(&MAGIC) {
            return Err(Error::BadMagic);
        }
        let (magic_and_version, _) =
            postcard::take_from_bytes::<([u8; 4], u16)>(bytes).map_err(|_| Error::Truncated)?;
        if magic_and_version.1 != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: magic_and_version.1,
            });
        }
        let Some(body_len) = bytes.len().checked_sub(CHECKSUM_LEN) else {
            return Err(Error::Truncated);
        };
        let (body, trailer) = bytes.split_at(body_len);
        let &[t0, t1, t2, t3] = trailer else {
            return Err(Error::Truncated);
        };
        let stored = u32::from_le_bytes([t0, t1, t2, t3]);
        let computed = crc32(body);
        if stored != computed {
            return Err(Error::ChecksumMismatch { stored, computed });
        }
        let (record, rest) =
            postcard::take_from_bytes::<ModelRecord<'a>>(body).map_err(|e| match e {
                postcard::Error::DeserializeUnexpectedEnd => Error::Truncated,
                _ => Error::Malformed,
            })?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Self::validate(record)
    }

    fn validate(record: ModelRecord<'a>) -> Result<Self> {
        let Preamble {
            input,
            classes,
            ood,
            ..
        } = record.preamble;
        if input.channels == 0
            || input.height == 0
            || input.width == 0
            || !input.mean.is_finite()
            || !input.std.is_finite()
            || input.std <= 0.0
        {
            return Err(Error::BadInput);
        }
        if classes == 0 {
            return Err(Error::BadShape { layer: 0 });
        }
        if record.layers.is_empty() {
            return Err(Error::LayerCount { found: 0 });
        }
        if let Some(t) = ood {
            if !t.value.is_finite() || t.value < 0.0 {
                return Err(Error::BadThreshold);
            }
        }
        // Shape of the activation entering each layer: (channels, height, width).
        let mut shape = (
            input.channels as u64,
            input.height as u64,
            input.width as u64,
        );
        let mut layers = heapless::Vec::new();
        let last = record.layers.len() - 1;
        for (i, rec) in record.layers.iter().enumerate() {
            let layer = i as u8;
            let bad_shape = Error::BadShape { layer };
            shape = match rec.kind {
                LayerKind::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                } => {
                    let k = kernel as u64;
                    if in_channels as u64 != shape.0
                        || out_channels == 0
                        || k == 0
                        || k > shape.1
                        || k > shape.2
                    {
                        return Err(bad_shape);
                    }
                    (out_channels as u64, shape.1 - k + 1, shape.2 - k + 1)
                }
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => {
                    if in_features as u64 != shape.0 * shape.1 * shape.2 || out_features == 0 {
                        return Err(bad_shape);
                    }
                    (out_features as u64, 1, 1)
                }
            };
            match rec.then {
                Activation::Identity if i != last => return Err(bad_shape),
                Activation::Relu | Activation::ReluMaxPool2 if i == last => return Err(bad_shape),
                Activation::ReluMaxPool2 => {
                    if shape.1 < 2 || shape.2 < 2 {
                        return Err(bad_shape);
                    }
                    shape = (shape.0, shape.1 / 2, shape.2 / 2);
                }
                _ => {}
            }
            let tensors = [
                (
                    TensorName::WeightMean,
                    rec.weight_mean,
                    rec.kind.weight_count(),
                ),
                (
                    TensorName::WeightVar,
                    rec.weight_var,
                    rec.kind.weight_count(),
                ),
                (TensorName::BiasMean, rec.bias_mean, rec.kind.bias_count()),
                (TensorName::BiasVar, rec.bias_var, rec.kind.bias_count()),
            ];
            let mut views = [F32s { bytes: &[] }; 4];
            for (view, (tensor, t, count)) in views.iter_mut().zip(tensors) {
                if t.pad.len() > 3 || t.pad.iter().any(|&b| b != 0) {
                    return Err(Error::Malformed);
                }
                if t.data.len() as u64 != count * 4 {
                    return Err(Error::LengthMismatch { layer, tensor });
                }
                let values = F32s { bytes: t.data };
                let is_var = matches!(tensor, TensorName::WeightVar | TensorName::BiasVar);
                for (index, v) in values.iter().enumerate() {
                    let index = index as u32;
                    if !v.is_finite() {
                        return Err(Error::NonFinite {
                            layer,
                            tensor,
                            index,
                        });
                    }
                    if is_var && v < 0.0 {
                        return Err(Error::NegativeVariance {
                            layer,
                            tensor,
                            index,
                        });
                    }
                }
                *view = values;
            }
            let [weight_mean, weight_var, bias_mean, bias_var] = views;
            // Cannot fail: `record.layers` has at most MAX_LAYERS entries.
            let _ = layers.push(Layer {
                kind: rec.kind,
                then: rec.then,
                weight_mean,
                weight_var,
                bias_mean,
                bias_var,
            });
        }
        if shape != (classes as u64, 1, 1) {
            return Err(Error::BadShape { layer: last as u8 });
        }
        Ok(Model {
            input,
            classes,
            ood,
            layers,
        })
    }

    /// The input shape and normalisation.
    pub fn input(&self) -> Input {
        self.input
    }

    /// Number of classes (outputs of the last layer).
    pub fn classes(&self) -> u16 {
        self.classes
    }

    /// The out-of-distribution threshold chosen by the trainer, if any.
    pub fn ood_threshold(&self) -> Option<OodThreshold> {
        self.ood
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Layer<'a>] {
        &self.layers
    }

    /// Number of weights and biases.
    pub fn parameter_count(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.kind.weight_count() + l.kind.bias_count())
            .sum()
    }
}

/// One layer to encode: shape and parameters as f32 slices.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec<'s> {
    /// Operation and shape.
    pub kind: LayerKind,
    /// What follows the layer.
    pub then: Activation,
    /// Posterior means of the weights.
    pub weight_mean: &'s [f32],
    /// Posterior variances σ² of the weights.
    pub weight_var: &'s [f32],
    /// Posterior means of the biases.
    pub bias_mean: &'s [f32],
    /// Posterior variances σ² of the biases.
    pub bias_var: &'s [f32],
}

/// A model to encode.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec<'s> {
    /// Input shape and normalisation.
    pub input: Input,
    /// Number of classes.
    pub classes: u16,
    /// Optional out-of-distribution threshold.
    pub ood: Option<OodThreshold>,
    /// The layers, first to last.
    pub layers: &'s [LayerSpec<'s>],
}

/// Writes into a buffer, or only counts when the buffer is too small.
struct Writer<'o> {
    out: &'o mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        if let Some(dst) = self.out.get_mut(self.pos..end) {
            dst.copy_from_slice(b);
        }
        self.pos = end;
    }

    /// Any serde value, with postcard's encoding.
    fn value<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let mut buf = [0u8; 64];
        let used = postcard::to_slice(v, &mut buf).map_err(|_| Error::TooLarge)?;
        self.bytes(used);
        Ok(())
    }

    /// A parameter array: `TensorRecord { pad, data }` with `data` 4-aligned in the file.
    fn tensor(&mut self, values: &[f32]) -> Result<()> {
        let data_len = u32::try_from(values.len() * 4).map_err(|_| Error::TooLarge)?;
        let len_bytes = varint_len(data_len);
        // Layout: varint(pad_len) (1 byte), pad, varint(data_len), data.
        let pad = (4 - (self.pos + 1 + len_bytes) % 4) % 4;
        self.value(&[0u8; 3].get(..pad).unwrap_or(&[]))?;
        self.value(&data_len)?;
        for v in values {
            self.bytes(&v.to_le_bytes());
        }
        Ok(())
    }
}

/// Bytes of postcard's varint (LEB128) encoding of `v`.
fn varint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0x0fff_ffff => 4,
        _ => 5,
    }
}

fn write_model(spec: &ModelSpec<'_>, w: &mut Writer<'_>) -> Result<()> {
    if spec.layers.is_empty() || spec.layers.len() > MAX_LAYERS {
        return Err(Error::LayerCount {
            found: spec.layers.len().min(u16::MAX as usize) as u16,
        });
    }
    w.value(&Preamble {
        magic: MAGIC,
        version: FORMAT_VERSION,
        input: spec.input,
        classes: spec.classes,
        ood: spec.ood,
    })?;
    w.value(&(spec.layers.len() as u32))?;
    for l in spec.layers {
        w.value(&(l.kind, l.then))?;
        for t in [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var] {
            w.tensor(t)?;
        }
    }
    Ok(())
}

/// Bytes that [`encode`] writes for `spec`, checksum included.
pub fn encoded_len(spec: &ModelSpec<'_>) -> Result<usize> {
    let mut w = Writer {
        out: &mut [],
        pos: 0,
    };
    write_model(spec, &mut w)?;
    Ok(w.pos + CHECKSUM_LEN)
}

/// Encodes `spec` into `out` and returns the number of bytes written.
///
/// The result is decoded again before returning, so what this writes always reads back:
/// an invalid spec (shapes that do not chain, wrong lengths, NaN, negative variances) is
/// refused with the same error [`Model::from_bytes`] would give.
pub fn encode(spec: &ModelSpec<'_>, out: &mut [u8]) -> Result<usize> {
    let needed = encoded_len(spec)?;
    let Some(out) = out.get_mut(..needed) else {
        return Err(Error::BufferTooSmall {
            needed: u32::try_from(needed).unwrap_or(u32::MAX),
        });
    };
    let body_len = needed - CHECKSUM_LEN;
    let mut w = Writer { out, pos: 0 };
    write_model(spec, &mut w)?;
    let crc = crc32(w.out.get(..body_len).unwrap_or(&[]));
    w.bytes(&crc.to_le_bytes());
    Model::from_bytes(w.out)?;
    Ok(needed)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    const W1: [f32; 4] = [0.5, -1.0, 0.25, 2.0];
    const V1: [f32; 4] = [0.01, 0.02, 0.03, 0.04];
    const B1: [f32; 2] = [0.0, 1.0];
    const BV1: [f32; 2] = [0.001, 0.002];
    const W2: [f32; 6] = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
    const V2: [f32; 6] = [0.0; 6];
    const B2: [f32; 3] = [0.1, 0.2, 0.3];

    /// A 2×1 input → Linear(2→2) + ReLU → Linear(2→3).
    fn tiny_layers() -> [LayerSpec<'static>; 2] {
        [
            LayerSpec {
                kind: LayerKind::Linear {
                    in_features: 2,
                    out_features: 2,
                },
                then: Activation::Relu,
                weight_mean: &W1,
                weight_var: &V1,
                bias_mean: &B1,
                bias_var: &BV1,
            },
            LayerSpec {
                kind: LayerKind::Linear {
                    in_features: 2,
                    out_features: 3,
                },
                then: Activation::Identity,
                weight_mean: &W2,
                weight_var: &V2,
                bias_mean: &B2,
                bias_var: &[0.0; 3],
            },
        ]
    }

    fn tiny_spec<'a>(layers: &'a [LayerSpec<'a>]) -> ModelSpec<'a> {
        ModelSpec {
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
            layers,
        }
    }

    fn encode_vec(spec: &ModelSpec<'_>) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; encoded_len(spec)?];
        let n = encode(spec, &mut buf)?;
        assert_eq!(n, buf.len());
        Ok(buf)
    }

    fn tiny() -> Vec<u8> {
        encode_vec(&tiny_spec(&tiny_layers())).unwrap()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The tiny model, written out byte by byte: this is the format.
    #[test]
    fn tiny_model_bytes_are_pinned() {
        let mut expected: Vec<u8> = vec![];
        expected.extend_from_slice(b"TNVI"); // magic
        expected.push(1); // version (varint)
        expected.extend_from_slice(&[1, 2, 1]); // channels, height, width (varints)
        expected.extend_from_slice(&0.5f32.to_le_bytes()); // mean
        expected.extend_from_slice(&0.25f32.to_le_bytes()); // std
        expected.push(3); // classes
        expected.extend_from_slice(&[1, 1]); // Some(OodThreshold { MutualInformation, .. })
        expected.extend_from_slice(&0.125f32.to_le_bytes());
        expected.push(2); // two layers
                          // Layer 0: Linear (variant 1) { 2, 2 }, Relu (variant 1).
        expected.extend_from_slice(&[1, 2, 2, 1]);
        assert_eq!(expected.len(), 28);
        // weight mean: pad so that data starts at a multiple of 4: 28 + 1 + pad + 1 ≡ 0.
        expected.extend_from_slice(&[2, 0, 0, 16]);
        expected.extend_from_slice(&f32_bytes(&W1));
        assert_eq!(expected.len(), 48);
        expected.extend_from_slice(&[2, 0, 0, 16]); // 48 + 1 + 2 + 1 = 52
        expected.extend_from_slice(&f32_bytes(&V1));
        expected.extend_from_slice(&[2, 0, 0, 8]);
        expected.extend_from_slice(&f32_bytes(&B1));
        expected.extend_from_slice(&[2, 0, 0, 8]);
        expected.extend_from_slice(&f32_bytes(&BV1));
        // Layer 1: Linear { 2, 3 }, Identity (variant 0).
        expected.extend_from_slice(&[1, 2, 3, 0]);
        expected.extend_from_slice(&[2, 0, 0, 24]);
        expected.extend_from_slice(&f32_bytes(&W2));
        expected.extend_from_slice(&[2, 0, 0, 24]);
        expected.extend_from_slice(&f32_bytes(&V2));
        expected.extend_from_slice(&[2, 0, 0, 12]);
        expected.extend_from_slice(&f32_bytes(&B2));
        expected.extend_from_slice(&[2, 0, 0, 12]);
        expected.extend_from_slice(&f32_bytes(&[0.0; 3]));
        let crc = crc32(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());

        let bytes = tiny();
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 188);
        assert_eq!(crc, 0xD99B_F580, "CRC-32 of the pinned body");
    }

    #[test]
    fn crc32_is_the_zlib_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn writer_agrees_with_postcard() {
        let bytes = tiny();
        let body = &bytes[..bytes.len() - CHECKSUM_LEN];
        let record: ModelRecord<'_> = postcard::from_bytes(body).unwrap();
        let mut again = vec![0u8; body.len()];
        let used = postcard::to_slice(&record, &mut again).unwrap();
        assert_eq!(used, body);
    }

    #[test]
    fn decodes_in_place_with_aligned_arrays() {
        let bytes = tiny();
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.classes(), 3);
        assert_eq!(model.parameter_count(), 4 + 2 + 6 + 3);
        assert_eq!(
            model.ood_threshold(),
            Some(OodThreshold {
                score: OodScore::MutualInformation,
                value: 0.125
            })
        );
        let l0 = model.layers()[0];
        assert_eq!(l0.weight_mean.iter().collect::<Vec<_>>(), W1);
        assert_eq!(l0.bias_var.iter().collect::<Vec<_>>(), BV1);
        assert_eq!(model.layers()[1].bias_mean.get(2), Some(0.3));
        assert_eq!(model.layers()[1].bias_mean.get(3), None);
        let base = bytes.as_ptr() as usize;
        for l in model.layers() {
            for t in [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var] {
                let offset = t.as_bytes().as_ptr() as usize - base;
                assert_eq!(offset % 4, 0, "array at offset {offset} is not 4-aligned");
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = tiny();
        for len in 0..bytes.len() {
            assert!(Model::from_bytes(&bytes[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn every_single_bit_flip_is_an_error() {
        let bytes = tiny();
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Model::from_bytes(&b).is_err(), "bit {bit}");
        }
    }

    /// Rewrites the body and fixes the checksum, to reach the checks behind the CRC.
    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn header_errors_are_typed() {
        let bytes = tiny();
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(Model::from_bytes(&b), Err(Error::BadMagic));
        let mut b = bytes[..bytes.len() - 4].to_vec();
        b[4] = 2;
        assert_eq!(
            Model::from_bytes(&with_crc(b)),
            Err(Error::UnsupportedVersion { found: 2 })
        );
        let mut b = bytes.clone();
        b[30] ^= 0x10;
        assert!(matches!(
            Model::from_bytes(&b),
            Err(Error::ChecksumMismatch { .. })
        ));
        let mut b = bytes[..bytes.len() - 4].to_vec();
        b.push(0);
        assert_eq!(Model::from_bytes(&with_crc(b)), Err(Error::TrailingBytes));
        assert_eq!(Model::from_bytes(&[]), Err(Error::Truncated));
    }

    #[test]
    fn bad_values_are_refused_by_the_encoder_and_the_decoder() {
        let mut layers = tiny_layers();
        let nan = [0.5, f32::NAN, 0.25, 2.0];
        layers[0].weight_mean = &nan;
        let err = Error::NonFinite {
            layer: 0,
            tensor: TensorName::WeightMean,
            index: 1,
        };
        assert_eq!(encode_vec(&tiny_spec(&layers)), Err(err));

        let mut layers = tiny_layers();
        let neg = [0.0, 0.0, -1e-3];
        layers[1].bias_var = &neg;
        let err = Error::NegativeVariance {
            layer: 1,
            tensor: TensorName::BiasVar,
            index: 2,
        };
        assert_eq!(encode_vec(&tiny_spec(&layers)), Err(err));

        // The decoder finds the same when the bytes are patched behind a valid checksum.
        let bytes = tiny();
        let mut body = bytes[..bytes.len() - 4].to_vec();
        let inf = f32::INFINITY.to_le_bytes();
        body[52..56].copy_from_slice(&inf); // first weight variance of layer 0
        assert_eq!(
            Model::from_bytes(&with_crc(body)),
            Err(Error::NonFinite {
                layer: 0,
                tensor: TensorName::WeightVar,
                index: 0
            })
        );
    }

    #[test]
    fn shapes_must_chain() {
        let mut layers = tiny_layers();
        layers[1].kind = LayerKind::Linear {
            in_features: 3,
            out_features: 2,
        };
        assert_eq!(
            encode_vec(&tiny_spec(&layers)),
            Err(Error::BadShape { layer: 1 })
        );
        let mut layers = tiny_layers();
        layers[0].weight_var = &V1[..3];
        assert_eq!(
            encode_vec(&tiny_spec(&layers)),
            Err(Error::LengthMismatch {
                layer: 0,
                tensor: TensorName::WeightVar
            })
        );
        let mut layers = tiny_layers();
        layers[0].then = Activation::Identity;
        assert_eq!(
            encode_vec(&tiny_spec(&layers)),
            Err(Error::BadShape { layer: 0 })
        );
        assert_eq!(
            encode_vec(&tiny_spec(&[])),
            Err(Error::LayerCount { found: 0 })
        );
    }

    #[test]
    fn small_buffer_is_an_error() {
        let layers = tiny_layers();
        let spec = tiny_spec(&layers);
        let mut buf = [0u8; 100];
        assert_eq!(
            encode(&spec, &mut buf),
            Err(Error::BufferTooSmall { needed: 188 })
        );
    }
}
