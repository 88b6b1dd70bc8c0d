//! The one architecture this crate runs: torch-uncertainty's `bayesian_lenet` for 28×28 grey
//! images, and the constants shared by the trainer and the firmware.

use crate::format::{Activation, Input, LayerKind, Model};

/// Image side in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Bytes of one input image (28×28 u8 grey).
pub const IMAGE_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes.
pub const CLASSES: usize = 10;
/// MNIST normalisation mean, applied to `p/255`.
pub const NORM_MEAN: f32 = 0.1307;
/// MNIST normalisation standard deviation.
pub const NORM_STD: f32 = 0.3081;

/// conv1: 1→6 channels, 5×5 kernel.
pub const CONV1: LayerKind = LayerKind::Conv2d {
    in_channels: 1,
    out_channels: 6,
    kernel: 5,
};
/// conv2: 6→16 channels, 5×5 kernel.
pub const CONV2: LayerKind = LayerKind::Conv2d {
    in_channels: 6,
    out_channels: 16,
    kernel: 5,
};
/// fc1: 256→120.
pub const FC1: LayerKind = LayerKind::Linear {
    in_features: 256,
    out_features: 120,
};
/// fc2: 120→84.
pub const FC2: LayerKind = LayerKind::Linear {
    in_features: 120,
    out_features: 84,
};
/// fc3: 84→10.
pub const FC3: LayerKind = LayerKind::Linear {
    in_features: 84,
    out_features: 10,
};

/// The five layers and what follows each, first to last.
pub const LENET_LAYERS: [(LayerKind, Activation); 5] = [
    (CONV1, Activation::ReluMaxPool2),
    (CONV2, Activation::ReluMaxPool2),
    (FC1, Activation::Relu),
    (FC2, Activation::Relu),
    (FC3, Activation::Identity),
];

/// The LeNet's input description.
pub const LENET_INPUT: Input = Input {
    channels: 1,
    height: IMAGE_SIDE as u16,
    width: IMAGE_SIDE as u16,
    mean: NORM_MEAN,
    std: NORM_STD,
};

/// Weights and biases of the LeNet: 44,426.
pub const LENET_PARAMETERS: usize = 44_426;

/// Whether a decoded model is the LeNet of [`LENET_LAYERS`] on 28×28 grey input with 10
/// classes. The normalisation constants may differ (they are read from the file).
pub fn is_lenet(model: &Model<'_>) -> bool {
    let input = model.input();
    model.classes() as usize == CLASSES
        && (input.channels, input.height, input.width) == (1, IMAGE_SIDE as u16, IMAGE_SIDE as u16)
        && model.layers().len() == LENET_LAYERS.len()
        && model
            .layers()
            .iter()
            .zip(LENET_LAYERS)
            .all(|(l, (kind, then))| l.kind == kind && l.then == then)
}

/// `x = (p/255 − mean) / std`, in f32, in this order on every target.
#[inline]
pub fn normalize(pixel: u8, mean: f32, std: f32) -> f32 {
    (pixel as f32 / 255.0 - mean) / std
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet_has_44426_parameters() {
        let n: u64 = LENET_LAYERS
            .iter()
            .map(|(k, _)| k.weight_count() + k.bias_count())
            .sum();
        assert_eq!(n, LENET_PARAMETERS as u64);
    }
}
