//! The OOD threshold stored in the exported model: chosen on training images.

use tinyvi::format::{OodScore, OodThreshold};

use crate::eval::metrics;
use crate::eval::monte_carlo::McOutputs;

/// Share of in-distribution images the stored OOD threshold accepts.
pub const OOD_RECALL: f64 = 0.95;
/// Training images used to choose the OOD threshold.
pub const THRESHOLD_IMAGES: usize = 2_000;

/// The entropy threshold that accepts [`OOD_RECALL`] of `calibration`'s images.
pub fn ood_threshold(calibration: &McOutputs) -> OodThreshold {
    let mut h: Vec<f64> = calibration.probs.iter().map(metrics::entropy).collect();
    h.sort_by(f64::total_cmp);
    let k = ((h.len() as f64 * OOD_RECALL).ceil() as usize).clamp(1, h.len().max(1)) - 1;
    OodThreshold {
        score: OodScore::Entropy,
        value: h.get(k).copied().unwrap_or(0.0) as f32,
    }
}
