//! Training checkpoints: `checkpoint.bin` in `--out`, written atomically after every epoch (and
//! every `--checkpoint-steps` steps), read by `trainer train --resume`.
//!
//! Layout: the magic `TVICKPT\0`, the format version (u32 little-endian, [`VERSION`]), then the
//! [`Checkpoint`] in postcard with postcard's CRC-32 flavour (ISO-HDLC, the model file's CRC) over
//! the postcard bytes. The random streams are derived from (seed, epoch) and (seed, global step),
//! so the position in the run is all the generator state there is.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LrSchedule, TrainConfig, TrainState};
use crate::error::{Result, TrainerError};
use crate::model::Lenet;
use crate::nn::lenet::PARAMS;

/// File name inside `--out`.
pub const FILE: &str = "checkpoint.bin";
/// First bytes of every checkpoint.
pub const MAGIC: [u8; 8] = *b"TVICKPT\0";
/// Format version.
pub const VERSION: u32 = 3;

/// The CRC-32 of the checkpoint's postcard bytes.
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What a run can only be continued with: its configuration and its training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The run's configuration.
    pub config: TrainConfig,
    /// Training images used (`--limit`, or the whole set less `--holdout`).
    pub train_images: usize,
    /// SHA-256 of those images followed by their labels.
    pub data_sha256: [u8; 32],
}

/// Options of [`TrainConfig`] a resumed run may change: the held-out count (the data's
/// hash covers what it changes) and the temperature scaling after training. The epoch count is
/// compared only when the learning-rate schedule spans it.
const MAY_CHANGE: [&str; 2] = ["holdout", "temperature_scaling"];

impl Settings {
    /// The settings of a run of `config` on `images`, `labels`.
    pub fn new(config: &TrainConfig, images: &[u8], labels: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(images);
        h.update(labels);
        Settings {
            config: config.clone(),
            train_images: labels.len(),
            data_sha256: h.finalize().into(),
        }
    }

    /// The first setting that differs from `now`, as `--flag saved (this run has now)`.
    pub fn first_difference(&self, now: &Settings) -> Option<String> {
        let fields = |c: &TrainConfig| match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => unreachable!("a TrainConfig serialises to a JSON object"),
        };
        // serde_json's map iterates in key order: the first difference is the first in
        // alphabetical order.
        let (saved, current) = (fields(&self.config), fields(&now.config));
        let spans_epochs = self.config.lr_schedule != LrSchedule::Constant;
        for (key, was) in &saved {
            let is = &current[key];
            if was == is || MAY_CHANGE.contains(&key.as_str()) {
                continue;
            }
            let flag = format!("--{}", key.replace('_', "-"));
            if key == "epochs" {
                if !spans_epochs {
                    continue;
                }
                return Some(format!(
                    "{flag} {was} (the learning-rate schedule spans them) (this run has {is})"
                ));
            }
            return Some(format!(
                "{flag} {} (this run has {})",
                value(was),
                value(is)
            ));
        }
        if self.train_images != now.train_images {
            return Some(format!(
                "--limit {} (this run has {})",
                self.train_images, now.train_images
            ));
        }
        if self.data_sha256 != now.data_sha256 {
            return Some("other training data (--data: the images' SHA-256 differs)".into());
        }
        None
    }
}

/// A configuration value as a flag takes it: numbers as f32 (every float of the configuration
/// is one), names without quotes.
fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            n.as_f64().map_or(n.to_string(), |x| (x as f32).to_string())
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A saved run: its settings, the model and the optimiser state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What the run was started with.
    pub settings: Settings,
    /// μ and ρ.
    pub model: Lenet,
    /// Position in the run and Adam's state.
    pub state: TrainState,
}

/// Why a byte string is not a checkpoint of this trainer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Shorter than its content says.
    #[error("truncated checkpoint")]
    Truncated,
    /// Longer than its content says.
    #[error("checkpoint has trailing bytes")]
    TrailingBytes,
    /// Not a checkpoint at all.
    #[error("not a tinyvi checkpoint (bad magic)")]
    BadMagic,
    /// A checkpoint of another format version.
    #[error("checkpoint format version {0}, this trainer reads version {VERSION} (train again without --resume)")]
    Version(u32),
    /// The stored CRC-32 does not match the content.
    #[error("corrupt checkpoint: CRC-32 of the content does not match the stored one")]
    Crc,
    /// Made for a model with another parameter count.
    #[error("checkpoint of a model with {0} parameters, not {PARAMS}")]
    Params(usize),
    /// The content does not decode (a value out of range).
    #[error("malformed checkpoint: {0}")]
    Malformed(postcard::Error),
}

impl From<postcard::Error> for CheckpointError {
    fn from(e: postcard::Error) -> Self {
        match e {
            postcard::Error::DeserializeUnexpectedEnd => CheckpointError::Truncated,
            postcard::Error::DeserializeBadCrc => CheckpointError::Crc,
            e => CheckpointError::Malformed(e),
        }
    }
}

impl Checkpoint {
    /// The encoded checkpoint (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&VERSION.to_le_bytes());
        let body = postcard::to_stdvec_crc32(self, CRC.digest())
            .expect("a checkpoint serialises into a growable vector");
        b.extend_from_slice(&body);
        b
    }

    /// Decodes a checkpoint, checking magic, version, CRC, length and parameter count.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, CheckpointError> {
        if bytes.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(bytes) {
                CheckpointError::Truncated
            } else {
                CheckpointError::BadMagic
            });
        }
        let (magic, rest) = bytes.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let (version, body) = rest
            .split_first_chunk::<4>()
            .ok_or(CheckpointError::Truncated)?;
        let version = u32::from_le_bytes(*version);
        if version != VERSION {
            return Err(CheckpointError::Version(version));
        }
        let (c, rest): (Checkpoint, _) = postcard::take_from_bytes_crc32(body, CRC.digest())?;
        if !rest.is_empty() {
            return Err(CheckpointError::TrailingBytes);
        }
        for v in [&c.model.mu, &c.model.rho] {
            if v.len() != PARAMS {
                return Err(CheckpointError::Params(v.len()));
            }
        }
        Ok(c)
    }

    /// Writes the checkpoint to `path` atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::report::write_atomic(path, &self.to_bytes())
    }

    /// Reads `path` for `trainer train --resume` and checks it was made with `now`'s settings;
    /// every failure is one line naming the file and the problem (or the differing setting).
    pub fn load_for(path: &Path, now: &Settings) -> Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrainerError::invalid(
                    "--resume",
                    format!(
                        "no checkpoint at {} (train without --resume first)",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(TrainerError::read(path, e)),
        };
        let c = Checkpoint::from_bytes(&bytes).map_err(|source| TrainerError::Checkpoint {
            path: path.into(),
            source,
        })?;
        if let Some(d) = c.settings.first_difference(now) {
            return Err(TrainerError::invalid(
                "--resume",
                format!(
                    "{} was made with {d}; resume with the same settings",
                    path.display()
                ),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{AdamState, KlMode, KlReduction};

    fn sample() -> Checkpoint {
        let model = Lenet::init(7);
        let ramp = |k: f32| (0..PARAMS).map(|i| i as f32 * k).collect::<Vec<_>>();
        Checkpoint {
            settings: Settings::new(&TrainConfig::default(), &[1, 2, 3], &[4]),
            model,
            state: TrainState {
                epoch: 1,
                step: 3,
                global_step: 12,
                epoch_loss_sum: 1.25,
                epoch_accuracy_sum: 0.5,
                adam_mu: AdamState {
                    t: 12,
                    m: ramp(1e-3),
                    v: ramp(1e-6),
                },
                adam_rho: AdamState {
                    t: 12,
                    m: ramp(-2e-3),
                    v: ramp(3e-6),
                },
            },
        }
    }

    #[test]
    fn round_trips_bit_exactly() {
        let c = sample();
        let b = c.to_bytes();
        assert_eq!(&b[..8], b"TVICKPT\0");
        assert_eq!(b[8..12], VERSION.to_le_bytes());
        assert_eq!(Checkpoint::from_bytes(&b).unwrap(), c);
    }

    #[test]
    fn every_damage_is_an_error() {
        let b = sample().to_bytes();
        for len in (0..b.len()).step_by(997).chain([b.len() - 1, 11, 12, 13]) {
            let e = Checkpoint::from_bytes(&b[..len]).unwrap_err();
            assert_eq!(e, CheckpointError::Truncated, "{len}: {e}");
        }
        // In the arrays and the CRC a flip is a CRC mismatch; in the settings it may also make
        // a value that does not decode.
        for at in [b.len() / 3, b.len() / 2, b.len() - 1] {
            let mut d = b.clone();
            d[at] ^= 0x10;
            assert_eq!(
                Checkpoint::from_bytes(&d).unwrap_err(),
                CheckpointError::Crc,
                "bit flip at {at}"
            );
        }
        for at in 12..120 {
            let mut d = b.clone();
            d[at] ^= 0x10;
            let e = Checkpoint::from_bytes(&d).unwrap_err();
            assert!(
                matches!(
                    e,
                    CheckpointError::Crc
                        | CheckpointError::Malformed(_)
                        | CheckpointError::Truncated
                        | CheckpointError::TrailingBytes
                ),
                "bit flip at {at}: {e}"
            );
        }
        let mut d = b.clone();
        d[0] ^= 1;
        assert_eq!(
            Checkpoint::from_bytes(&d).unwrap_err(),
            CheckpointError::BadMagic
        );
        assert_eq!(
            Checkpoint::from_bytes(b"not a checkpoint").unwrap_err(),
            CheckpointError::BadMagic
        );
        for v in [2, VERSION + 1] {
            let mut d = b.clone();
            d[8..12].copy_from_slice(&u32::to_le_bytes(v));
            let e = Checkpoint::from_bytes(&d).unwrap_err();
            assert_eq!(e, CheckpointError::Version(v));
            assert_eq!(
                e.to_string(),
                format!("checkpoint format version {v}, this trainer reads version 3 (train again without --resume)")
            );
        }
        let mut d = b.clone();
        d.push(0);
        assert_eq!(
            Checkpoint::from_bytes(&d).unwrap_err(),
            CheckpointError::TrailingBytes
        );
        // A model of another size, with a valid CRC.
        let mut c = sample();
        c.model.mu.pop();
        assert_eq!(
            Checkpoint::from_bytes(&c.to_bytes()).unwrap_err(),
            CheckpointError::Params(PARAMS - 1)
        );
    }

    #[test]
    fn a_different_setting_is_named() {
        let a = sample().settings;
        assert_eq!(a.first_difference(&a), None);
        let mut b = a.clone();
        b.config.lr = 1e-2;
        let d = a.first_difference(&b).unwrap();
        assert!(d.starts_with("--lr 0.001") && d.contains("0.01"), "{d}");
        let mut b = a.clone();
        b.train_images = 3000;
        assert!(a.first_difference(&b).unwrap().starts_with("--limit 1 "));
        let mut b = a.clone();
        b.data_sha256[0] ^= 1;
        assert!(a.first_difference(&b).unwrap().contains("--data"));
        // Every training option is recorded and compared.
        let cfg = TrainConfig::default();
        let base = Settings::new(&cfg, &[1, 2, 3], &[4]);
        for (other, flag) in [
            (
                TrainConfig {
                    local_reparam: true,
                    ..cfg.clone()
                },
                "--local-reparam false (this run has true)",
            ),
            (
                TrainConfig {
                    kl: KlMode::Closed,
                    ..cfg.clone()
                },
                "--kl mc",
            ),
            (
                TrainConfig {
                    kl_reduction: KlReduction::Sum,
                    ..cfg.clone()
                },
                "--kl-reduction layer-mean",
            ),
            (
                TrainConfig {
                    kl_anneal_epochs: 2,
                    ..cfg.clone()
                },
                "--kl-anneal-epochs 0",
            ),
            (
                TrainConfig {
                    lr_schedule: LrSchedule::Cosine,
                    ..cfg.clone()
                },
                "--lr-schedule constant",
            ),
            (
                TrainConfig {
                    crop_pad: 2,
                    ..cfg.clone()
                },
                "--crop-pad 4",
            ),
        ] {
            let now = Settings::new(&other, &[1, 2, 3], &[4]);
            let d = base.first_difference(&now).unwrap();
            assert!(d.starts_with(flag), "{d}");
            let c = Checkpoint {
                settings: now.clone(),
                ..sample()
            };
            assert_eq!(Checkpoint::from_bytes(&c.to_bytes()).unwrap().settings, now);
        }
        // With a schedule, the epoch count shapes the learning rate: it must match.
        let sched = |epochs| TrainConfig {
            epochs,
            lr_schedule: LrSchedule::OneCycle,
            ..cfg.clone()
        };
        let (a, b) = (
            Settings::new(&sched(3), &[1], &[1]),
            Settings::new(&sched(4), &[1], &[1]),
        );
        assert!(a.first_difference(&b).unwrap().starts_with("--epochs 3"));
        let constant = |epochs| TrainConfig {
            epochs,
            ..cfg.clone()
        };
        let (a, b) = (
            Settings::new(&constant(3), &[1], &[1]),
            Settings::new(&constant(4), &[1], &[1]),
        );
        assert_eq!(a.first_difference(&b), None);
    }
}
