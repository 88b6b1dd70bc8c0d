//! Interchange with torch-uncertainty: its `bayesian_lenet` as a safetensors file, both ways
//! (`trainer import`, `trainer export --format safetensors`).

pub mod names;
pub mod rho;
pub mod safetensors;

use std::path::PathBuf;

use clap::Args;

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
