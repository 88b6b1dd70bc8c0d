//! The model file: a postcard encoding of the architecture and of every layer's posterior
//! means and variances, followed by a CRC-32, read in place from a borrowed `&[u8]`.
//!
//! The layout is documented in `core/README.md` ("Format stability") and pinned by byte-exact
//! test vectors below. Decoding validates everything and never panics; parameter arrays stay
//! in the borrowed bytes (flash on a device) and are read through [`Tensor`] views ([`F32s`], [`F16s`], [`Int8s`], [`LogSds`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, TensorName};

/// The four bytes every model file starts with.
pub const MAGIC: [u8; 4] = *b"TNVI";
/// The newest format version, which this build writes for `f16` and `int8` files (a
/// precision in the header, then per-array encodings).
pub const FORMAT_VERSION: u16 = 2;
/// The first format version (every parameter `f32`), which this build still writes for `f32`
/// files and reads.
pub const FORMAT_VERSION_F32: u16 = 1;
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

/// How a file stores its parameters. Version 1 files are always [`Precision::F32`]; version 2
/// names the precision in its header (see `core/README.md`, "Format stability").
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Precision {
    /// Every mean and variance as a little-endian `f32` (written as version 1).
    #[default]
    F32,
    /// Means as IEEE half floats, variances as the half float of their square root σ.
    F16,
    /// Weight means as `i8` times a per-output-channel `f32` scale, weight standard deviations
    /// as 8-bit codes on a logarithmic scale with a per-layer range; biases as `f32`.
    Int8,
}

impl Precision {
    /// Every precision, in tag order.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Int8];

    /// The name used on command lines and in logs: `f32`, `f16`, `int8`.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        }
    }

    /// The precision called `name` ([`name`](Self::name)), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A parameter array as stored: 0–3 zero bytes so that `data` starts at a multiple of 4 from
/// the start of the file, then the values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct TensorRecord<'a> {
    #[serde(borrow)]
    pad: &'a [u8],
    #[serde(borrow)]
    data: &'a [u8],
}

/// How one parameter array of a version-2 file is encoded: a varint tag, then its fields.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
enum Encoded<'a> {
    /// Tag 0: little-endian `f32` values.
    F32(#[serde(borrow)] TensorRecord<'a>),
    /// Tag 1: little-endian IEEE half values (means).
    F16(#[serde(borrow)] TensorRecord<'a>),
    /// Tag 2: little-endian IEEE half standard deviations σ; the variance is `σ·σ` in `f32`.
    F16Sd(#[serde(borrow)] TensorRecord<'a>),
    /// Tag 3: `i8` values, value `i` is `q_i · scales[i / per]` (`per` = weights per output
    /// channel), `scales` little-endian `f32`.
    Int8 {
        #[serde(borrow)]
        scales: TensorRecord<'a>,
        #[serde(borrow)]
        values: TensorRecord<'a>,
    },
    /// Tag 4: one byte per value: code 0 is σ = 0, code `k ≥ 1` is
    /// `σ = expf(lo + step·(k − 1))`; the variance is `σ·σ` in `f32`.
    LogSd {
        lo: f32,
        step: f32,
        #[serde(borrow)]
        codes: TensorRecord<'a>,
    },
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

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct LayerRecordV2<'a> {
    kind: LayerKind,
    then: Activation,
    #[serde(borrow)]
    weight_mean: Encoded<'a>,
    #[serde(borrow)]
    weight_var: Encoded<'a>,
    #[serde(borrow)]
    bias_mean: Encoded<'a>,
    #[serde(borrow)]
    bias_var: Encoded<'a>,
}

impl<'a> From<LayerRecord<'a>> for LayerRecordV2<'a> {
    fn from(r: LayerRecord<'a>) -> Self {
        LayerRecordV2 {
            kind: r.kind,
            then: r.then,
            weight_mean: Encoded::F32(r.weight_mean),
            weight_var: Encoded::F32(r.weight_var),
            bias_mean: Encoded::F32(r.bias_mean),
            bias_var: Encoded::F32(r.bias_var),
        }
    }
}

/// The fields before the layers (version 1), encoded on their own by the writer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Preamble {
    magic: [u8; 4],
    version: u16,
    input: Input,
    classes: u16,
    ood: Option<OodThreshold>,
}

/// Version 2's preamble: version 1's with the precision after the version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct PreambleV2 {
    magic: [u8; 4],
    version: u16,
    precision: Precision,
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

#[cfg_attr(not(feature = "quant"), allow(dead_code))]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ModelRecordV2<'a> {
    preamble: PreambleV2,
    #[serde(borrow)]
    layers: heapless::Vec<LayerRecordV2<'a>, MAX_LAYERS>,
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

/// The little-endian IEEE half in `b` as an `f32` (exact), `b` holding exactly 2 bytes
/// (0.0 otherwise).
#[inline(always)]
pub fn le_f16(b: &[u8]) -> f32 {
    match *b {
        [b0, b1] => half::f16::from_le_bytes([b0, b1]).to_f32(),
        _ => 0.0,
    }
}

/// Weight means stored as `i8` with one `f32` scale per output channel: value `i` is
/// `(q_i as f32) · scales[i / per]`, one `f32` multiplication.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8s<'a> {
    values: &'a [u8],
    scales: F32s<'a>,
    per: usize,
}

impl<'a> Int8s<'a> {
    /// The quantised values, one byte (`i8`) each.
    pub fn codes(&self) -> &'a [u8] {
        self.values
    }

    /// The per-output-channel scales.
    pub fn scales(&self) -> F32s<'a> {
        self.scales
    }

    /// Values per output channel (per scale).
    pub fn per_channel(&self) -> usize {
        self.per
    }
}

/// Standard deviations stored as 8-bit codes on a logarithmic scale (see [`log_sd`]); the
/// value of the array is the variance `σ·σ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSds<'a> {
    codes: &'a [u8],
    lo: f32,
    step: f32,
}

impl<'a> LogSds<'a> {
    /// The codes, one byte each.
    pub fn codes(&self) -> &'a [u8] {
        self.codes
    }

    /// The logarithmic range: `(lo, step)`.
    pub fn range(&self) -> (f32, f32) {
        (self.lo, self.step)
    }

    /// The standard deviation σ of `code`.
    #[inline]
    pub fn sd(&self, code: u8) -> f32 {
        log_sd(code, self.lo, self.step)
    }
}

/// The standard deviation of a log-scale code: 0 for code 0, `expf(lo + step·(code − 1))`
/// otherwise (`libm::expf`, every operation in `f32`).
#[inline]
pub fn log_sd(code: u8, lo: f32, step: f32) -> f32 {
    match code {
        0 => 0.0,
        k => libm::expf(lo + step * (k - 1) as f32),
    }
}

/// One parameter array of a decoded model, read in place: its values are `f32` whatever the
/// encoding (variances for the variance arrays, whose encodings may store σ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tensor<'a> {
    /// Little-endian `f32` values.
    F32(F32s<'a>),
    /// Little-endian IEEE half values.
    F16(F16s<'a>),
    /// Little-endian IEEE half standard deviations; the value is `σ·σ`.
    F16Sd(F16s<'a>),
    /// `i8` values with per-output-channel scales.
    Int8(Int8s<'a>),
    /// Log-scale 8-bit standard deviation codes; the value is `σ·σ`.
    LogSd(LogSds<'a>),
}

/// A borrowed array of little-endian IEEE half values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F16s<'a> {
    bytes: &'a [u8],
}

impl<'a> F16s<'a> {
    /// The raw little-endian bytes (2 per value).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Value `i` as an `f32`, if in range.
    pub fn get(&self, i: usize) -> Option<f32> {
        let start = i.checked_mul(2)?;
        Some(le_f16(self.bytes.get(start..start.checked_add(2)?)?))
    }
}

impl<'a> Tensor<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Tensor::F32(t) => t.len(),
            Tensor::F16(t) | Tensor::F16Sd(t) => t.bytes.len() / 2,
            Tensor::Int8(t) => t.values.len(),
            Tensor::LogSd(t) => t.codes.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` (a mean, or a variance for the variance arrays), if in range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<f32> {
        match self {
            Tensor::F32(t) => t.get(i),
            Tensor::F16(t) => t.get(i),
            Tensor::F16Sd(t) => t.get(i).map(|s| s * s),
            Tensor::Int8(t) => {
                let q = *t.values.get(i)? as i8;
                Some(q as f32 * t.scales.get(i / t.per.max(1))?)
            }
            Tensor::LogSd(t) => {
                let s = t.sd(*t.codes.get(i)?);
                Some(s * s)
            }
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = f32> + Clone + 'a {
        let t = *self;
        (0..t.len()).map(move |i| t.get(i).unwrap_or(0.0))
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

    /// The `f32` view, if the array is stored as `f32`.
    pub fn as_f32(&self) -> Option<F32s<'a>> {
        match self {
            Tensor::F32(t) => Some(*t),
            _ => None,
        }
    }

    /// The stored bytes of the values (not of scales or ranges).
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Tensor::F32(t) => t.bytes,
            Tensor::F16(t) | Tensor::F16Sd(t) => t.bytes,
            Tensor::Int8(t) => t.values,
            Tensor::LogSd(t) => t.codes,
        }
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
    pub weight_mean: Tensor<'a>,
    /// Posterior variances σ² of the weights.
    pub weight_var: Tensor<'a>,
    /// Posterior means of the biases.
    pub bias_mean: Tensor<'a>,
    /// Posterior variances σ² of the biases.
    pub bias_var: Tensor<'a>,
}

/// A validated model, borrowing its parameters from the bytes it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Model<'a> {
    precision: Precision,
    input: Input,
    classes: u16,
    ood: Option<OodThreshold>,
    layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
}

fn decode_error(e: postcard::Error) -> Error {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => Error::Truncated,
        _ => Error::Malformed,
    }
}

/// The encoding a tensor must have in a file of `precision`.
fn expected_tag(precision: Precision, tensor: TensorName) -> u8 {
    let var = matches!(tensor, TensorName::WeightVar | TensorName::BiasVar);
    match (precision, tensor) {
        (Precision::F32, _) => 0,
        (Precision::F16, _) => 1 + var as u8,
        (Precision::Int8, TensorName::WeightMean) => 3,
        (Precision::Int8, TensorName::WeightVar) => 4,
        (Precision::Int8, _) => 0,
    }
}

/// A record's data, after checking its padding (0–3 zero bytes).
fn data<'a>(r: &TensorRecord<'a>) -> Result<&'a [u8]> {
    if r.pad.len() > 3 || r.pad.iter().any(|&b| b != 0) {
        return Err(Error::Malformed);
    }
    Ok(r.data)
}

/// Validates one array of layer `layer`: its encoding for the file's precision, its length
/// (`count` values, `channels` output channels) and every value.
fn tensor_view<'a>(
    precision: Precision,
    layer: u8,
    tensor: TensorName,
    enc: Encoded<'a>,
    count: u64,
    channels: u64,
) -> Result<Tensor<'a>> {
    let tag = match enc {
        Encoded::F32(_) => 0,
        Encoded::F16(_) => 1,
        Encoded::F16Sd(_) => 2,
        Encoded::Int8 { .. } => 3,
        Encoded::LogSd { .. } => 4,
    };
    if tag != expected_tag(precision, tensor) {
        return Err(Error::BadEncoding { layer, tensor });
    }
    let is_var = matches!(tensor, TensorName::WeightVar | TensorName::BiasVar);
    let length = Error::LengthMismatch { layer, tensor };
    let view = match enc {
        Encoded::F32(r) => {
            let d = data(&r)?;
            if d.len() as u64 != count * 4 {
                return Err(length);
            }
            Tensor::F32(F32s { bytes: d })
        }
        #[cfg(feature = "quant")]
        Encoded::F16(r) | Encoded::F16Sd(r) => {
            let d = data(&r)?;
            if d.len() as u64 != count * 2 {
                return Err(length);
            }
            let h = F16s { bytes: d };
            if tag == 1 {
                Tensor::F16(h)
            } else {
                Tensor::F16Sd(h)
            }
        }
        #[cfg(feature = "quant")]
        Encoded::Int8 { scales, values } => {
            let (s, v) = (data(&scales)?, data(&values)?);
            if v.len() as u64 != count || s.len() as u64 != channels * 4 || channels == 0 {
                return Err(length);
            }
            let scales = F32s { bytes: s };
            for (index, x) in scales.iter().enumerate() {
                // Every decoded value `q·scale`, |q| ≤ 128, must be finite.
                if !(x >= 0.0 && (x * 128.0).is_finite()) {
                    return Err(Error::BadScale {
                        layer,
                        tensor,
                        index: index as u32,
                    });
                }
            }
            Tensor::Int8(Int8s {
                values: v,
                scales,
                per: (count / channels) as usize,
            })
        }
        #[cfg(feature = "quant")]
        Encoded::LogSd { lo, step, codes } => {
            let c = data(&codes)?;
            if c.len() as u64 != count {
                return Err(length);
            }
            // The largest code's variance bounds every other (the scale is increasing).
            let top = log_sd(u8::MAX, lo, step);
            if !(lo.is_finite() && step >= 0.0 && step.is_finite() && (top * top).is_finite()) {
                return Err(Error::BadScale {
                    layer,
                    tensor,
                    index: 0,
                });
            }
            Tensor::LogSd(LogSds { codes: c, lo, step })
        }
        // Unreachable: without `quant` only version 1 (all `F32`) gets here.
        #[cfg(not(feature = "quant"))]
        _ => {
            let _ = channels;
            return Err(Error::BadEncoding { layer, tensor });
        }
    };
    // Quantised codes and scales are checked above; stored floats are checked here.
    if matches!(view, Tensor::F32(_) | Tensor::F16(_) | Tensor::F16Sd(_)) {
        let stored = |i: usize| match view {
            Tensor::F32(t) => t.get(i),
            #[cfg(feature = "quant")]
            Tensor::F16(h) | Tensor::F16Sd(h) => h.get(i),
            _ => None,
        };
        for index in 0..view.len() {
            let v = stored(index).unwrap_or(0.0);
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
    }
    Ok(view)
}

impl<'a> Model<'a> {
    /// Decodes and validates a model file without copying its parameters.
    ///
    /// Checks, in order: the magic tag, the format version (1 or 2), the CRC-32, the encoding,
    /// the architecture (shapes chain from the input to `classes` outputs), each array's
    /// encoding for the file's precision and its length, that every stored mean and variance
    /// is finite and every variance (or σ) non-negative, that quantisation scales and ranges
    /// give finite values, and the out-of-distribution threshold.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < MAGIC.len() {
            return Err(Error::Truncated);
        }
        if !bytes.starts_with(&MAGIC) {
            return Err(Error::BadMagic);
        }
        let (magic_and_version, _) =
            postcard::take_from_bytes::<([u8; 4], u16)>(bytes).map_err(|_| Error::Truncated)?;
        let version = magic_and_version.1;
        if version != FORMAT_VERSION_F32 && version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version });
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
        let (preamble, layers) = if version == FORMAT_VERSION_F32 {
            let (record, rest) =
                postcard::take_from_bytes::<ModelRecord<'a>>(body).map_err(decode_error)?;
            if !rest.is_empty() {
                return Err(Error::TrailingBytes);
            }
            let p = record.preamble;
            let preamble = PreambleV2 {
                magic: p.magic,
                version: p.version,
                precision: Precision::F32,
                input: p.input,
                classes: p.classes,
                ood: p.ood,
            };
            let mut layers = heapless::Vec::<LayerRecordV2<'a>, MAX_LAYERS>::new();
            for l in record.layers {
                // Cannot fail: as many layers as `record.layers` holds.
                let _ = layers.push(l.into());
            }
            (preamble, layers)
        } else {
            Self::parse_v2(body)?
        };
        Self::validate(preamble, &layers)
    }

    /// A version-2 body: its preamble and layer records.
    #[cfg(feature = "quant")]
    fn parse_v2(
        body: &'a [u8],
    ) -> Result<(PreambleV2, heapless::Vec<LayerRecordV2<'a>, MAX_LAYERS>)> {
        let (record, rest) =
            postcard::take_from_bytes::<ModelRecordV2<'a>>(body).map_err(decode_error)?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Ok((record.preamble, record.layers))
    }

    /// Without the `quant` feature a version-2 file (`f16`, `int8`) is refused after its
    /// preamble: the decoder of the quantised encodings is left out (≈ 2–4 KB of Cortex-M4
    /// code a firmware for `f32` models does not need).
    #[cfg(not(feature = "quant"))]
    fn parse_v2(
        body: &'a [u8],
    ) -> Result<(PreambleV2, heapless::Vec<LayerRecordV2<'a>, MAX_LAYERS>)> {
        // The precision is the byte after the magic and the one-byte version.
        let precision = match body.get(5) {
            Some(0) => Precision::F32,
            Some(1) => Precision::F16,
            Some(2) => Precision::Int8,
            Some(_) => return Err(Error::Malformed),
            None => return Err(Error::Truncated),
        };
        Err(Error::UnsupportedPrecision { precision })
    }

    fn validate(preamble: PreambleV2, records: &[LayerRecordV2<'a>]) -> Result<Self> {
        let PreambleV2 {
            precision,
            input,
            classes,
            ood,
            ..
        } = preamble;
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
        if records.is_empty() {
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
        let last = records.len() - 1;
        for (i, rec) in records.iter().enumerate() {
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
            let (w, b) = (rec.kind.weight_count(), rec.kind.bias_count());
            let view = |tensor, enc, count| tensor_view(precision, layer, tensor, enc, count, b);
            // Cannot fail: `records` has at most MAX_LAYERS entries.
            let _ = layers.push(Layer {
                kind: rec.kind,
                then: rec.then,
                weight_mean: view(TensorName::WeightMean, rec.weight_mean, w)?,
                weight_var: view(TensorName::WeightVar, rec.weight_var, w)?,
                bias_mean: view(TensorName::BiasMean, rec.bias_mean, b)?,
                bias_var: view(TensorName::BiasVar, rec.bias_var, b)?,
            });
        }
        if shape != (classes as u64, 1, 1) {
            return Err(Error::BadShape { layer: last as u8 });
        }
        Ok(Model {
            precision,
            input,
            classes,
            ood,
            layers,
        })
    }

    /// How the parameters are stored.
    pub fn precision(&self) -> Precision {
        self.precision
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

    /// A `TensorRecord { pad, data }` of `data_len` bytes written by `data`, with `data`
    /// 4-aligned in the file.
    fn record(&mut self, data_len: usize, data: impl FnOnce(&mut Self)) -> Result<()> {
        let data_len = u32::try_from(data_len).map_err(|_| Error::TooLarge)?;
        let len_bytes = varint_len(data_len);
        // Layout: varint(pad_len) (1 byte), pad, varint(data_len), data.
        let pad = (4 - (self.pos + 1 + len_bytes) % 4) % 4;
        self.value(&[0u8; 3].get(..pad).unwrap_or(&[]))?;
        self.value(&data_len)?;
        let start = self.pos;
        data(self);
        debug_assert_eq!(self.pos - start, data_len as usize);
        Ok(())
    }

    /// A parameter array as `f32`: `TensorRecord { pad, data }` with `data` 4-aligned.
    fn tensor(&mut self, values: &[f32]) -> Result<()> {
        self.record(values.len() * 4, |w| {
            for v in values {
                w.bytes(&v.to_le_bytes());
            }
        })
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

/// The int8 scale of one output channel's weight means: `max |μ| / 127` (`f32` division,
/// round to nearest even; 0 when every mean is 0).
pub fn int8_scale(row: &[f32]) -> f32 {
    let max = row.iter().fold(0f32, |m, &v| {
        let a = libm::fabsf(v);
        if a > m {
            a
        } else {
            m
        }
    });
    max / 127.0
}

/// The `i8` code of `v` with `scale`: `rint(v / scale)` (nearest, ties to even) clamped to
/// −127..=127; 0 when `scale` is 0.
pub fn int8_code(v: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    libm::rintf(v / scale).clamp(-127.0, 127.0) as i8
}

/// The log-scale range `(lo, step)` of one layer's weight variances: `lo = ln σ_min`,
/// `step = (ln σ_max − lo) / 254` over the non-zero standard deviations `σ = sqrtf(var)`
/// (`libm::logf`, `f32`), so codes 1 and 255 are the smallest and the largest σ; `(0, 0)`
/// when every variance is 0.
pub fn log_sd_range(var: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::INFINITY, 0f32);
    for &v in var {
        let s = libm::sqrtf(v);
        if s > 0.0 {
            if s < min {
                min = s;
            }
            if s > max {
                max = s;
            }
        }
    }
    if max == 0.0 {
        return (0.0, 0.0);
    }
    let lo = libm::logf(min);
    (lo, (libm::logf(max) - lo) / 254.0)
}

/// The log-scale code of a variance `var` with range `(lo, step)`: 0 for σ = 0, else
/// `1 + rint((ln σ − lo) / step)` clamped to 1..=255 (nearest in the logarithm; 1 when
/// `step` is 0).
pub fn log_sd_code(var: f32, lo: f32, step: f32) -> u8 {
    let s = libm::sqrtf(var);
    if s <= 0.0 {
        return 0;
    }
    if step <= 0.0 {
        return 1;
    }
    1 + libm::rintf((libm::logf(s) - lo) / step).clamp(0.0, 254.0) as u8
}

/// Checks a spec's values as the decoder would check them, before they are quantised.
fn check_values(spec: &ModelSpec<'_>) -> Result<()> {
    for (i, l) in spec.layers.iter().enumerate() {
        let layer = i as u8;
        for (tensor, values) in [
            (TensorName::WeightMean, l.weight_mean),
            (TensorName::WeightVar, l.weight_var),
            (TensorName::BiasMean, l.bias_mean),
            (TensorName::BiasVar, l.bias_var),
        ] {
            let is_var = matches!(tensor, TensorName::WeightVar | TensorName::BiasVar);
            for (index, &v) in values.iter().enumerate() {
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
        }
    }
    Ok(())
}

fn write_model(spec: &ModelSpec<'_>, precision: Precision, w: &mut Writer<'_>) -> Result<()> {
    if spec.layers.is_empty() || spec.layers.len() > MAX_LAYERS {
        return Err(Error::LayerCount {
            found: spec.layers.len().min(u16::MAX as usize) as u16,
        });
    }
    if precision == Precision::F32 {
        w.value(&Preamble {
            magic: MAGIC,
            version: FORMAT_VERSION_F32,
            input: spec.input,
            classes: spec.classes,
            ood: spec.ood,
        })?;
    } else {
        check_values(spec)?;
        w.value(&PreambleV2 {
            magic: MAGIC,
            version: FORMAT_VERSION,
            precision,
            input: spec.input,
            classes: spec.classes,
            ood: spec.ood,
        })?;
    }
    w.value(&(spec.layers.len() as u32))?;
    for l in spec.layers {
        w.value(&(l.kind, l.then))?;
        match precision {
            Precision::F32 => {
                for t in [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var] {
                    w.tensor(t)?;
                }
            }
            Precision::F16 => {
                for (tag, t) in [(1u32, l.weight_mean), (2, l.weight_var)]
                    .into_iter()
                    .chain([(1, l.bias_mean), (2, l.bias_var)])
                {
                    w.value(&tag)?;
                    w.record(t.len() * 2, |w| {
                        for &v in t {
                            let v = if tag == 2 { libm::sqrtf(v) } else { v };
                            w.bytes(&half::f16::from_f32(v).to_le_bytes());
                        }
                    })?;
                }
            }
            Precision::Int8 => {
                let per = (l.kind.weight_count() / l.kind.bias_count().max(1)).max(1) as usize;
                w.value(&3u32)?;
                let rows = l.weight_mean.chunks(per);
                w.record(rows.len() * 4, |w| {
                    for row in rows.clone() {
                        w.bytes(&int8_scale(row).to_le_bytes());
                    }
                })?;
                w.record(l.weight_mean.len(), |w| {
                    for row in rows {
                        let scale = int8_scale(row);
                        for &v in row {
                            w.bytes(&int8_code(v, scale).to_le_bytes());
                        }
                    }
                })?;
                let (lo, step) = log_sd_range(l.weight_var);
                w.value(&(4u32, lo, step))?;
                w.record(l.weight_var.len(), |w| {
                    for &v in l.weight_var {
                        w.bytes(&[log_sd_code(v, lo, step)]);
                    }
                })?;
                for t in [l.bias_mean, l.bias_var] {
                    w.value(&0u32)?;
                    w.tensor(t)?;
                }
            }
        }
    }
    Ok(())
}

/// Bytes that [`encode`] writes for `spec`, checksum included.
pub fn encoded_len(spec: &ModelSpec<'_>) -> Result<usize> {
    encoded_len_as(spec, Precision::F32)
}

/// Bytes that [`encode_as`] writes for `spec` at `precision`, checksum included.
pub fn encoded_len_as(spec: &ModelSpec<'_>, precision: Precision) -> Result<usize> {
    let mut w = Writer {
        out: &mut [],
        pos: 0,
    };
    write_model(spec, precision, &mut w)?;
    Ok(w.pos + CHECKSUM_LEN)
}

/// Encodes `spec` into `out` with `f32` parameters (version 1) and returns the number of
/// bytes written; [`encode_as`] with [`Precision::F32`].
pub fn encode(spec: &ModelSpec<'_>, out: &mut [u8]) -> Result<usize> {
    encode_as(spec, Precision::F32, out)
}

/// Encodes `spec` into `out` at `precision` and returns the number of bytes written:
/// `f32` as version 1 (the bytes of earlier builds), `f16` and `int8` as version 2,
/// quantised as `core/README.md` ("Format stability") documents.
///
/// The result is decoded again before returning, so what this writes always reads back:
/// an invalid spec (shapes that do not chain, wrong lengths, NaN, negative variances) is
/// refused with the same error [`Model::from_bytes`] would give.
pub fn encode_as(spec: &ModelSpec<'_>, precision: Precision, out: &mut [u8]) -> Result<usize> {
    let needed = encoded_len_as(spec, precision)?;
    let Some(out) = out.get_mut(..needed) else {
        return Err(Error::BufferTooSmall {
            needed: u32::try_from(needed).unwrap_or(u32::MAX),
        });
    };
    let body_len = needed - CHECKSUM_LEN;
    let mut w = Writer { out, pos: 0 };
    write_model(spec, precision, &mut w)?;
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

    fn tiny_spec_layers() -> ModelSpec<'static> {
        static L: std::sync::OnceLock<[LayerSpec<'static>; 2]> = std::sync::OnceLock::new();
        tiny_spec(L.get_or_init(tiny_layers))
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

    fn tiny_as(p: Precision) -> Vec<u8> {
        let spec = tiny_spec_layers();
        let mut buf = vec![0u8; encoded_len_as(&spec, p).unwrap()];
        assert_eq!(encode_as(&spec, p, &mut buf), Ok(buf.len()));
        buf
    }

    /// The tiny model at `f16`, byte by byte (version 2).
    #[test]
    fn tiny_f16_bytes_are_pinned() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &b"TNVI"[..], &[2, 1],                       // magic, version 2, precision F16
            &[1, 2, 1, 0, 0, 0, 0x3f, 0, 0, 0x80, 0x3e],  // input 1×2×1, mean 0.5, std 0.25
            &[3, 1, 1, 0, 0, 0, 0x3e, 2],                 // classes, Some(MI, 0.125), 2 layers
            &[1, 2, 2, 1],                                // Linear { 2, 2 }, Relu
            &[1, 0, 8, 0x00, 0x38, 0x00, 0xbc, 0x00, 0x34, 0x00, 0x40], // F16: no pad, 8 bytes: 0.5, -1, 0.25, 2
            &[2, 1, 0, 8, 0x66, 0x2e, 0x87, 0x30, 0x8b, 0x31, 0x66, 0x32], // F16Sd: σ = √0.01 … √0.04
            &[1, 1, 0, 4, 0x00, 0x00, 0x00, 0x3c],        // bias means 0, 1
            &[2, 1, 0, 4, 0x0c, 0x28, 0xb9, 0x29],        // bias σ √0.001, √0.002
            &[1, 2, 3, 0],                                // Linear { 2, 3 }, Identity
            &[1, 1, 0, 12, 0x00, 0x3c, 0x00, 0x00, 0x00, 0xbc, 0x00, 0x38, 0x00, 0x38, 0x00, 0x38],
            &[2, 1, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 1, 0, 6, 0x66, 0x2e, 0x66, 0x32, 0xcd, 0x34], // 0.1, 0.2, 0.3
            &[2, 3, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0],        // pad 3
            &[0x74, 0xdf, 0x08, 0xf4],                    // CRC-32
        ]
        .concat();
        assert_eq!(tiny_as(Precision::F16), expected);
    }

    /// The tiny model at `int8`, byte by byte (version 2).
    #[test]
    fn tiny_int8_bytes_are_pinned() {
        let f = |v: f32| v.to_le_bytes();
        let (s1, s2) = (f(1.0 / 127.0), f(2.0 / 127.0));
        let lo = libm::logf(libm::sqrtf(0.01));
        let step = (libm::logf(libm::sqrtf(0.04)) - lo) / 254.0;
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &b"TNVI"[..], &[2, 2],                       // magic, version 2, precision Int8
            &[1, 2, 1, 0, 0, 0, 0x3f, 0, 0, 0x80, 0x3e],
            &[3, 1, 1, 0, 0, 0, 0x3e, 2],
            &[1, 2, 2, 1],
            &[3, 0, 8], &s1, &s2,                         // Int8: scales max|μ|/127 of each row
            &[2, 0, 0, 4, 0x40, 0x81, 0x10, 0x7f],        // codes 64 (63.5 to even), -127, 16, 127
            &[4], &f(lo), &f(step),                       // LogSd: lo = ln σ_min, step
            &[1, 0, 4, 1, 128, 202, 255],                 // codes of σ = √0.01, √0.02, √0.03, √0.04
            &[0, 1, 0, 8], &f(0.0), &f(1.0),              // bias means, f32
            &[0, 1, 0, 8], &f(0.001), &f(0.002),          // bias variances, f32
            &[1, 2, 3, 0],
            &[3, 1, 0, 12], &s1, &s1, &f(0.5 / 127.0),
            &[2, 0, 0, 6, 0x7f, 0x00, 0x81, 0x40, 0x7f, 0x7f],
            &[4], &f(0.0), &f(0.0), &[3, 0, 0, 0, 6], &[0; 6], // all σ = 0: range (0, 0), codes 0
            &[0, 3, 0, 0, 0, 12], &f(0.1), &f(0.2), &f(0.3),
            &[0, 1, 0, 12], &[0; 12],
            &[0x76, 0x1a, 0x61, 0xf2],                    // CRC-32
        ]
        .concat();
        assert_eq!(tiny_as(Precision::Int8), expected);
        assert_eq!(expected.len(), 176);
    }

    /// Decoded values follow the documented formulas, and every array is read in place.
    #[test]
    fn quantised_values_decode_by_the_formulas() {
        let bytes = tiny_as(Precision::Int8);
        let m = Model::from_bytes(&bytes).unwrap();
        assert_eq!(m.precision(), Precision::Int8);
        let l0 = m.layers()[0];
        let s = [1.0f32 / 127.0, 2.0 / 127.0];
        let means: Vec<f32> = l0.weight_mean.iter().collect();
        assert_eq!(
            means,
            [64.0 * s[0], -127.0 * s[0], 16.0 * s[1], 127.0 * s[1]]
        );
        let (lo, step) = log_sd_range(&V1);
        let sd = |k: u8| libm::expf(lo + step * (k - 1) as f32);
        let vars: Vec<f32> = l0.weight_var.iter().collect();
        let want: Vec<f32> = [1u8, 128, 202, 255].map(|k| sd(k) * sd(k)).to_vec();
        assert_eq!(vars, want);
        for (v, w) in vars.iter().zip(V1) {
            assert!((v / w - 1.0).abs() < step, "{v} vs {w}"); // within half a step of σ
        }
        assert_eq!(l0.bias_var.iter().collect::<Vec<_>>(), BV1);
        assert_eq!(
            m.layers()[1].weight_var.iter().collect::<Vec<_>>(),
            [0.0; 6]
        );
        let base = bytes.as_ptr() as usize;
        let at = |t: &Tensor<'_>| t.as_bytes().as_ptr() as usize - base;
        assert_eq!(at(&l0.bias_mean) % 4, 0);
        assert!(
            matches!(l0.weight_mean, Tensor::Int8(q) if (q.scales().as_bytes().as_ptr() as usize - base) % 4 == 0)
        );

        let bytes = tiny_as(Precision::F16);
        let m = Model::from_bytes(&bytes).unwrap();
        let l0 = m.layers()[0];
        assert_eq!(l0.weight_mean.iter().collect::<Vec<_>>(), W1);
        let h = |x: f32| half::f16::from_f32(libm::sqrtf(x)).to_f32();
        let want: Vec<f32> = V1.iter().map(|&v| h(v) * h(v)).collect();
        assert_eq!(l0.weight_var.iter().collect::<Vec<_>>(), want);
        assert_eq!(at(&l0.weight_var) % 4, 0);
    }

    #[test]
    fn quantisers_round_as_documented() {
        assert_eq!(int8_scale(&[0.5, -1.0]), 1.0 / 127.0);
        assert_eq!(int8_scale(&[0.0, -0.0]), 0.0);
        assert_eq!(int8_code(3.0, 0.0), 0);
        assert_eq!(int8_code(2.5, 1.0), 2); // ties to even
        assert_eq!(int8_code(3.5, 1.0), 4);
        assert_eq!(int8_code(-500.0, 1.0), -127); // clamped, never -128
        assert_eq!(log_sd_range(&[0.0, 0.0]), (0.0, 0.0));
        assert_eq!(log_sd_code(0.0, -3.0, 0.1), 0);
        assert_eq!(log_sd_code(4.0, 5.0, 0.0), 1);
        let (lo, step) = log_sd_range(&[1e-6, 0.0, 1e-2]);
        assert_eq!(log_sd_code(1e-6, lo, step), 1);
        assert_eq!(log_sd_code(1e-2, lo, step), 255);
        assert_eq!(log_sd_code(1e-12, lo, step), 1); // below the range: clamped
        assert_eq!(log_sd(0, lo, step), 0.0);
        assert_eq!(Precision::from_name("int8"), Some(Precision::Int8));
        assert_eq!(Precision::from_name("i8"), None);
        for p in Precision::ALL {
            assert_eq!(Precision::from_name(p.name()), Some(p));
        }
    }

    #[test]
    fn quantised_files_refuse_every_truncation_and_bit_flip() {
        for p in [Precision::F16, Precision::Int8] {
            let bytes = tiny_as(p);
            for len in 0..bytes.len() {
                assert!(
                    Model::from_bytes(&bytes[..len]).is_err(),
                    "{p:?} length {len}"
                );
            }
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(Model::from_bytes(&b).is_err(), "{p:?} bit {bit}");
            }
        }
    }

    /// Every malformed quantised field behind a valid checksum is a typed error.
    #[test]
    fn quantised_field_errors_are_typed() {
        let patch = |bytes: &[u8], at: usize, new: &[u8]| {
            let mut b = bytes[..bytes.len() - CHECKSUM_LEN].to_vec();
            b[at..at + new.len()].copy_from_slice(new);
            Model::from_bytes(&with_crc(b)).map(|_| ())
        };
        let (wm, wv) = (TensorName::WeightMean, TensorName::WeightVar);
        let f16 = tiny_as(Precision::F16);
        // Offsets from the pinned layout above.
        assert_eq!(
            patch(&f16, 29, &[2]), // weight means tagged F16Sd
            Err(Error::BadEncoding {
                layer: 0,
                tensor: wm
            })
        );
        assert_eq!(
            patch(&f16, 32, &[0x00, 0x7c]), // +∞
            Err(Error::NonFinite {
                layer: 0,
                tensor: wm,
                index: 0
            })
        );
        assert_eq!(
            patch(&f16, 46, &[0x66, 0xae]), // σ = -0.1
            Err(Error::NegativeVariance {
                layer: 0,
                tensor: wv,
                index: 1
            })
        );
        // 6 bytes for 4 weights: the records after it no longer parse.
        assert!(matches!(
            patch(&f16, 31, &[6]),
            Err(Error::Malformed | Error::Truncated)
        ));
        assert_eq!(patch(&f16, 5, &[3]), Err(Error::Malformed)); // precision 3

        let int8 = tiny_as(Precision::Int8);
        assert_eq!(
            patch(&int8, 64, &[1]), // f32 bias means tagged F16 (same record shape)
            Err(Error::BadEncoding {
                layer: 0,
                tensor: TensorName::BiasMean
            })
        );
        assert_eq!(
            patch(&int8, 36, &(-1.0f32).to_le_bytes()), // second scale negative
            Err(Error::BadScale {
                layer: 0,
                tensor: wm,
                index: 1
            })
        );
        assert_eq!(
            patch(&int8, 32, &f32::MAX.to_le_bytes()), // q·scale would overflow
            Err(Error::BadScale {
                layer: 0,
                tensor: wm,
                index: 0
            })
        );
        assert_eq!(
            patch(&int8, 53, &(-0.5f32).to_le_bytes()), // negative step
            Err(Error::BadScale {
                layer: 0,
                tensor: wv,
                index: 0
            })
        );
        assert_eq!(
            patch(&int8, 49, &80.0f32.to_le_bytes()), // σ_255 = e^80…: its square overflows
            Err(Error::BadScale {
                layer: 0,
                tensor: wv,
                index: 0
            })
        );
        assert_eq!(
            patch(&int8, 49, &f32::NAN.to_le_bytes()),
            Err(Error::BadScale {
                layer: 0,
                tensor: wv,
                index: 0
            })
        );
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
        b[4] = 3;
        assert_eq!(
            Model::from_bytes(&with_crc(b)),
            Err(Error::UnsupportedVersion { found: 3 })
        );
        // A version-1 body labelled version 2 does not parse as version 2.
        let mut b = bytes[..bytes.len() - 4].to_vec();
        b[4] = 2;
        assert!(Model::from_bytes(&with_crc(b)).is_err());
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
