//! The crate's one error type.

use core::fmt;

/// Which of a layer's four parameter arrays an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorName {
    /// Posterior means of the weights.
    WeightMean,
    /// Posterior variances (σ²) of the weights.
    WeightVar,
    /// Posterior means of the biases.
    BiasMean,
    /// Posterior variances (σ²) of the biases.
    BiasVar,
}

impl TensorName {
    /// A short lower-case name, as used in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            TensorName::WeightMean => "weight mean",
            TensorName::WeightVar => "weight variance",
            TensorName::BiasMean => "bias mean",
            TensorName::BiasVar => "bias variance",
        }
    }
}

/// Everything that can go wrong when reading a model or running it.
///
/// Bad bytes always become one of these variants; nothing in this crate panics on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The byte string ends before the model does.
    Truncated,
    /// The first four bytes are not the tinyvi magic tag `TNVI`.
    BadMagic,
    /// The file is of a format version this build does not read.
    UnsupportedVersion {
        /// The version stored in the file.
        found: u16,
    },
    /// The CRC-32 stored at the end does not match the bytes before it.
    ChecksumMismatch {
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },
    /// The bytes are not a valid encoding of the model structure.
    Malformed,
    /// Bytes follow the encoded model before the checksum.
    TrailingBytes,
    /// The model has no layers, or more than [`crate::format::MAX_LAYERS`].
    LayerCount {
        /// The number of layers found.
        found: u16,
    },
    /// The input description is unusable (zero size, or a normalisation that is not finite
    /// or has a standard deviation ≤ 0).
    BadInput,
    /// A layer's shape is zero-sized or does not follow from the previous layer's output.
    BadShape {
        /// Index of the layer, from 0.
        layer: u8,
    },
    /// A parameter array's length disagrees with the layer's shape.
    LengthMismatch {
        /// Index of the layer, from 0.
        layer: u8,
        /// Which array.
        tensor: TensorName,
    },
    /// A parameter array holds NaN or ±∞.
    NonFinite {
        /// Index of the layer, from 0.
        layer: u8,
        /// Which array.
        tensor: TensorName,
        /// Index of the first bad value.
        index: u32,
    },
    /// A variance is negative.
    NegativeVariance {
        /// Index of the layer, from 0.
        layer: u8,
        /// Which array.
        tensor: TensorName,
        /// Index of the first bad value.
        index: u32,
    },
    /// The stored out-of-distribution threshold is NaN, infinite or negative.
    BadThreshold,
    /// An array is not encoded as the file's precision requires (see `core/README.md`,
    /// "Format stability").
    BadEncoding {
        /// Layer index.
        layer: u8,
        /// Which array.
        tensor: TensorName,
    },
    /// A quantisation scale (`int8` means: channel `index`) or log-scale range (`index` 0)
    /// is negative, not finite, or gives values that are not finite.
    BadScale {
        /// Layer index.
        layer: u8,
        /// Which array.
        tensor: TensorName,
        /// Scale index.
        index: u32,
    },
    /// The model is valid but is not the architecture this inference engine runs.
    UnsupportedArchitecture,
    /// The model's precision needs the crate's `quant` feature, which this build lacks.
    UnsupportedPrecision {
        /// The model's precision.
        precision: crate::format::Precision,
    },
    /// The output buffer is too small for the encoded model.
    BufferTooSmall {
        /// Bytes needed.
        needed: u32,
    },
    /// A model to encode is too large for the format (an array longer than 2³² − 1 bytes).
    TooLarge,
    /// The number of Monte Carlo samples must be at least 1.
    ZeroSamples,
    /// The image does not have the model's input size.
    ImageSize {
        /// Bytes expected.
        expected: u32,
        /// Bytes given.
        found: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated => f.write_str("model file is truncated"),
            Error::BadMagic => f.write_str("not a tinyvi model (bad magic tag)"),
            Error::UnsupportedVersion { found } => write!(
                f,
                "model format version {found} is not supported (this build reads versions {} and {})",
                crate::format::FORMAT_VERSION_F32,
                crate::format::FORMAT_VERSION
            ),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "model file is corrupt: CRC-32 {computed:#010x} does not match the stored {stored:#010x}"
            ),
            Error::Malformed => f.write_str("model file is malformed"),
            Error::TrailingBytes => f.write_str("model file has unexpected bytes after the model"),
            Error::LayerCount { found } => write!(
                f,
                "model has {found} layers (1 to {} are allowed)",
                crate::format::MAX_LAYERS
            ),
            Error::BadInput => f.write_str("model input description is invalid"),
            Error::BadShape { layer } => write!(f, "layer {layer} has an invalid shape"),
            Error::LengthMismatch { layer, tensor } => write!(
                f,
                "layer {layer}: {} has the wrong length for its shape",
                tensor.as_str()
            ),
            Error::NonFinite {
                layer,
                tensor,
                index,
            } => write!(
                f,
                "layer {layer}: {} [{index}] is not finite",
                tensor.as_str()
            ),
            Error::NegativeVariance {
                layer,
                tensor,
                index,
            } => write!(f, "layer {layer}: {} [{index}] is negative", tensor.as_str()),
            Error::BadEncoding { layer, tensor } => write!(
                f,
                "layer {layer}: {} is not encoded as the file's precision requires",
                tensor.as_str()
            ),
            Error::BadScale {
                layer,
                tensor,
                index,
            } => write!(
                f,
                "layer {layer}: {} has an invalid quantisation scale [{index}]",
                tensor.as_str()
            ),
            Error::BadThreshold => f.write_str("the stored out-of-distribution threshold is invalid"),
            Error::UnsupportedPrecision { precision } => write!(
                f,
                "{} models need tinyvi's `quant` feature, which this build lacks",
                precision.name()
            ),
            Error::UnsupportedArchitecture => {
                f.write_str("model architecture is not the LeNet-5 this engine runs")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            Error::TooLarge => f.write_str("model is too large to encode"),
            Error::ZeroSamples => f.write_str("the number of Monte Carlo samples must be at least 1"),
            Error::ImageSize { expected, found } => {
                write!(f, "image has {found} bytes, the model expects {expected}")
            }
        }
    }
}

impl core::error::Error for Error {}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, Error>;
