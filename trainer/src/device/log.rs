//! The firmware's log, parsed: its run settings, one result per image, the summary and whether
//! the run finished.
//!
//! The log is what `probe-rs run`, `defmt-print` or `cargo qemu` print. Lines that matter
//! carry a marker word followed by `key=value` fields (anything before the marker, such as a
//! level or a timestamp, and anything after ` | ` is ignored):
//! - `CONFIG mode=… samples=… seed=… images=… model_crc=0x… samples_crc=0x… cost_unit=…`
//! - `RESULT i=… dataset=… index=… label=… class=… ood=… probs=0x…,…,0x… entropy=0x… mi=0x… cost=…`
//! - `SUMMARY key=value …` (costs, memory, on-device OOD AUROC)
//! - `DONE ok`

use std::collections::BTreeMap;

use tinyvi::arch::CLASSES;
use tinyvi::infer::Mode;
use tinyvi::samples::Dataset;

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("device log{}: {message}", if *line == 0 { String::new() } else { format!(" line {line}") })]
pub struct LogError {
    /// 1-based line number (0 = the log as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const LOG: &str = "\
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
}
