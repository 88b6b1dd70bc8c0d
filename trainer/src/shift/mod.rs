//! Uncertainty under dataset shift: deterministic generators of shifted MNIST test sets
//! (Ovadia et al. 2019's rotations and translations, MNIST-C's 15 corruptions, generated
//! out-of-distribution sets) and `trainer shift`, which evaluates a model on each of them.
//! docs/shift.md states what every generator does.

pub mod canny;
pub mod corrupt;
pub mod image;
pub mod ood;
pub mod plots;
pub mod suite;

use std::fmt;

use rayon::prelude::*;
use tinyvi::arch::IMAGE_LEN;

pub use corrupt::Corruption;
pub use ood::Ood;

use crate::nn::rng::Rng;

/// First key word of every generator stream (no other stream of the trainer uses it).
pub const PURPOSE: u64 = 0x0053_4849_4654; // "SHIFT"

/// Rotation angles of the suite, degrees (Ovadia et al.: 0°–180° in 15° steps).
pub const ROTATIONS: [u32; 13] = [0, 15, 30, 45, 60, 75, 90, 105, 120, 135, 150, 165, 180];
/// Horizontal shifts of the suite, pixels (0–14 in 2-pixel steps).
pub const TRANSLATIONS: [u32; 8] = [0, 2, 4, 6, 8, 10, 12, 14];

/// One test condition: how the MNIST test images are changed, or which OOD set replaces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// MNIST test as it is.
    Clean,
    /// Rotated counter-clockwise by this many degrees (`rotate:DEG`).
    Rotate(u32),
    /// Moved right by this many pixels (`translate:PX`).
    Translate(u32),
    /// An MNIST-C corruption at a severity (`mnistc:NAME[:SEVERITY]`).
    Corrupt(Corruption, u8),
    /// A generated OOD set (`ood:uniform`, `ood:gaussian`, `ood:inverted`, `ood:permuted`).
    Ood(Ood),
    /// Fashion-MNIST test (`ood:fashion`).
    Fashion,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Condition::Clean => f.write_str("clean"),
            Condition::Rotate(d) => write!(f, "rotate:{d}"),
            Condition::Translate(p) => write!(f, "translate:{p}"),
            Condition::Corrupt(c, s) => write!(f, "mnistc:{}:{s}", c.name()),
            Condition::Ood(o) => write!(f, "ood:{}", o.name()),
            Condition::Fashion => f.write_str("ood:fashion"),
        }
    }
}

impl Condition {
    /// Parses a condition as [`Display`](fmt::Display) writes it; `mnistc:NAME` without a
    /// severity takes MNIST-C's.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let number = |v: &str, what: &str| -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("`{v}` is not a whole number of {what}"))
        };
        match parts.as_slice() {
            ["clean"] => Ok(Condition::Clean),
            ["rotate", d] => {
                let d = number(d, "degrees")?;
                if d > 360 {
                    return Err(format!("rotation {d}° is more than 360°"));
                }
                Ok(Condition::Rotate(d))
            }
            ["translate", p] => {
                let p = number(p, "pixels")?;
                if p > 28 {
                    return Err(format!("translation {p} is more than 28 pixels"));
                }
                Ok(Condition::Translate(p))
            }
            ["mnistc", name, rest @ ..] if rest.len() <= 1 => {
                let c = Corruption::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = Corruption::ALL.iter().map(|c| c.name()).collect();
                    format!("unknown corruption `{name}` (one of {})", names.join(", "))
                })?;
                let severity = match rest {
                    [] => c.mnist_c_severity(),
                    [v] => {
                        let v = number(v, "severity")?;
                        if v < 1 || v > u32::from(c.levels()) {
                            return Err(format!(
                                "{name} has severities 1..={}, got {v}",
                                c.levels()
                            ));
                        }
                        v as u8
                    }
                    _ => unreachable!("at most one severity"),
                };
                Ok(Condition::Corrupt(c, severity))
            }
            ["ood", "fashion"] => Ok(Condition::Fashion),
            ["ood", name] => Ood::from_name(name)
                .map(Condition::Ood)
                .ok_or_else(|| format!("unknown OOD set `{name}` (uniform, gaussian, inverted, permuted, fashion)")),
            _ => Err(format!(
                "`{s}`: expected clean, rotate:DEG, translate:PX, mnistc:NAME[:SEVERITY] or ood:NAME"
            )),
        }
    }

    /// The family: `clean`, `rotate`, `translate`, `mnistc` or `ood`.
    pub const fn family(&self) -> &'static str {
        match self {
            Condition::Clean => "clean",
            Condition::Rotate(_) => "rotate",
            Condition::Translate(_) => "translate",
            Condition::Corrupt(..) => "mnistc",
            Condition::Ood(_) | Condition::Fashion => "ood",
        }
    }

    /// Whether the images still show their MNIST digit, so that accuracy, NLL, Brier and
    /// ECE are defined.
    pub const fn keeps_digit(&self) -> bool {
        match self {
            Condition::Ood(o) => o.keeps_digit(),
            Condition::Fashion => false,
            _ => true,
        }
    }

    /// A 64-bit key of the condition for its random streams (FNV-1a of its name).
    pub fn key(&self) -> u64 {
        self.to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }

    /// The random stream of image `index` under this condition.
    pub fn rng(&self, seed: u64, index: usize) -> Rng {
        Rng::stream(seed, &[PURPOSE, self.key(), index as u64])
    }
}

/// Every condition of the suite: clean, the 12 rotations, the 7 translations, the 15
/// MNIST-C corruptions at MNIST-C's severities, the 4 generated OOD sets and Fashion-MNIST.
pub fn suite() -> Vec<Condition> {
    let mut v = vec![Condition::Clean];
    v.extend(ROTATIONS[1..].iter().map(|&d| Condition::Rotate(d)));
    v.extend(TRANSLATIONS[1..].iter().map(|&p| Condition::Translate(p)));
    v.extend(
        Corruption::ALL
            .iter()
            .map(|&c| Condition::Corrupt(c, c.mnist_c_severity())),
    );
    v.extend(Ood::ALL.iter().map(|&o| Condition::Ood(o)));
    v.push(Condition::Fashion);
    v
}

/// The images of `condition` made from MNIST test images `images` (`n × 784`; image `i` has
/// index `first + i` in the test set), in parallel; each image from its own stream of
/// `seed`, so the result does not depend on the thread count or on which images are made.
/// [`Condition::Clean`] and [`Condition::Fashion`] return `images` unchanged.
///
/// # Panics
/// If `images.len()` is not a multiple of 784.
pub fn generate(condition: Condition, images: &[u8], first: usize, seed: u64) -> Vec<u8> {
    assert_eq!(images.len() % IMAGE_LEN, 0, "images must be n×784 bytes");
    if matches!(condition, Condition::Clean | Condition::Fashion) {
        return images.to_vec();
    }
    let permutation = ood::permutation(&mut Rng::stream(
        seed,
        &[PURPOSE, condition.key(), u64::MAX],
    ));
    let mut out = vec![0u8; images.len()];
    out.par_chunks_mut(IMAGE_LEN)
        .zip(images.par_chunks(IMAGE_LEN))
        .enumerate()
        .for_each(|(i, (dst, src))| {
            let img = image::from_bytes(src);
            let mut rng = condition.rng(seed, first + i);
            let shifted = match condition {
                Condition::Rotate(d) => image::rotate(&img, f64::from(d).to_radians()),
                Condition::Translate(p) => image::shift(&img, p as isize, 0),
                Condition::Corrupt(c, s) => c.apply(s, &img, &mut rng),
                Condition::Ood(o) => o.apply(&img, &mut rng, &permutation),
                Condition::Clean | Condition::Fashion => img,
            };
            image::to_bytes(&shifted, dst);
        });
    out
}

/// The first `count` images of `set` (MNIST test) under `condition`, with their labels, for
/// the firmware's sample set (`export-samples --shift`). Image `i` is the same as in
/// `trainer shift` with the same `seed`. For `ood:fashion` the MNIST images stay as they are.
pub fn shifted_head(
    set: &crate::data::idx::Dataset,
    condition: Condition,
    count: usize,
    seed: u64,
) -> crate::error::Result<crate::data::idx::Dataset> {
    let n = count.min(set.len());
    let images = generate(condition, &set.images[..n * IMAGE_LEN], 0, seed);
    crate::data::idx::Dataset::new(images, set.labels[..n].to_vec())
}

#[cfg(test)]
mod tests;
