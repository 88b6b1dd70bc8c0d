//! How the device's results agree with the trainer's own Monte Carlo evaluation of the same
//! images (different random draws: close, not identical).

use std::collections::BTreeMap;
use std::fmt;

use tinyvi::arch::CLASSES;
use tinyvi::samples::Dataset;

use super::log::DeviceLog;
use super::replay::pct;
use crate::eval::metrics::top1;

/// The trainer's own Monte Carlo evaluation of one image (from its evaluation of the test
/// sets), for [`agreement`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerImage {
    /// Test set.
    pub dataset: Dataset,
    /// Index in the test set.
    pub index: u32,
    /// p̄.
    pub probs: [f32; CLASSES],
    /// H[p̄].
    pub entropy: f32,
    /// Mutual information.
    pub mutual_information: f32,
}

/// How the device's results agree with the trainer's own evaluation of the same images
/// (different random draws, so close, not identical).
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// Device results.
    pub images: usize,
    /// Device results with a trainer result for the same (dataset, index).
    pub matched: usize,
    /// Same argmax.
    pub class_agree: usize,
    /// Mean |H_device − H_trainer| (nats).
    pub mean_abs_d_entropy: f64,
    /// Mean |MI_device − MI_trainer| (nats).
    pub mean_abs_d_mi: f64,
    /// Mean over images of the largest |Δp̄| over classes.
    pub mean_max_abs_d_prob: f64,
}

/// Compares the device's results with the trainer's evaluation of the same images, matched by
/// (dataset, index).
pub fn agreement(log: &DeviceLog, trainer: &[TrainerImage]) -> Agreement {
    let by_key: BTreeMap<(Dataset, u32), &TrainerImage> =
        trainer.iter().map(|t| ((t.dataset, t.index), t)).collect();
    let mut a = Agreement {
        images: log.results.len(),
        matched: 0,
        class_agree: 0,
        mean_abs_d_entropy: 0.0,
        mean_abs_d_mi: 0.0,
        mean_max_abs_d_prob: 0.0,
    };
    for r in &log.results {
        let Some(t) = by_key.get(&(r.dataset, r.index)) else {
            continue;
        };
        a.matched += 1;
        a.class_agree += usize::from(top1(&t.probs).0 == usize::from(r.class));
        a.mean_abs_d_entropy += (f32::from_bits(r.entropy) as f64 - t.entropy as f64).abs();
        a.mean_abs_d_mi += (f32::from_bits(r.mi) as f64 - t.mutual_information as f64).abs();
        a.mean_max_abs_d_prob += r
            .probs
            .iter()
            .zip(t.probs)
            .map(|(&d, t)| (f32::from_bits(d) as f64 - t as f64).abs())
            .fold(0.0, f64::max);
    }
    if a.matched > 0 {
        let m = a.matched as f64;
        a.mean_abs_d_entropy /= m;
        a.mean_abs_d_mi /= m;
        a.mean_max_abs_d_prob /= m;
    }
    a
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device vs the trainer's own Monte Carlo evaluation")?;
        let rows = [
            (
                "images matched",
                format!("{} / {}", self.matched, self.images),
            ),
            (
                "same class",
                format!(
                    "{} / {}  {}",
                    self.class_agree,
                    self.matched,
                    pct(self.class_agree, self.matched)
                ),
            ),
            (
                "mean |Δ entropy| (nats)",
                format!("{:.5}", self.mean_abs_d_entropy),
            ),
            ("mean |Δ MI| (nats)", format!("{:.5}", self.mean_abs_d_mi)),
            ("mean max |Δp̄|", format!("{:.5}", self.mean_max_abs_d_prob)),
        ];
        for (k, v) in rows {
            writeln!(f, "  {k:<24}  {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::log::{parse_log, tests::LOG};

    #[test]
    fn agreement_matches_by_dataset_and_index() {
        let log = parse_log(LOG).unwrap();
        let mut p = [0.0f32; CLASSES];
        p[7] = 1.0;
        let t = [
            TrainerImage {
                dataset: Dataset::Mnist,
                index: 3,
                probs: p,
                entropy: 0.5,
                mutual_information: 0.25,
            },
            TrainerImage {
                dataset: Dataset::Mnist,
                index: 9,
                probs: p,
                entropy: 0.0,
                mutual_information: 0.0,
            },
        ];
        let a = agreement(&log, &t);
        assert_eq!((a.images, a.matched, a.class_agree), (2, 1, 1));
        assert!((a.mean_abs_d_entropy - 0.5).abs() < 1e-12);
        assert!((a.mean_abs_d_mi - 0.25).abs() < 1e-6);
        assert!(a.to_string().contains("1 / 2"));
    }
}
