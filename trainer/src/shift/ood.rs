//! Out-of-distribution image sets built from what is here: noise images and transformed MNIST.

use super::image::Image;
use crate::nn::rng::Rng;
use tinyvi::arch::IMAGE_LEN;

/// An out-of-distribution set of generated images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ood {
    /// Every pixel uniform over `0..=255`, independently.
    Uniform,
    /// Every pixel `N(μ, σ²)` with MNIST's pixel mean and standard deviation (0.1307 and
    /// 0.3081 of full scale), clipped to `[0, 1]`.
    Gaussian,
    /// MNIST test with every pixel inverted (`255 − x`): white digits become black on white.
    Inverted,
    /// MNIST test with its pixels moved by one fixed random permutation: the same intensities
    /// as a digit, no spatial structure.
    Permuted,
}

impl Ood {
    /// The generated sets.
    pub const ALL: [Ood; 4] = [Ood::Uniform, Ood::Gaussian, Ood::Inverted, Ood::Permuted];

    /// Name in the condition (`ood:uniform`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Ood::Uniform => "uniform",
            Ood::Gaussian => "gaussian",
            Ood::Inverted => "inverted",
            Ood::Permuted => "permuted",
        }
    }

    /// The set called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Whether the image still shows its MNIST digit (so accuracy is meaningful).
    pub const fn keeps_digit(self) -> bool {
        matches!(self, Ood::Inverted)
    }

    /// The image made from MNIST image `img` with this image's random stream `rng`;
    /// `permutation` is the set-wide pixel permutation ([`permutation`]).
    pub fn apply(self, img: &Image, rng: &mut Rng, permutation: &[usize]) -> Image {
        match self {
            Ood::Uniform => std::array::from_fn(|_| rng.below(256) as f64 / 255.0),
            Ood::Gaussian => {
                std::array::from_fn(|_| (0.1307 + 0.3081 * f64::from(rng.normal())).clamp(0.0, 1.0))
            }
            Ood::Inverted => img.map(|v| 1.0 - v),
            Ood::Permuted => std::array::from_fn(|i| img[permutation[i]]),
        }
    }
}

/// One random permutation of the 784 pixel positions, fixed by `rng`.
pub fn permutation(rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..IMAGE_LEN).collect();
    rng.shuffle(&mut p);
    p
}
