//! `trainer compare`: the firmware's decoded log against a host replay of the same core, model,
//! images, seed and mode — every result must be bit-identical — and against the trainer's own
//! Monte Carlo evaluation of the same images.
//!
//! Self-contained (only `tinyvi` and `std`) so that the CLI and the tests can both use it.
//!
//! The log is what `probe-rs run`, `defmt-print` or `cargo qemu` print. Lines that matter
//! carry a marker word followed by `key=value` fields (anything before the marker, such as a
//! level or a timestamp, and anything after ` | ` is ignored):
//! - `CONFIG mode=… samples=… seed=… images=… model_crc=0x… samples_crc=0x… cost_unit=…`
//! - `RESULT i=… dataset=… index=… label=… class=… ood=… probs=0x…,…,0x… entropy=0x… mi=0x… cost=…`
//! - `SUMMARY key=value …` (costs, memory, on-device OOD AUROC)
//! - `DONE ok`

use std::collections::BTreeMap;
use std::fmt;

use tinyvi::arch::CLASSES;
use tinyvi::samples::{Dataset, SampleSet};
use tinyvi::Model;

use tinyvi::infer;
use tinyvi::rng::image_seed;

use infer::{Config, LeNet, Mode, Prediction, Scratch};

/// The run settings the firmware logged.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceConfig {
    /// Sampling mode.
    pub mode: Mode,
    /// Monte Carlo samples per image.
    pub samples: u32,
    /// Run seed (image `i` uses `image_seed(seed, i)`).
    pub seed: u64,
    /// Images the firmware said it would run.
    pub images: u32,
    /// The model file's stored CRC-32 (its last four bytes).
    pub model_crc: u32,
    /// The sample-set file's stored CRC-32.
    pub samples_crc: u32,
    /// What `cost` counts: `instructions` (QEMU) or `cycles` (board).
    pub cost_unit: String,
}

/// One image's result as the firmware logged it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceResult {
    /// Position in the sample set.
    pub i: u32,
    /// Test set of the image.
    pub dataset: Dataset,
    /// Index in that test set.
    pub index: u32,
    /// Label.
    pub label: u8,
    /// Predicted class.
    pub class: u8,
    /// Out-of-distribution flag.
    pub ood: bool,
    /// p̄ as f32 bits.
    pub probs: [u32; CLASSES],
    /// H[p̄] as f32 bits.
    pub entropy: u32,
    /// Mutual information as f32 bits.
    pub mi: u32,
    /// Cost of the prediction, in [`DeviceConfig::cost_unit`]s.
    pub cost: u64,
}

/// A firmware log, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceLog {
    /// The settings.
    pub config: DeviceConfig,
    /// Per-image results, in order.
    pub results: Vec<DeviceResult>,
    /// Every `SUMMARY` field, by key (values as printed).
    pub summary: BTreeMap<String, String>,
    /// Whether the log ends with `DONE ok` (the run finished).
    pub done: bool,
    /// Lines logged at ERROR level or with a `PANIC`/`HARDFAULT`/`ERROR` marker.
    pub errors: Vec<String>,
}

impl DeviceLog {
    /// A summary value as an integer (decimal or `0x` hex).
    pub fn summary_u64(&self, key: &str) -> Option<u64> {
        self.summary.get(key).and_then(|v| parse_u64(v))
    }

    /// A summary value logged as f32 bits.
    pub fn summary_f32_bits(&self, key: &str) -> Option<f32> {
        self.summary_u64(key)
            .and_then(|v| u32::try_from(v).ok())
            .map(f32::from_bits)
    }
}

/// Why a log could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogError {
    /// 1-based line number (0 = the log as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "device log: {}", self.message)
        } else {
            write!(f, "device log line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for LogError {}

fn parse_u64(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The `key=value` fields of `rest` up to ` | `; a value that starts with `[` runs to the word
/// that ends with `]`.
fn fields(rest: &str) -> BTreeMap<&str, String> {
    let rest = rest.split(" | ").next().unwrap_or("");
    let mut out = BTreeMap::new();
    let mut words = rest.split_whitespace();
    while let Some(w) = words.next() {
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        let mut value = v.to_string();
        if value.starts_with('[') {
            while !value.ends_with(']') {
                match words.next() {
                    Some(more) => {
                        value.push(' ');
                        value.push_str(more);
                    }
                    None => break,
                }
            }
        }
        out.insert(k, value);
    }
    out
}

/// `line` without ANSI escape sequences (colours that a terminal printer may add).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters… final byte in '@'..='~'.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Finds `marker` as a whole word in `line`; returns what follows it.
fn after_marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(pos) = line[from..].find(marker) {
        let start = from + pos;
        let end = start + marker.len();
        let before_ok = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == ']');
        let after_ok = line[end..].chars().next().is_none_or(|c| c.is_whitespace());
        if before_ok && after_ok {
            return Some(&line[end..]);
        }
        from = end;
    }
    None
}

struct Fields<'a> {
    map: BTreeMap<&'a str, String>,
    line: usize,
}

impl Fields<'_> {
    fn err(&self, message: String) -> LogError {
        LogError {
            line: self.line,
            message,
        }
    }

    fn get(&self, key: &str) -> Result<&str, LogError> {
        self.map
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.err(format!("missing field `{key}`")))
    }

    fn num<T: TryFrom<u64>>(&self, key: &str) -> Result<T, LogError> {
        let v = self.get(key)?;
        parse_u64(v)
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.err(format!("field `{key}`: {v:?} is not a valid number")))
    }

    fn boolean(&self, key: &str) -> Result<bool, LogError> {
        match self.get(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(self.err(format!("field `{key}`: {v:?} is not true/false"))),
        }
    }

    fn bits_array(&self, key: &str) -> Result<[u32; CLASSES], LogError> {
        let v = self.get(key)?;
        // The firmware prints `a,b,…`; `[a, b, …]` is accepted too.
        let inner = v
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(v);
        let values: Vec<u32> = inner
            .split(',')
            .map(|s| parse_u64(s.trim()).and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err(format!("field `{key}`: {v:?} holds a bad number")))?;
        values.try_into().map_err(|v: Vec<u32>| {
            self.err(format!(
                "field `{key}`: {} values, expected {CLASSES}",
                v.len()
            ))
        })
    }
}

/// Parses a decoded firmware log (see the module docs for the line format).
pub fn parse_log(text: &str) -> Result<DeviceLog, LogError> {
    let mut config: Option<DeviceConfig> = None;
    let mut results: Vec<DeviceResult> = Vec::new();
    let mut summary = BTreeMap::new();
    let mut done = false;
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let plain = strip_ansi(line);
        let trimmed = plain.trim();
        if ["PANIC", "HARDFAULT", "ERROR"]
            .iter()
            .any(|m| after_marker(trimmed, m).is_some())
        {
            errors.push(trimmed.to_string());
        }
        if let Some(rest) = after_marker(trimmed, "CONFIG") {
            if config.is_some() {
                return Err(LogError {
                    line: line_no,
                    message: "a second CONFIG line: one log must hold one run".into(),
                });
            }
            let f = Fields {
                map: fields(rest),
                line: line_no,
            };
            let mode_name = f.get("mode")?;
            let mode = Mode::from_name(mode_name)
                .ok_or_else(|| f.err(format!("unknown sampling mode {mode_name:?}")))?;
            config = Some(DeviceConfig {
                mode,
                samples: f.num("samples")?,
                seed: f.num("seed")?,
                images: f.num("images")?,
                model_crc: f.num("model_crc")?,
                samples_crc: f.num("samples_crc")?,
                cost_unit: f.get("cost_unit")?.to_string(),
            });
        } else if let Some(rest) = after_marker(trimmed, "RESULT") {
            let f = Fields {
                map: fields(rest),
                line: line_no,
            };
            if config.is_none() {
                return Err(f.err("RESULT before CONFIG".into()));
            }
            let dataset_name = f.get("dataset")?;
            let r = DeviceResult {
                i: f.num("i")?,
                dataset: Dataset::from_name(dataset_name)
                    .ok_or_else(|| f.err(format!("unknown dataset {dataset_name:?}")))?,
                index: f.num("index")?,
                label: f.num("label")?,
                class: f.num("class")?,
                ood: f.boolean("ood")?,
                probs: f.bits_array("probs")?,
                entropy: f.num("entropy")?,
                mi: f.num("mi")?,
                cost: f.num("cost")?,
            };
            if r.i as usize != results.len() {
                return Err(f.err(format!(
                    "RESULT i={} out of order (expected i={})",
                    r.i,
                    results.len()
                )));
            }
            results.push(r);
        } else if let Some(rest) = after_marker(trimmed, "SUMMARY") {
            for (k, v) in fields(rest) {
                summary.insert(k.to_string(), v);
            }
        } else if after_marker(trimmed, "DONE").is_some() {
            done = true;
        }
    }
    let config = config.ok_or_else(|| LogError {
        line: 0,
        message: "no CONFIG line: is this the firmware's decoded output?".into(),
    })?;
    Ok(DeviceLog {
        config,
        results,
        summary,
        done,
        errors,
    })
}

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

/// The stored CRC-32 at the end of a file.
fn trailer_crc(bytes: &[u8]) -> Option<u32> {
    let at = bytes.len().checked_sub(4)?;
    Some(u32::from_le_bytes(bytes.get(at..)?.try_into().ok()?))
}

/// AUROC of `out` vs `in_` scores (higher = more out of distribution), exactly as the
/// firmware computes it: (2·wins + ties) / (2·pairs) in f32.
pub fn auroc(in_: &[f32], out: &[f32]) -> Option<f32> {
    let mut twice: u64 = 0;
    let mut pairs: u64 = 0;
    for &o in out {
        for &i in in_ {
            twice += if o > i {
                2
            } else if o == i {
                1
            } else {
                0
            };
            pairs += 1;
        }
    }
    (pairs > 0).then(|| twice as f32 / (2 * pairs) as f32)
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
    report.auroc_mi.1 = auroc(&mi_in, &mi_out);
    report.auroc_neg_max_p.1 = auroc(&nmp_in, &nmp_out);
    report
}

/// Terminal columns of `s`: characters other than combining marks (the bar of p̄).
fn columns(s: &str) -> usize {
    s.chars()
        .filter(|c| !('\u{0300}'..='\u{036F}').contains(c))
        .count()
}

fn pct(n: usize, of: usize) -> String {
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

fn argmax(p: &[f32; CLASSES]) -> u8 {
    let mut best = 0;
    for c in 1..CLASSES {
        if p[c] > p[best] {
            best = c;
        }
    }
    best as u8
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
        a.class_agree += usize::from(argmax(&t.probs) == r.class);
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

    const LOG: &str = "\
INFO CONFIG mode=local-reparam samples=16 seed=7 images=2 model_crc=0xdeadbeef samples_crc=0x1 cost_unit=instructions calibration=2000040/2000002 scratch=336
└─ firmware::__cortex_m_rt_main @ src/main.rs:120
INFO RESULT i=0 dataset=mnist index=3 label=7 class=7 ood=false probs=0x3f800000,0x0,0x0,0x0,0x0,0x0,0x0,0x0,0x0,0x0 entropy=0x0 mi=0x1 cost=123 | p=1 H=0 MI=0
[INFO ] RESULT i=1 dataset=fashion index=9 label=2 class=0 ood=true probs=[0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd, 0x3dcccccd] entropy=0x40135d8e mi=0x0 cost=456 | p=0.1 H=2.3 MI=0 (firmware src/main.rs:140)
INFO SUMMARY cost_mean=289 cost_min=123 cost_max=456 cost_unit=instructions
INFO SUMMARY ood_in=1 ood_out=1 auroc_mi=0x0 auroc_neg_max_p=0x3f800000 | AUROC MI=0 -max p=1
INFO DONE ok
";

    #[test]
    fn parses_the_firmware_lines_whatever_the_printer_adds() {
        let log = parse_log(LOG).unwrap();
        assert_eq!(log.config.mode, Mode::LocalReparam);
        assert_eq!(log.config.samples, 16);
        assert_eq!(log.config.seed, 7);
        assert_eq!(log.config.images, 2);
        assert_eq!(log.config.model_crc, 0xdead_beef);
        assert_eq!(log.config.cost_unit, "instructions");
        assert_eq!(log.results.len(), 2);
        let r = &log.results[0];
        assert_eq!(
            (r.dataset, r.index, r.label, r.class),
            (Dataset::Mnist, 3, 7, 7)
        );
        assert_eq!(r.probs[0], 1.0f32.to_bits());
        assert_eq!((r.entropy, r.mi, r.cost, r.ood), (0, 1, 123, false));
        let r = &log.results[1];
        assert_eq!(r.dataset, Dataset::Fashion);
        assert!(r.ood);
        assert_eq!(r.probs, [0.1f32.to_bits(); CLASSES]);
        assert_eq!(log.summary_u64("cost_mean"), Some(289));
        assert_eq!(log.summary_f32_bits("auroc_neg_max_p"), Some(1.0));
        assert!(log.done);
        assert!(log.errors.is_empty());
    }

    #[test]
    fn bad_logs_are_errors_with_a_line_number() {
        assert_eq!(parse_log("hello\n").unwrap_err().line, 0);
        let no_probs = LOG.replace("probs=0x3f800000,0x0,0x0,0x0,0x0,0x0,0x0,0x0,0x0,0x0 ", "");
        let e = parse_log(&no_probs).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("probs"), "{e}");
        let short = LOG.replace("0x0,0x0 entropy=0x0", "0x0 entropy=0x0");
        assert!(parse_log(&short).unwrap_err().message.contains("9 values"));
        let bracketed = LOG.replace(
            "0x3f800000,0x0,0x0,0x0,0x0,0x0,0x0,0x0,0x0,0x0",
            "[0x3f800000, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0]",
        );
        assert_eq!(parse_log(&bracketed), parse_log(LOG));
        let order = LOG.replace("RESULT i=1", "RESULT i=5");
        assert!(parse_log(&order)
            .unwrap_err()
            .message
            .contains("out of order"));
        let twice = format!("{LOG}{}", LOG.lines().next().unwrap());
        assert!(parse_log(&twice)
            .unwrap_err()
            .message
            .contains("second CONFIG"));
        let mode = LOG.replace("mode=local-reparam", "mode=bogus");
        assert!(parse_log(&mode).unwrap_err().message.contains("bogus"));
    }

    #[test]
    fn colours_are_ignored() {
        let coloured = LOG
            .replace("INFO RESULT", "\u{1b}[32mINFO\u{1b}[0m \u{1b}[1mRESULT")
            .replace("cost=123 |", "cost=123\u{1b}[0m |");
        assert_eq!(parse_log(&coloured), parse_log(LOG));
    }

    #[test]
    fn faults_and_unfinished_runs_are_noticed() {
        let text = LOG.replace(
            "INFO DONE ok\n",
            "ERROR HARDFAULT hfsr=0x40000000 cfsr=0x1000\n",
        );
        let log = parse_log(&text).unwrap();
        assert!(!log.done);
        assert_eq!(log.errors.len(), 1);
        // The marker must be a word of its own: a field value containing it does not count.
        assert!(after_marker("INFO x=RESULT y", "RESULT").is_none());
        assert!(after_marker("INFO RESULTS y", "RESULT").is_none());
    }

    #[test]
    fn auroc_counts_ties_as_half() {
        assert_eq!(auroc(&[0.1, 0.2], &[0.3, 0.4]), Some(1.0));
        assert_eq!(auroc(&[0.3, 0.4], &[0.1, 0.2]), Some(0.0));
        assert_eq!(auroc(&[0.5], &[0.5]), Some(0.5));
        assert_eq!(auroc(&[0.1, 0.5], &[0.5]), Some(0.75));
        assert_eq!(auroc(&[], &[0.5]), None);
    }

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
