//! Interchange with torch-uncertainty: its `bayesian_lenet` as a safetensors file, both ways
//! (`trainer import`, `trainer export --format safetensors`).

pub mod names;
pub mod rho;
pub mod safetensors;

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{Result, TrainerError};
pub use safetensors::{export, import, import_to_model_file, Exported, Imported, InteropError};

/// Flags of `import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A torch-uncertainty `bayesian_lenet(1, 10)` state dict as safetensors (as
    /// `safetensors.torch.save_model` writes it).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The tinyvi model file to write.
    #[arg(long, value_name = "FILE", default_value = "model.postcard")]
    pub out: PathBuf,
}

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// tinyvi's model file (f32), as `train` writes it.
    Postcard,
    /// torch-uncertainty's `bayesian_lenet` state dict (`safetensors.torch.load_model`).
    Safetensors,
}

/// Flags of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A tinyvi model file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Postcard)]
    pub format: ExportFormat,
}

/// `trainer import`.
pub fn run_import(args: &ImportArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).map_err(|e| TrainerError::read(&args.file, e))?;
    let model =
        import_to_model_file(&bytes).map_err(|e| TrainerError::data(&args.file, e.to_string()))?;
    std::fs::write(&args.out, &model).map_err(|e| TrainerError::write(&args.out, e))?;
    outln!(
        "{}: torch-uncertainty bayesian_lenet → {} ({} bytes)",
        args.file.display(),
        args.out.display(),
        model.len()
    );
    Ok(())
}

/// `trainer export`.
pub fn run_export(args: &ExportArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let bad = |e: String| TrainerError::data(&args.model, e);
    let out = match args.format {
        ExportFormat::Postcard => reencode(&bytes).map_err(bad)?,
        ExportFormat::Safetensors => {
            let e = export(&bytes).map_err(|e| bad(e.to_string()))?;
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
    std::fs::write(&args.out, &out).map_err(|e| TrainerError::write(&args.out, e))?;
    outln!(
        "{} → {} ({} bytes)",
        args.model.display(),
        args.out.display(),
        out.len()
    );
    Ok(())
}

/// Decodes a model file and encodes it again (f32).
pub fn reencode(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    use tinyvi::format::{encode, encoded_len, LayerSpec, ModelSpec};
    let model = tinyvi::Model::from_bytes(bytes).map_err(|e| e.to_string())?;
    let arrays: Vec<[Vec<f32>; 4]> = model
        .layers()
        .iter()
        .map(|l| [l.weight_mean, l.weight_var, l.bias_mean, l.bias_var].map(|a| a.iter().collect()))
        .collect();
    let specs: Vec<LayerSpec<'_>> = model
        .layers()
        .iter()
        .zip(&arrays)
        .map(|(l, [wm, wv, bm, bv])| LayerSpec {
            kind: l.kind,
            then: l.then,
            weight_mean: wm,
            weight_var: wv,
            bias_mean: bm,
            bias_var: bv,
        })
        .collect();
    let spec = ModelSpec {
        input: model.input(),
        classes: model.classes(),
        ood: model.ood_threshold(),
        layers: &specs,
    };
    let mut out = vec![0u8; encoded_len(&spec).map_err(|e| e.to_string())?];
    let used = encode(&spec, &mut out).map_err(|e| e.to_string())?;
    out.truncate(used);
    Ok(out)
}
