//! `trainer export MODEL --out FILE [--format postcard|safetensors] [--precision f32|f16|int8]`:
//! a model file written again, at another precision or as torch-uncertainty's `bayesian_lenet`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tinyvi::format::Precision;

use crate::error::{Result, TrainerError};
use crate::quantize::{convert, PrecisionArg};
use crate::report;

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// tinyvi's model file, as `train` writes it, at `--precision`.
    Postcard,
    /// torch-uncertainty's `bayesian_lenet` state dict (`safetensors.torch.load_model`), f32.
    Safetensors,
}

/// Flags of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A tinyvi model file (any precision; its decoded values are written).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Postcard)]
    pub format: ExportFormat,
    /// How a postcard file stores the parameters (safetensors files are always f32).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
}

/// `trainer export`.
pub fn run_export(args: &ExportArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let bad = |e: String| TrainerError::data(&args.model, e);
    let out = match args.format {
        ExportFormat::Postcard => {
            convert(&bytes, args.precision.into()).map_err(|e| bad(e.to_string()))?
        }
        ExportFormat::Safetensors => {
            if args.precision != PrecisionArg::F32 {
                return Err(TrainerError::invalid(
                    "--precision",
                    "applies to --format postcard only (safetensors files store f32)",
                ));
            }
            let e = crate::interop::export(&bytes).map_err(|e| bad(e.to_string()))?;
            if e.inexact > 0 {
                eprintln!(
                    "warning: {}: {} variances have no f32 ρ that reproduces them exactly; the nearest was written",
                    args.model.display(),
                    e.inexact
                );
            }
            e.bytes
        }
    };
    report::write_atomic(&args.out, &out)?;
    let what = match args.format {
        ExportFormat::Postcard => Precision::from(args.precision).name(),
        ExportFormat::Safetensors => "safetensors",
    };
    outln!(
        "wrote {} ({what}, {} bytes; {} had {} bytes)",
        args.out.display(),
        out.len(),
        args.model.display(),
        bytes.len()
    );
    Ok(())
}
