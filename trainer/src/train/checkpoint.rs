//! Training checkpoints: `checkpoint.bin` in `--out`, written atomically after every epoch (and
//! every `--checkpoint-steps` steps), read by `trainer train --resume`.
//!
//! Layout, all integers and floats little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `TVICKPT\0` |
//! | 4 | format version (u32, [`VERSION`]) |
//! | 8 + 8 + 4 + 4 + 8 + 8 | settings: seed, batch size, lr (f32 bits), KL weight (f32 bits), training samples, training images |
//! | 1 + 1 + 1 + 1 + 8 + 8 | options: local reparameterisation (0/1), KL mode (0 mc, 1 closed), KL reduction (0 layer mean, 1 sum), LR schedule (0 constant, 1 cosine, 2 one-cycle), KL annealing epochs, schedule epochs |
//! | 32 | SHA-256 of the training images and labels used |
//! | 8 × 3 | epoch, step within the epoch, global step |
//! | 8 × 2 | Σ loss, Σ batch accuracy of the current epoch (f64) |
//! | 4 + 4 + 4 | parameter count P, Adam steps of μ, Adam steps of ρ |
//! | 6 × 4P | μ, ρ, Adam m and v of μ, Adam m and v of ρ (f32) |
//! | 4 | CRC-32 (ISO-HDLC, as the model file) of everything before |
//!
//! The random streams are derived from (seed, epoch) and (seed, global step), so the position in
//! the run is all the generator state there is.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Result, TrainerError};
use crate::model::Lenet;
use crate::nn::lenet::PARAMS;
use crate::train::{AdamState, KlMode, KlReduction, LrSchedule, TrainConfig, TrainState};

/// File name inside `--out`.
pub const FILE: &str = "checkpoint.bin";
/// First bytes of every checkpoint.
pub const MAGIC: [u8; 8] = *b"TVICKPT\0";
/// Format version.
pub const VERSION: u32 = 2;

/// The settings a run can only be continued with: everything that changes the trained bytes
/// (the thread count does not; nor does the epoch count with a constant learning rate: more
/// epochs extend the run. With another schedule the total steps shape the learning rate, so the
/// epoch count is recorded as `schedule_epochs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `--seed`.
    pub seed: u64,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--lr`, as used (f32).
    pub lr: f32,
    /// `--kl-weight`, as used (f32).
    pub kl_weight: f32,
    /// `--train-samples`.
    pub train_samples: usize,
    /// Training images used (`--limit`, or the whole set).
    pub train_images: usize,
    /// `--local-reparam`.
    pub local_reparam: bool,
    /// `--kl`, as resolved.
    pub kl: KlMode,
    /// `--kl-reduction`.
    pub kl_reduction: KlReduction,
    /// `--lr-schedule`.
    pub lr_schedule: LrSchedule,
    /// `--kl-anneal-epochs`.
    pub kl_anneal_epochs: usize,
    /// `--crop-pad`.
    pub crop_pad: usize,
    /// `--epochs` when the learning-rate schedule depends on it, else 0.
    pub schedule_epochs: usize,
    /// SHA-256 of those images followed by their labels.
    pub data_sha256: [u8; 32],
}

impl Settings {
    /// The settings of a run of `cfg` on `images`, `labels`.
    pub fn new(cfg: &TrainConfig, images: &[u8], labels: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(images);
        h.update(labels);
        let mut data_sha256 = [0u8; 32];
        data_sha256.copy_from_slice(&h.finalize());
        Settings {
            seed: cfg.seed,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            kl_weight: cfg.kl_weight,
            train_samples: cfg.train_samples,
            train_images: labels.len(),
            local_reparam: cfg.local_reparam,
            kl: cfg.kl,
            kl_reduction: cfg.kl_reduction,
            lr_schedule: cfg.lr_schedule,
            kl_anneal_epochs: cfg.kl_anneal_epochs,
            crop_pad: cfg.crop_pad,
            schedule_epochs: if cfg.lr_schedule == LrSchedule::Constant {
                0
            } else {
                cfg.epochs
            },
            data_sha256,
        }
    }

    /// The first setting that differs from `now`, as `--flag saved (now …)`.
    pub fn first_difference(&self, now: &Settings) -> Option<String> {
        let d = |flag: &str, a: String, b: String| Some(format!("{flag} {a} (this run has {b})"));
        if self.seed != now.seed {
            return d("--seed", self.seed.to_string(), now.seed.to_string());
        }
        if self.batch_size != now.batch_size {
            return d(
                "--batch-size",
                self.batch_size.to_string(),
                now.batch_size.to_string(),
            );
        }
        if self.lr.to_bits() != now.lr.to_bits() {
            return d("--lr", self.lr.to_string(), now.lr.to_string());
        }
        if self.kl_weight.to_bits() != now.kl_weight.to_bits() {
            return d(
                "--kl-weight",
                self.kl_weight.to_string(),
                now.kl_weight.to_string(),
            );
        }
        if self.train_samples != now.train_samples {
            return d(
                "--train-samples",
                self.train_samples.to_string(),
                now.train_samples.to_string(),
            );
        }
        let flag = |b: bool| if b { "on" } else { "off" }.to_string();
        if self.local_reparam != now.local_reparam {
            return d(
                "--local-reparam",
                flag(self.local_reparam),
                flag(now.local_reparam),
            );
        }
        if self.kl != now.kl {
            return d("--kl", kl_name(self.kl), kl_name(now.kl));
        }
        if self.kl_reduction != now.kl_reduction {
            return d(
                "--kl-reduction",
                reduction_name(self.kl_reduction),
                reduction_name(now.kl_reduction),
            );
        }
        if self.lr_schedule != now.lr_schedule {
            return d(
                "--lr-schedule",
                schedule_name(self.lr_schedule),
                schedule_name(now.lr_schedule),
            );
        }
        if self.kl_anneal_epochs != now.kl_anneal_epochs {
            return d(
                "--kl-anneal-epochs",
                self.kl_anneal_epochs.to_string(),
                now.kl_anneal_epochs.to_string(),
            );
        }
        if self.crop_pad != now.crop_pad {
            return d(
                "--crop-pad",
                self.crop_pad.to_string(),
                now.crop_pad.to_string(),
            );
        }
        if self.schedule_epochs != now.schedule_epochs {
            return d(
                "--epochs",
                format!(
                    "{} (the learning-rate schedule spans them)",
                    self.schedule_epochs
                ),
                now.schedule_epochs.to_string(),
            );
        }
        if self.train_images != now.train_images {
            return d(
                "--limit",
                self.train_images.to_string(),
                now.train_images.to_string(),
            );
        }
        if self.data_sha256 != now.data_sha256 {
            return Some("other training data (--data: the images' SHA-256 differs)".into());
        }
        None
    }
}

fn kl_name(k: KlMode) -> String {
    match k {
        KlMode::Mc => "mc",
        KlMode::Closed => "closed",
    }
    .into()
}

fn reduction_name(r: KlReduction) -> String {
    match r {
        KlReduction::LayerMean => "layer-mean",
        KlReduction::Sum => "sum",
    }
    .into()
}

fn schedule_name(s: LrSchedule) -> String {
    match s {
        LrSchedule::Constant => "constant",
        LrSchedule::Cosine => "cosine",
        LrSchedule::OneCycle => "one-cycle",
    }
    .into()
}

/// A saved run: its settings, the model and the optimiser state.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// What the run was started with.
    pub settings: Settings,
    /// μ and ρ.
    pub model: Lenet,
    /// Position in the run and Adam's state.
    pub state: TrainState,
}

/// Why a byte string is not a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckpointError {
    /// Shorter than its header or its arrays say.
    Truncated,
    /// Longer than its arrays say.
    TrailingBytes,
    /// Not a checkpoint at all.
    BadMagic,
    /// A checkpoint of another format version.
    Version(u32),
    /// The stored CRC-32 does not match the content.
    Crc {
        /// Stored.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// Made for a model with another parameter count.
    Params(u32),
    /// A count does not fit this machine's `usize`.
    Overflow,
    /// An option byte with no meaning: (which option, the byte).
    BadOption(&'static str, u8),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Truncated => write!(f, "truncated checkpoint"),
            CheckpointError::TrailingBytes => write!(f, "checkpoint has trailing bytes"),
            CheckpointError::BadMagic => write!(f, "not a tinyvi checkpoint (bad magic)"),
            CheckpointError::Version(v) => write!(
                f,
                "checkpoint format version {v}, this trainer reads version {VERSION}"
            ),
            CheckpointError::Crc { stored, computed } => write!(
                f,
                "corrupt checkpoint: CRC-32 {computed:08x} of the content does not match the stored {stored:08x}"
            ),
            CheckpointError::Params(p) => write!(
                f,
                "checkpoint of a model with {p} parameters, not {PARAMS}"
            ),
            CheckpointError::Overflow => write!(f, "checkpoint count out of range"),
            CheckpointError::BadOption(what, v) => {
                write!(f, "checkpoint has an unknown {what} ({v})")
            }
        }
    }
}

impl std::error::Error for CheckpointError {}

impl Checkpoint {
    /// The encoded checkpoint (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let s = &self.settings;
        let st = &self.state;
        let mut b = Vec::with_capacity(200 + 24 * PARAMS);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&s.seed.to_le_bytes());
        b.extend_from_slice(&(s.batch_size as u64).to_le_bytes());
        b.extend_from_slice(&s.lr.to_bits().to_le_bytes());
        b.extend_from_slice(&s.kl_weight.to_bits().to_le_bytes());
        b.extend_from_slice(&(s.train_samples as u64).to_le_bytes());
        b.extend_from_slice(&(s.train_images as u64).to_le_bytes());
        b.push(s.local_reparam as u8);
        b.push(match s.kl {
            KlMode::Mc => 0,
            KlMode::Closed => 1,
        });
        b.push(match s.kl_reduction {
            KlReduction::LayerMean => 0,
            KlReduction::Sum => 1,
        });
        b.push(match s.lr_schedule {
            LrSchedule::Constant => 0,
            LrSchedule::Cosine => 1,
            LrSchedule::OneCycle => 2,
        });
        b.extend_from_slice(&(s.kl_anneal_epochs as u64).to_le_bytes());
        b.extend_from_slice(&(s.crop_pad as u64).to_le_bytes());
        b.extend_from_slice(&(s.schedule_epochs as u64).to_le_bytes());
        b.extend_from_slice(&s.data_sha256);
        for v in [st.epoch, st.step, st.global_step] {
            b.extend_from_slice(&(v as u64).to_le_bytes());
        }
        b.extend_from_slice(&st.epoch_loss_sum.to_bits().to_le_bytes());
        b.extend_from_slice(&st.epoch_accuracy_sum.to_bits().to_le_bytes());
        b.extend_from_slice(&(self.model.mu.len() as u32).to_le_bytes());
        b.extend_from_slice(&st.adam_mu.t.to_le_bytes());
        b.extend_from_slice(&st.adam_rho.t.to_le_bytes());
        for v in [
            &self.model.mu,
            &self.model.rho,
            &st.adam_mu.m,
            &st.adam_mu.v,
            &st.adam_rho.m,
            &st.adam_rho.v,
        ] {
            for x in v {
                b.extend_from_slice(&x.to_bits().to_le_bytes());
            }
        }
        let crc = tinyvi::format::crc32(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates `bytes`; never panics.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, CheckpointError> {
        if bytes.len() < MAGIC.len() + 4 {
            return Err(if bytes.starts_with(&MAGIC[..bytes.len().min(8)]) {
                CheckpointError::Truncated
            } else {
                CheckpointError::BadMagic
            });
        }
        if bytes[..8] != MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let mut r = Reader { b: bytes, at: 8 };
        let version = r.u32()?;
        if version != VERSION {
            return Err(CheckpointError::Version(version));
        }
        if bytes.len() < 4 {
            return Err(CheckpointError::Truncated);
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let computed = tinyvi::format::crc32(body);
        if stored != computed {
            // A truncated file fails the CRC too; say so when the length is what is wrong.
            if bytes.len() < HEADER + 4 || bytes.len() < encoded_len_from_header(bytes) {
                return Err(CheckpointError::Truncated);
            }
            return Err(CheckpointError::Crc { stored, computed });
        }
        let mut r = Reader { b: body, at: r.at };
        let seed = r.u64()?;
        let batch_size = r.usize()?;
        let lr = f32::from_bits(r.u32()?);
        let kl_weight = f32::from_bits(r.u32()?);
        let train_samples = r.usize()?;
        let train_images = r.usize()?;
        let opts = r.take(4)?;
        let local_reparam = match opts[0] {
            0 => false,
            1 => true,
            v => return Err(CheckpointError::BadOption("local reparameterisation", v)),
        };
        let kl = match opts[1] {
            0 => KlMode::Mc,
            1 => KlMode::Closed,
            v => return Err(CheckpointError::BadOption("KL mode", v)),
        };
        let kl_reduction = match opts[2] {
            0 => KlReduction::LayerMean,
            1 => KlReduction::Sum,
            v => return Err(CheckpointError::BadOption("KL reduction", v)),
        };
        let lr_schedule = match opts[3] {
            0 => LrSchedule::Constant,
            1 => LrSchedule::Cosine,
            2 => LrSchedule::OneCycle,
            v => return Err(CheckpointError::BadOption("learning-rate schedule", v)),
        };
        let kl_anneal_epochs = r.usize()?;
        let crop_pad = r.usize()?;
        let schedule_epochs = r.usize()?;
        let mut data_sha256 = [0u8; 32];
        data_sha256.copy_from_slice(r.take(32)?);
        let epoch = r.usize()?;
        let step = r.usize()?;
        let global_step = r.usize()?;
        let epoch_loss_sum = f64::from_bits(r.u64()?);
        let epoch_accuracy_sum = f64::from_bits(r.u64()?);
        let params = r.u32()?;
        if params as usize != PARAMS {
            return Err(CheckpointError::Params(params));
        }
        let t_mu = r.u32()?;
        let t_rho = r.u32()?;
        let mut arrays = Vec::with_capacity(6);
        for _ in 0..6 {
            arrays.push(r.f32s(PARAMS)?);
        }
        if r.at != body.len() {
            return Err(CheckpointError::TrailingBytes);
        }
        let mut it = arrays.into_iter();
        let mut next = || it.next().ok_or(CheckpointError::Truncated);
        let model = Lenet {
            mu: next()?,
            rho: next()?,
        };
        let adam_mu = AdamState {
            t: t_mu,
            m: next()?,
            v: next()?,
        };
        let adam_rho = AdamState {
            t: t_rho,
            m: next()?,
            v: next()?,
        };
        Ok(Checkpoint {
            settings: Settings {
                seed,
                batch_size,
                lr,
                kl_weight,
                train_samples,
                train_images,
                local_reparam,
                kl,
                kl_reduction,
                lr_schedule,
                kl_anneal_epochs,
                crop_pad,
                schedule_epochs,
                data_sha256,
            },
            model,
            state: TrainState {
                epoch,
                step,
                global_step,
                epoch_loss_sum,
                epoch_accuracy_sum,
                adam_mu,
                adam_rho,
            },
        })
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
        let c = Checkpoint::from_bytes(&bytes)
            .map_err(|e| TrainerError::data(path, format!("{e}; cannot resume from it")))?;
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

/// Bytes before the arrays, after the magic and version included.
const HEADER: usize = 8 + 4 + 8 + 8 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 32 + 24 + 16 + 12;

/// The full length a checkpoint with this header would have (`usize::MAX` if unreadable).
fn encoded_len_from_header(bytes: &[u8]) -> usize {
    let at = HEADER - 12;
    bytes
        .get(at..at + 4)
        .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize)
        .and_then(|p| p.checked_mul(24))
        .and_then(|a| a.checked_add(HEADER + 4))
        .unwrap_or(usize::MAX)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], CheckpointError> {
        let end = self.at.checked_add(n).ok_or(CheckpointError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(CheckpointError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> std::result::Result<u32, CheckpointError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self) -> std::result::Result<u64, CheckpointError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    fn usize(&mut self) -> std::result::Result<usize, CheckpointError> {
        usize::try_from(self.u64()?).map_err(|_| CheckpointError::Overflow)
    }

    fn f32s(&mut self, n: usize) -> std::result::Result<Vec<f32>, CheckpointError> {
        let len = n.checked_mul(4).ok_or(CheckpointError::Overflow)?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(b.len(), HEADER + 24 * PARAMS + 4);
        assert_eq!(encoded_len_from_header(&b), b.len());
        assert_eq!(Checkpoint::from_bytes(&b).unwrap(), c);
    }

    #[test]
    fn every_damage_is_an_error() {
        let b = sample().to_bytes();
        for len in (0..b.len()).step_by(997).chain([b.len() - 1, 11, 12, 13]) {
            let e = Checkpoint::from_bytes(&b[..len]).unwrap_err();
            assert!(
                matches!(e, CheckpointError::Truncated | CheckpointError::BadMagic),
                "{len}: {e}"
            );
        }
        for at in [0, 9, 20, 100, HEADER + 5, b.len() / 2, b.len() - 1] {
            let mut d = b.clone();
            d[at] ^= 0x10;
            assert!(Checkpoint::from_bytes(&d).is_err(), "bit flip at {at}");
        }
        for v in [1, VERSION + 1] {
            let mut d = b.clone();
            d[8] = v as u8;
            assert_eq!(
                Checkpoint::from_bytes(&d).unwrap_err(),
                CheckpointError::Version(v)
            );
        }
        // An option byte out of range (with a valid CRC) is refused.
        let at = 8 + 4 + 8 + 8 + 4 + 4 + 8 + 8 + 3;
        let mut d = b[..b.len() - 4].to_vec();
        d[at] = 7;
        let crc = tinyvi::format::crc32(&d);
        d.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Checkpoint::from_bytes(&d).unwrap_err(),
            CheckpointError::BadOption("learning-rate schedule", 7)
        );
        let mut d = b.clone();
        d.push(0);
        assert!(Checkpoint::from_bytes(&d).is_err());
    }

    #[test]
    fn a_different_setting_is_named() {
        let a = sample().settings;
        assert_eq!(a.first_difference(&a), None);
        let mut b = a.clone();
        b.lr = 1e-2;
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
                    kl: KlMode::Closed,
                    ..cfg.clone()
                },
                "--local-reparam off",
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
