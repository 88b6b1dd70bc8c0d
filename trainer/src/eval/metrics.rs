//! The metrics of docs/design.md (Metrics), computed in f64 from the Monte Carlo mean `p̄` of every test image,
//! following torch-uncertainty / torchmetrics (whose sources were read to match them):
//!
//! - `acc`: share of images whose first-maximal class of `p̄` is the label.
//! - `nll`: mean of `−ln p̄[label]`, as torch-uncertainty's `CategoricalNLL` (`nll_loss(log p̄)`), except
//!   that `p̄[label]` is floored at [`NLL_FLOOR`] = 1e-12 so that one image with `p̄ = 0` gives a
//!   finite 27.6 instead of `inf` (no difference unless some `p̄[label] < 1e-12`).
//! - `brier`: mean over images of `Σ_c (p̄_c − 1[c = label])²`.
//! - `ece`: torchmetrics' `multiclass_calibration_error(n_bins=15, norm="l1")`: confidence =
//!   max `p̄` (as f32); bin boundaries = `torch.linspace(0, 1, 16)` in f32;
//!   `bin = bucketize(conf, boundaries, right=True) − 1`, i.e. bin `k` holds
//!   `boundary[k] ≤ conf < boundary[k+1]` (a confidence exactly on an edge goes to the bin *above*
//!   it) and a confidence of exactly 1.0 gets a 16th bin of its own. ECE = `Σ_b (n_b/N)·|acc_b − conf_b|`.
//! - `aece`: torch-uncertainty's `AdaptiveCalibrationError` with 15 bins: confidences sorted
//!   ascending (ties keep image order), split as `tensor_split(15)` (the first `N mod 15` bins get
//!   one image more), same L1 sum; bins left empty when `N < 15` are skipped.
//! - `entropy`: mean `H[p̄] = −Σ p̄_c ln p̄_c` in nats, with `0·ln 0 = 0` (`torch.special.entr`).
//! - `mi`: mean of `max(0, H[p̄] − mean_s H[p_s])` (torch-uncertainty's `MutualInformation` clamps at 0).
//! - OOD (in = MNIST test, out = Fashion-MNIST test, out is the positive class), score `−max p̄`:
//!   `ood_auroc` = torchmetrics `BinaryAUROC` (trapezoid on the ROC with tied scores as one
//!   threshold, which equals the Mann–Whitney statistic with ties counted ½); `ood_aupr` =
//!   `BinaryAveragePrecision` = `Σ_k (R_k − R_{k−1})·P_k` over distinct thresholds, descending;
//!   `ood_fpr95` = torch-uncertainty's `FPR95`: over the distinct thresholds up to the first one
//!   reaching recall 1, the false-positive rate at the threshold whose recall (f32) is closest to
//!   0.95, the higher recall winning a tie. `ood_auroc_entropy` and `ood_auroc_mi` use `H[p̄]`
//!   and MI as the score. (torchmetrics passes scores outside [0, 1] through a sigmoid first;
//!   that is monotone and changes nothing here except for f32 rounding collisions.)

use serde::{Deserialize, Serialize};
use tinyvi::arch::CLASSES;

use crate::error::{Result, TrainerError};

/// Number of equal-width (ECE) and equal-mass (aECE) bins.
pub const CALIBRATION_BINS: usize = 15;
/// Floor of `p̄[label]` in the NLL.
pub const NLL_FLOOR: f64 = 1e-12;
/// Recall level of `ood_fpr95`.
pub const FPR_RECALL: f32 = 0.95;

/// Evaluation outputs for one data set, one entry per image.
#[derive(Debug, Clone, Copy)]
pub struct Predictions<'a> {
    /// `p̄`: mean over the Monte Carlo samples of the softmax vectors.
    pub probs: &'a [[f32; CLASSES]],
    /// Labels (`0..=9`).
    pub labels: &'a [u8],
    /// `mean_s H[p_s]`: mean over the samples of each sample's softmax entropy (nats).
    pub expected_entropy: &'a [f32],
}

impl Predictions<'_> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Checks lengths, labels and values; `what` names the set in the error.
    pub fn validate(&self, what: &str) -> Result<()> {
        let n = self.labels.len();
        if n == 0 {
            return Err(TrainerError::invalid(what, "no predictions"));
        }
        if self.probs.len() != n || self.expected_entropy.len() != n {
            return Err(TrainerError::invalid(
                what,
                format!(
                    "{} labels but {} probability vectors and {} expected entropies",
                    n,
                    self.probs.len(),
                    self.expected_entropy.len()
                ),
            ));
        }
        if let Some(i) = self.labels.iter().position(|&l| usize::from(l) >= CLASSES) {
            return Err(TrainerError::invalid(
                what,
                format!(
                    "label {} at index {i} is out of range 0..=9",
                    self.labels[i]
                ),
            ));
        }
        for (i, p) in self.probs.iter().enumerate() {
            if p.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(TrainerError::invalid(
                    what,
                    format!("image {i}: probabilities {p:?} are not finite and non-negative"),
                ));
            }
        }
        if let Some(i) = self.expected_entropy.iter().position(|v| !v.is_finite()) {
            return Err(TrainerError::invalid(
                what,
                format!("image {i}: expected entropy is not finite"),
            ));
        }
        Ok(())
    }
}

/// Every metric of docs/design.md (Metrics), plus the run's facts (filled by the caller). Serialised as one
/// flat JSON object; OOD metrics are `null` without Fashion-MNIST.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub acc: f64,
    pub nll: f64,
    pub brier: f64,
    pub ece: f64,
    pub aece: f64,
    pub entropy: f64,
    pub mi: f64,
    pub ood_auroc: Option<f64>,
    pub ood_aupr: Option<f64>,
    pub ood_fpr95: Option<f64>,
    pub ood_auroc_entropy: Option<f64>,
    pub ood_auroc_mi: Option<f64>,
    pub epochs: usize,
    pub seed: u64,
    pub eval_samples: usize,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    /// Training images used (after `--limit` and `--holdout`).
    #[serde(default)]
    pub train_images: usize,
    /// The temperature folded into the model by `--temperature-scaling` (`null` without it).
    #[serde(default)]
    pub temperature: Option<f64>,
}

/// Index and value of the first maximum of `p` (as `torch.max` / `argmax`).
pub fn top1(p: &[f32; CLASSES]) -> (usize, f32) {
    let mut best = 0;
    for c in 1..CLASSES {
        if p[c] > p[best] {
            best = c;
        }
    }
    (best, p[best])
}

/// `H[p] = −Σ p ln p` in nats with `0·ln 0 = 0`.
pub fn entropy(p: &[f32; CLASSES]) -> f64 {
    p.iter()
        .map(|&v| {
            let v = f64::from(v);
            if v > 0.0 {
                -v * v.ln()
            } else {
                0.0
            }
        })
        .sum()
}

/// Mutual information `max(0, H[p̄] − mean_s H[p_s])`.
pub fn mutual_information(p: &[f32; CLASSES], expected_entropy: f32) -> f64 {
    (entropy(p) - f64::from(expected_entropy)).max(0.0)
}

/// Computes every metric; `ood` is Fashion-MNIST test (or `None`: OOD metrics are `None`).
/// `epochs`, `seed`, `eval_samples` and the timings are left 0 for the caller to fill.
pub fn compute(id: &Predictions<'_>, ood: Option<&Predictions<'_>>) -> Result<Metrics> {
    id.validate("in-distribution predictions")?;
    if let Some(o) = ood {
        o.validate("out-of-distribution predictions")?;
    }
    let n = id.len() as f64;
    let mut correct = Vec::with_capacity(id.len());
    let mut conf = Vec::with_capacity(id.len());
    let (mut nll, mut brier, mut ent, mut mi) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..id.len() {
        let p = &id.probs[i];
        let y = usize::from(id.labels[i]);
        let (pred, c) = top1(p);
        correct.push(pred == y);
        conf.push(c);
        nll -= f64::from(p[y]).max(NLL_FLOOR).ln();
        brier += p
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let d = f64::from(v) - if k == y { 1.0 } else { 0.0 };
                d * d
            })
            .sum::<f64>();
        ent += entropy(p);
        mi += mutual_information(p, id.expected_entropy[i]);
    }
    let acc = correct.iter().filter(|&&c| c).count() as f64 / n;
    let ece = ece(&conf, &correct);
    let aece = adaptive_ece(&conf, &correct, CALIBRATION_BINS);

    let mut m = Metrics {
        acc,
        nll: nll / n,
        brier: brier / n,
        ece,
        aece,
        entropy: ent / n,
        mi: mi / n,
        ood_auroc: None,
        ood_aupr: None,
        ood_fpr95: None,
        ood_auroc_entropy: None,
        ood_auroc_mi: None,
        epochs: 0,
        seed: 0,
        eval_samples: 0,
        train_seconds: 0.0,
        eval_seconds: 0.0,
        train_images: 0,
        temperature: None,
    };
    if let Some(o) = ood {
        let mut positive = vec![false; id.len()];
        positive.resize(id.len() + o.len(), true);
        let sets = [id, o];
        let score = |f: &dyn Fn(&Predictions<'_>, usize) -> f64| -> Vec<f64> {
            sets.iter()
                .flat_map(|s| (0..s.len()).map(move |i| f(s, i)))
                .collect()
        };
        let msp = score(&|s, i| -f64::from(top1(&s.probs[i]).1));
        let h = score(&|s, i| entropy(&s.probs[i]));
        let info = score(&|s, i| mutual_information(&s.probs[i], s.expected_entropy[i]));
        m.ood_auroc = auroc(&msp, &positive);
        m.ood_aupr = average_precision(&msp, &positive);
        m.ood_fpr95 = fpr_at_recall(&msp, &positive, FPR_RECALL);
        m.ood_auroc_entropy = auroc(&h, &positive);
        m.ood_auroc_mi = auroc(&info, &positive);
    }
    Ok(m)
}

/// `torch.linspace(0, 1, steps)` in f32 as PyTorch's CPU kernel computes it (first half
/// `start + step·i`, second half `end − step·(steps − 1 − i)`, step in f32).
pub fn linspace_f32(steps: usize) -> Vec<f32> {
    if steps < 2 {
        return vec![0.0; steps];
    }
    let step = 1.0f32 / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                step * i as f32
            } else {
                1.0 - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

/// One calibration bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    /// Lower edge (inclusive).
    pub lower: f64,
    /// Upper edge (exclusive, except the last bin which is `[1, 1]`).
    pub upper: f64,
    /// Number of images in the bin.
    pub count: usize,
    /// Mean accuracy of those images (0 when empty).
    pub accuracy: f64,
    /// Mean confidence of those images (0 when empty).
    pub confidence: f64,
}

/// torchmetrics' equal-width bins: `n_bins + 1` bins, the last one for confidence ≥ 1
/// (see the module docs for the edges).
pub fn calibration_bins(conf: &[f32], correct: &[bool], n_bins: usize) -> Vec<Bin> {
    let edges = linspace_f32(n_bins + 1);
    let mut count = vec![0usize; n_bins + 1];
    let mut sum_conf = vec![0f64; n_bins + 1];
    let mut sum_acc = vec![0f64; n_bins + 1];
    for (&c, &ok) in conf.iter().zip(correct) {
        // bucketize(right=True): number of edges <= c, minus one.
        let k = edges.partition_point(|&e| e <= c).saturating_sub(1);
        count[k] += 1;
        sum_conf[k] += f64::from(c);
        sum_acc[k] += if ok { 1.0 } else { 0.0 };
    }
    (0..=n_bins)
        .map(|k| {
            let n = count[k];
            let mean = |s: f64| if n == 0 { 0.0 } else { s / n as f64 };
            Bin {
                lower: f64::from(edges[k]),
                upper: f64::from(*edges.get(k + 1).unwrap_or(&1.0)),
                count: n,
                accuracy: mean(sum_acc[k]),
                confidence: mean(sum_conf[k]),
            }
        })
        .collect()
}

fn l1_calibration(bins: &[Bin], total: usize) -> f64 {
    if total == 0 {
        return f64::NAN;
    }
    bins.iter()
        .map(|b| (b.count as f64 / total as f64) * (b.accuracy - b.confidence).abs())
        .sum()
}

/// Expected calibration error with [`CALIBRATION_BINS`] equal-width bins.
pub fn ece(conf: &[f32], correct: &[bool]) -> f64 {
    l1_calibration(
        &calibration_bins(conf, correct, CALIBRATION_BINS),
        conf.len(),
    )
}

/// torch-uncertainty's equal-mass bins (sorted confidences, `tensor_split(n_bins)`).
pub fn adaptive_bins(conf: &[f32], correct: &[bool], n_bins: usize) -> Vec<Bin> {
    let mut order: Vec<usize> = (0..conf.len()).collect();
    order.sort_by(|&a, &b| conf[a].total_cmp(&conf[b]));
    let n = conf.len();
    let (q, r) = (n / n_bins, n % n_bins);
    let mut start = 0;
    let mut bins = Vec::with_capacity(n_bins);
    for k in 0..n_bins {
        let len = q + usize::from(k < r);
        let idx = &order[start..start + len];
        start += len;
        if idx.is_empty() {
            continue;
        }
        let s_conf: f64 = idx.iter().map(|&i| f64::from(conf[i])).sum();
        let s_acc = idx.iter().filter(|&&i| correct[i]).count() as f64;
        bins.push(Bin {
            lower: f64::from(conf[idx[0]]),
            upper: f64::from(conf[idx[len - 1]]),
            count: len,
            accuracy: s_acc / len as f64,
            confidence: s_conf / len as f64,
        });
    }
    bins
}

/// Adaptive (equal-mass) calibration error with `n_bins` bins.
pub fn adaptive_ece(conf: &[f32], correct: &[bool], n_bins: usize) -> f64 {
    l1_calibration(&adaptive_bins(conf, correct, n_bins), conf.len())
}

/// Cumulative (true positives, false positives) at each distinct score, scores descending.
fn clf_curve(scores: &[f64], positive: &[bool]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    for (j, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_group = order
            .get(j + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_group {
            out.push((tp, fp));
        }
    }
    out
}

/// Area under the ROC curve (positives should score higher); `None` without both classes.
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let curve = clf_curve(scores, positive);
    let &(p, n) = curve.last()?;
    if p == 0 || n == 0 {
        return None;
    }
    let (mut area, mut prev_tpr, mut prev_fpr) = (0.0, 0.0, 0.0);
    for &(tp, fp) in &curve {
        let (tpr, fpr) = (tp as f64 / p as f64, fp as f64 / n as f64);
        area += (fpr - prev_fpr) * (tpr + prev_tpr) / 2.0;
        prev_tpr = tpr;
        prev_fpr = fpr;
    }
    Some(area)
}

/// Average precision `Σ_k (R_k − R_{k−1})·P_k`; `None` without positives.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let curve = clf_curve(scores, positive);
    let &(p, _) = curve.last()?;
    if p == 0 {
        return None;
    }
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for &(tp, fp) in &curve {
        let recall = tp as f64 / p as f64;
        ap += (recall - prev_recall) * tp as f64 / (tp + fp) as f64;
        prev_recall = recall;
    }
    Some(ap)
}

/// torch-uncertainty's `FPRx`: false-positive rate at the distinct threshold whose recall is
/// closest to `level`; `None` without both classes.
pub fn fpr_at_recall(scores: &[f64], positive: &[bool], level: f32) -> Option<f64> {
    let curve = clf_curve(scores, positive);
    let &(p, n) = curve.last()?;
    if p == 0 || n == 0 {
        return None;
    }
    let last = curve.iter().position(|&(tp, _)| tp == p)?;
    // Walk from the first threshold reaching full recall back to the highest threshold; the
    // first minimum wins, as torch.argmin does on the flipped arrays.
    let mut best: Option<(f32, usize)> = None;
    for k in (0..=last).rev() {
        let recall = curve[k].0 as f32 / p as f32;
        let d = (recall - level).abs();
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, curve[k].1));
        }
    }
    best.map(|(_, fp)| fp as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn pad(p: &[f32]) -> [f32; CLASSES] {
        let mut out = [0.0; CLASSES];
        out[..p.len()].copy_from_slice(p);
        out
    }

    #[test]
    fn linspace_matches_torch_edges() {
        let e = linspace_f32(16);
        assert_eq!(e.len(), 16);
        assert_eq!(e[0], 0.0);
        assert_eq!(e[15], 1.0);
        for (k, &v) in e.iter().enumerate() {
            assert!((f64::from(v) - k as f64 / 15.0).abs() < 1e-7);
        }
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        // torch's f32 edges are not the nearest f32 to k/15: edge 3 is 0.200000018 (above
        // 0.2f32 = 0.200000003) and edge 12 is 0.799999952 (below 0.8f32).
        assert_eq!(e[3].to_bits(), 0x3e4c_ccce);
        assert!(e[3] > 0.2f32);
        assert!(e[12] < 0.8f32);
        // So a confidence of 0.2f32 falls in bin 2 and 0.8f32 in bin 12, as in torchmetrics.
        let bins = calibration_bins(&[0.2, 0.8], &[true, true], 15);
        assert_eq!((bins[2].count, bins[3].count), (1, 0));
        assert_eq!((bins[12].count, bins[11].count), (1, 0));
    }

    #[test]
    fn torchmetrics_docstring_example() {
        // multiclass_calibration_error(preds, target, num_classes=3, n_bins=3) == 0.2000
        let conf = [0.55f32, 0.55, 0.60, 0.90];
        let correct = [false, false, true, true];
        let bins = calibration_bins(&conf, &correct, 3);
        assert!((l1_calibration(&bins, 4) - 0.2).abs() < 1e-6);
        // binary_calibration_error([0.25,0.25,0.55,0.75,0.75], [0,0,1,1,1], n_bins=2) == 0.29:
        // confidences are the probabilities, "accuracies" the targets.
        let conf = [0.25f32, 0.25, 0.55, 0.75, 0.75];
        let correct = [false, false, true, true, true];
        let e = l1_calibration(&calibration_bins(&conf, &correct, 2), 5);
        assert!((e - 0.29).abs() < 1e-6, "{e}");
    }

    #[test]
    fn ece_edges_go_to_the_bin_above_and_one_is_its_own_bin() {
        let edges = linspace_f32(16);
        // Exactly on the edge 1/15 (as f32): bin 1, not bin 0.
        let bins = calibration_bins(&[edges[1]], &[true], 15);
        assert_eq!(bins[1].count, 1);
        // Just below it: bin 0.
        let below = f32::from_bits(edges[1].to_bits() - 1);
        let bins = calibration_bins(&[below], &[true], 15);
        assert_eq!(bins[0].count, 1);
        // 1.0 goes to the extra 16th bin, 0.99 to bin 14.
        let bins = calibration_bins(&[1.0, 0.99], &[true, false], 15);
        assert_eq!((bins[15].count, bins[14].count), (1, 1));
        // ECE by hand: the correct 1.0 contributes 0, the wrong 0.99 contributes 0.99/2.
        close(ece(&[1.0, 0.99], &[true, false]), 0.99f32 as f64 / 2.0);
        // A wrong 1.0 and a right 0.95: apart, 0.5·1 + 0.5·0.05; sharing bin 14 would give
        // |0.5 − 0.975| = 0.475.
        close(
            ece(&[1.0, 0.95], &[false, true]),
            0.5 + 0.5 * (1.0 - 0.95f32 as f64),
        );
    }

    #[test]
    fn ece_ties_share_a_bin() {
        // Four images at 0.8 (2 right), two at 0.5 (both right).
        let conf = [0.8f32, 0.8, 0.8, 0.8, 0.5, 0.5];
        let correct = [true, true, false, false, true, true];
        let c8 = 0.8f32 as f64;
        let c5 = 0.5f32 as f64;
        let expected = 4.0 / 6.0 * (0.5 - c8).abs() + 2.0 / 6.0 * (1.0 - c5).abs();
        close(ece(&conf, &correct), expected);
    }

    #[test]
    fn aece_splits_like_tensor_split() {
        // 17 images, 15 bins: the first two bins hold 2 images, the rest 1.
        let conf: Vec<f32> = (0..17).map(|i| 0.2 + 0.04 * (16 - i) as f32).collect();
        let correct: Vec<bool> = (0..17).map(|i| i % 3 == 0).collect();
        let bins = adaptive_bins(&conf, &correct, 15);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 17);
        assert_eq!((bins[0].count, bins[1].count, bins[2].count), (2, 2, 1));
        // Bin 0 holds the two lowest confidences (images 16 and 15).
        close(
            bins[0].confidence,
            (f64::from(conf[16]) + f64::from(conf[15])) / 2.0,
        );
        close(bins[0].accuracy, 0.5); // image 15 is right (15 % 3 == 0), 16 is wrong
                                      // Hand-computed value on a tiny case with 2 bins: sorted [0.6 (wrong), 0.7 (right), 0.9 (right)]
                                      // → bins [0.6, 0.7] and [0.9]: 2/3·|0.5 − 0.65| + 1/3·|1 − 0.9|.
        let a = adaptive_ece(&[0.9, 0.6, 0.7], &[true, false, true], 2);
        let (c6, c7, c9) = (0.6f32 as f64, 0.7f32 as f64, 0.9f32 as f64);
        close(
            a,
            2.0 / 3.0 * (0.5 - (c6 + c7) / 2.0).abs() + (1.0 - c9).abs() / 3.0,
        );
    }

    #[test]
    fn auroc_with_ties_counts_half() {
        // Positives score 0.9, 0.5; negatives 0.5, 0.1. Pairs: (0.9>0.5) (0.9>0.1) (0.5=0.5 → ½) (0.5>0.1) → 3.5/4.
        let s = [0.9, 0.5, 0.5, 0.1];
        let y = [true, true, false, false];
        close(auroc(&s, &y).unwrap(), 0.875);
        // Perfect and inverted.
        close(auroc(&[1.0, 0.0], &[true, false]).unwrap(), 1.0);
        close(auroc(&[0.0, 1.0], &[true, false]).unwrap(), 0.0);
        // All tied → ½.
        close(auroc(&[0.3; 4], &y).unwrap(), 0.5);
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // sklearn's example: y = [0,0,1,1], s = [0.1,0.4,0.35,0.8] → AP = 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        close(ap, 5.0 / 6.0);
        // Ties: both positives tie with a negative at 0.5 → one threshold, P = 2/3, R 0→1.
        let ap = average_precision(&[0.5, 0.5, 0.5, 0.1], &[true, true, false, false]).unwrap();
        close(ap, 2.0 / 3.0);
    }

    #[test]
    fn fpr95_picks_the_closest_recall() {
        // 20 positives scoring 100, 99, …, 81; 10 negatives: 5 at 82.5 (between positives
        // 83 and 82), 5 at 0.
        let mut s = Vec::new();
        let mut y = Vec::new();
        for k in 0..20 {
            s.push(100.0 - k as f64);
            y.push(true);
        }
        for _ in 0..5 {
            s.push(82.5);
            y.push(false);
        }
        for _ in 0..5 {
            s.push(0.0);
            y.push(false);
        }
        // Recall 19/20 = 0.95 is reached at score 82 (positives 100..=82), where the 5
        // negatives at 82.5 are already flagged → FPR = 5/10.
        close(fpr_at_recall(&s, &y, 0.95).unwrap(), 0.5);
        // Recall 0.8 = 16/20 at score 85: no negative above → 0.
        close(fpr_at_recall(&s, &y, 0.8).unwrap(), 0.0);
        // Perfect separation → 0; everything tied → 1.
        close(
            fpr_at_recall(&[1.0, 1.0, 0.0], &[true, true, false], 0.95).unwrap(),
            0.0,
        );
        close(
            fpr_at_recall(&[1.0, 1.0, 1.0], &[true, true, false], 0.95).unwrap(),
            1.0,
        );
    }

    #[test]
    fn fpr95_tie_in_distance_takes_the_higher_recall() {
        // 4 positives: recall steps 0.25, 0.5, 0.75, 1.0. Level 0.875 is equidistant from
        // 0.75 and 1.0 (exact in f32): torch's argmin on the flipped arrays takes recall 1.0.
        let s = [4.0, 3.5, 3.0, 2.5, 2.0, 1.0];
        let y = [true, true, true, false, true, false];
        // At recall 1.0 (score 2.0), one negative (2.5) is above → 1/2; at 0.75 → 0.
        close(fpr_at_recall(&s, &y, 0.875).unwrap(), 0.5);
    }

    #[test]
    fn compute_on_a_tiny_case() {
        let probs = [
            pad(&[0.7, 0.2, 0.1]),
            pad(&[0.1, 0.6, 0.3]),
            pad(&[0.5, 0.5]),
            pad(&[0.0, 0.0, 1.0]),
        ];
        let labels = [0u8, 2, 1, 2];
        let expected_entropy = [0.5f32, 0.1, 0.7, 0.0];
        let id = Predictions {
            probs: &probs,
            labels: &labels,
            expected_entropy: &expected_entropy,
        };
        let m = compute(&id, None).unwrap();
        // argmax: 0 ✓, 1 ✗ (label 2), 0 (first max) ✗ (label 1), 2 ✓.
        close(m.acc, 0.5);
        let ln = |v: f32| f64::from(v).ln();
        close(m.nll, -(ln(0.7) + ln(0.3) + ln(0.5) + 0.0) / 4.0);
        let sq = |v: f32| f64::from(v) * f64::from(v);
        let b0 = sq(0.7 - 1.0) + sq(0.2) + sq(0.1);
        let b1 = sq(0.1) + sq(0.6) + sq(0.3 - 1.0);
        let b2 = sq(0.5) + sq(0.5 - 1.0);
        close(m.brier, (b0 + b1 + b2) / 4.0);
        let h = |p: &[f32]| -> f64 { p.iter().map(|&v| -f64::from(v) * ln(v)).sum() };
        let hs = [
            h(&[0.7, 0.2, 0.1]),
            h(&[0.1, 0.6, 0.3]),
            h(&[0.5, 0.5]),
            0.0,
        ];
        close(m.entropy, hs.iter().sum::<f64>() / 4.0);
        let mi: f64 = hs
            .iter()
            .zip(expected_entropy)
            .map(|(h, e)| (h - f64::from(e)).max(0.0))
            .sum();
        close(m.mi, mi / 4.0);
        // ECE: confidences 0.7 (bin 10), 0.6 (bin 9), 0.5 (bin 7), 1.0 (bin 15); one per bin.
        let c = |v: f32| f64::from(v);
        close(
            m.ece,
            ((1.0 - c(0.7)) + c(0.6) + c(0.5) + (1.0 - 1.0)) / 4.0,
        );
        assert!(m.ood_auroc.is_none() && m.ood_fpr95.is_none());
        let json = serde_json::to_value(&m).unwrap();
        // metrics.json's keys, in this order (docs/design.md, Files).
        let want =
            "acc nll brier ece aece entropy mi ood_auroc ood_aupr ood_fpr95 ood_auroc_entropy \
                    ood_auroc_mi epochs seed eval_samples train_seconds eval_seconds train_images \
                    temperature";
        let text = serde_json::to_string(&m).unwrap();
        let at: Vec<usize> = want
            .split_whitespace()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(json.as_object().unwrap().len(), at.len());
        assert!(json["ood_auroc"].is_null());
    }

    #[test]
    fn compute_ood() {
        let id_p = [pad(&[0.9, 0.1]), pad(&[0.2, 0.8])];
        let ood_p = [pad(&[0.6, 0.4]), pad(&[0.1, 0.9])];
        let labels = [0u8, 1];
        let id = Predictions {
            probs: &id_p,
            labels: &labels,
            expected_entropy: &[0.0, 0.0],
        };
        let ood = Predictions {
            probs: &ood_p,
            labels: &labels,
            expected_entropy: &[0.0, 0.3],
        };
        let m = compute(&id, Some(&ood)).unwrap();
        // −max p̄: in −0.9, −0.8; out −0.6, −0.9. Pairs (out > in): (−0.6 > both) 2, (−0.9 vs −0.9) ½,
        // (−0.9 < −0.8) 0 → 2.5/4.
        close(m.ood_auroc.unwrap(), 0.625);
        // Descending: −0.6 (out) → P=1,R=½; −0.8 (in) → P=½; −0.9 (in+out tie) → R=1, P=2/4.
        close(m.ood_aupr.unwrap(), 0.5 * 1.0 + 0.5 * 0.5);
        // Recall ½ at −0.6 (FPR 0), recall 1 at −0.9 (FPR 1): 1.0 is closer to 0.95.
        close(m.ood_fpr95.unwrap(), 1.0);
        assert!(m.ood_auroc_entropy.is_some() && m.ood_auroc_mi.is_some());
        // MI: in-distribution images have MI = H, out ones H and H − 0.3; all out ≥ ... just a range check.
        let a = m.ood_auroc_mi.unwrap();
        assert!((0.0..=1.0).contains(&a));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = [pad(&[f32::NAN])];
        let r = compute(
            &Predictions {
                probs: &p,
                labels: &[0],
                expected_entropy: &[0.0],
            },
            None,
        );
        assert!(r.unwrap_err().to_string().contains("not finite"));
        let p = [pad(&[1.0])];
        let r = compute(
            &Predictions {
                probs: &p,
                labels: &[0, 1],
                expected_entropy: &[0.0],
            },
            None,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "in-distribution predictions: 2 labels but 1 probability vectors and 1 expected entropies"
        );
        let r = compute(
            &Predictions {
                probs: &[],
                labels: &[],
                expected_entropy: &[],
            },
            None,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "in-distribution predictions: no predictions"
        );
    }
}
