//! The host replay of a device log: every logged image run again through the same core, model,
//! image, seed and mode, compared bit for bit, with the run's costs and on-device OOD AUROC.

use std::fmt;

use tinyvi::infer::{Config, LeNet, Prediction, Scratch};
use tinyvi::report::{auroc, trailer_crc};
use tinyvi::rng::image_seed;
use tinyvi::samples::SampleSet;
use tinyvi::Model;

use super::log::DeviceLog;

/// One image that is not bit-identical.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Position in the sample set.
    pub i: u32,
    /// Which outputs differ (`class`, `ood`, `probs`, `entropy`, `mi`).
    pub fields: Vec<&'static str>,
    /// Largest |p̄_device − p̄_host| over the classes.
    pub max_abs_diff: f32,
}

/// The comparison of a device log with the host replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Settings of the run.
    pub mode: String,
    /// Monte Carlo samples.
    pub samples: u32,
    /// Run seed.
    pub seed: u64,
    /// Images the firmware announced.
    pub expected_images: u32,
    /// Results in the log.
    pub images: usize,
    /// Results replayed on the host.
    pub replayed: usize,
    /// Results whose p̄, entropy, MI, class and OOD flag all have the same bits.
    pub bit_identical: usize,
    /// Same class.
    pub class_agree: usize,
    /// Same OOD flag.
    pub ood_agree: usize,
    /// Device class = label, over the MNIST images; and the number of MNIST images.
    pub device_correct: (usize, usize),
    /// The images that differ (all of them).
    pub mismatches: Vec<Mismatch>,
    /// On-device AUROC (MI, −max p̄) and the host's over the replay, if both were computed.
    pub auroc_mi: (Option<f32>, Option<f32>),
    /// See `auroc_mi`.
    pub auroc_neg_max_p: (Option<f32>, Option<f32>),
    /// Mean cost per image on the device, and its unit.
    pub cost_mean: Option<(u64, String)>,
    /// Anything that makes the comparison fail besides mismatches: wrong model or sample set,
    /// an unfinished run, errors in the log.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether every announced result is present and bit-identical, with no other problem.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
            && self.images == self.expected_images as usize
            && self.replayed == self.images
            && self.bit_identical == self.images
            && self.auroc_mi.0.map(f32::to_bits) == self.auroc_mi.1.map(f32::to_bits)
            && self.auroc_neg_max_p.0.map(f32::to_bits) == self.auroc_neg_max_p.1.map(f32::to_bits)
    }
}

/// Replays every logged image on the host with the same model, image, seed and mode, and
/// compares bit for bit. Problems (wrong files, a failed run) are reported, not returned as
/// errors, so that the table always shows what could be checked.
pub fn replay(log: &DeviceLog, model_bytes: &[u8], samples: &SampleSet<'_>) -> Report {
    let c = &log.config;
    let mut report = Report {
        mode: c.mode.name().to_string(),
        samples: c.samples,
        seed: c.seed,
        expected_images: c.images,
        images: log.results.len(),
        replayed: 0,
        bit_identical: 0,
        class_agree: 0,
        ood_agree: 0,
        device_correct: (0, 0),
        mismatches: Vec::new(),
        auroc_mi: (log.summary_f32_bits("auroc_mi"), None),
        auroc_neg_max_p: (log.summary_f32_bits("auroc_neg_max_p"), None),
        cost_mean: log
            .summary_u64("cost_mean")
            .map(|m| (m, c.cost_unit.clone())),
        problems: Vec::new(),
    };
    report.problems.extend(log.errors.iter().cloned());
    if !log.done {
        report
            .problems
            .push("the log does not end with DONE: the run did not finish".into());
    }
    if trailer_crc(model_bytes) != Some(c.model_crc) {
        report.problems.push(format!(
            "model file CRC {:#010x} is not the device's {:#010x}: not the model the firmware embeds",
            trailer_crc(model_bytes).unwrap_or(0),
            c.model_crc
        ));
    }
    if samples.checksum() != c.samples_crc {
        report.problems.push(format!(
            "sample set CRC {:#010x} is not the device's {:#010x}: not the images the firmware embeds",
            samples.checksum(),
            c.samples_crc
        ));
    }
    let model = match Model::from_bytes(model_bytes) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(format!("model file: {e}"));
            return report;
        }
    };
    let lenet = match LeNet::new(&model) {
        Ok(l) => l,
        Err(e) => {
            report.problems.push(format!("model file: {e}"));
            return report;
        }
    };
    let mut scratch = Box::new(Scratch::new());
    let mut pixels = [0u8; tinyvi::arch::IMAGE_LEN];
    let (mut mi_in, mut mi_out, mut nmp_in, mut nmp_out) = (vec![], vec![], vec![], vec![]);
    for r in &log.results {
        let Some(record) = samples.get(r.i as usize) else {
            report
                .problems
                .push(format!("image {} is not in the sample set", r.i));
            continue;
        };
        let sample = record.decode(&mut pixels);
        if (sample.dataset, sample.index, sample.label) != (r.dataset, r.index, r.label) {
            report.problems.push(format!(
                "image {}: the log says {} #{} label {}, the sample set {} #{} label {}",
                r.i,
                r.dataset.name(),
                r.index,
                r.label,
                sample.dataset.name(),
                sample.index,
                sample.label
            ));
            continue;
        }
        let config = Config {
            samples: c.samples,
            seed: image_seed(c.seed, r.i),
            mode: c.mode,
            threshold: model.ood_threshold(),
        };
        let p: Prediction = match lenet.predict(sample.pixels, &config, &mut scratch) {
            Ok(p) => p,
            Err(e) => {
                report.problems.push(format!("image {}: {e}", r.i));
                continue;
            }
        };
        report.replayed += 1;
        let (mi, nmp) = if r.dataset.is_ood() {
            (&mut mi_out, &mut nmp_out)
        } else {
            (&mut mi_in, &mut nmp_in)
        };
        mi.push(p.mutual_information);
        nmp.push(-p.confidence);
        if !r.dataset.is_ood() {
            report.device_correct.1 += 1;
            report.device_correct.0 += usize::from(r.class == r.label);
        }
        let mut differ = Vec::new();
        if p.class != r.class {
            differ.push("class");
        } else {
            report.class_agree += 1;
        }
        if p.ood != r.ood {
            differ.push("ood");
        } else {
            report.ood_agree += 1;
        }
        if p.probs.map(f32::to_bits) != r.probs {
            differ.push("probs");
        }
        if p.entropy.to_bits() != r.entropy {
            differ.push("entropy");
        }
        if p.mutual_information.to_bits() != r.mi {
            differ.push("mi");
        }
        if differ.is_empty() {
            report.bit_identical += 1;
        } else {
            let max_abs_diff = p
                .probs
                .iter()
                .zip(r.probs)
                .map(|(&h, d)| (h - f32::from_bits(d)).abs())
                .fold(0.0f32, f32::max);
            report.mismatches.push(Mismatch {
                i: r.i,
                fields: differ,
                max_abs_diff,
            });
        }
    }
    report.auroc_mi.1 = auroc(mi_in.iter().copied(), mi_out.iter().copied());
    report.auroc_neg_max_p.1 = auroc(nmp_in.iter().copied(), nmp_out.iter().copied());
    report
}

/// Terminal columns of `s`: characters other than combining marks (the bar of p̄).
fn columns(s: &str) -> usize {
    s.chars()
        .filter(|c| !('\u{0300}'..='\u{036F}').contains(c))
        .count()
}

pub(super) fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

fn opt_f32(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "device vs host replay — mode {}, {} Monte Carlo samples, seed {}",
            self.mode, self.samples, self.seed
        )?;
        let n = self.images;
        let auroc_row = |(d, h): (Option<f32>, Option<f32>)| {
            let same = match (d, h) {
                (Some(d), Some(h)) if d.to_bits() == h.to_bits() => "bit-identical",
                (None, None) => "",
                _ => "DIFFERENT",
            };
            format!("{} / {}  {same}", opt_f32(d), opt_f32(h))
        };
        let rows = [
            (
                "images logged / announced",
                format!("{n} / {}", self.expected_images),
            ),
            ("replayed on the host", format!("{}", self.replayed)),
            (
                "bit-identical (p̄, H, MI, class, OOD)",
                format!(
                    "{} / {n}  {}",
                    self.bit_identical,
                    pct(self.bit_identical, n)
                ),
            ),
            (
                "same class",
                format!("{} / {n}  {}", self.class_agree, pct(self.class_agree, n)),
            ),
            (
                "same OOD flag",
                format!("{} / {n}  {}", self.ood_agree, pct(self.ood_agree, n)),
            ),
            (
                "device accuracy (MNIST images)",
                format!(
                    "{} / {}  {}",
                    self.device_correct.0,
                    self.device_correct.1,
                    pct(self.device_correct.0, self.device_correct.1)
                ),
            ),
            ("OOD AUROC, MI (device / host)", auroc_row(self.auroc_mi)),
            (
                "OOD AUROC, −max p̄ (device / host)",
                auroc_row(self.auroc_neg_max_p),
            ),
            (
                "mean cost per image (device)",
                self.cost_mean
                    .as_ref()
                    .map_or("-".into(), |(m, unit)| format!("{m} {unit}")),
            ),
        ];
        let width = rows.iter().map(|(k, _)| columns(k)).max().unwrap_or(0);
        for (k, v) in rows {
            let pad = width - columns(k);
            writeln!(f, "  {k}{:pad$}  {v}", "")?;
        }
        for m in self.mismatches.iter().take(10) {
            writeln!(
                f,
                "  image {}: differs in {} (largest |Δp̄| {:e})",
                m.i,
                m.fields.join(", "),
                m.max_abs_diff
            )?;
        }
        if self.mismatches.len() > 10 {
            writeln!(f, "  … and {} more", self.mismatches.len() - 10)?;
        }
        for p in &self.problems {
            writeln!(f, "  problem: {p}")?;
        }
        writeln!(
            f,
            "  verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}
