//! Embeds the model and the sample set, and turns the build-time settings into constants.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TINYVI_MODEL` | `../artifacts/model.postcard` | model file from `trainer train` |
//! | `TINYVI_SAMPLES` | `../artifacts/samples.bin` | sample set from the trainer |
//! | `TINYVI_MODE` | `local-reparam` | sampling mode (`weights`, `local-reparam`, `mean`) |
//! | `TINYVI_MC_SAMPLES` | `16` | Monte Carlo samples per image |
//! | `TINYVI_SEED` | `0` | run seed; image `i` uses `image_seed(seed, i)` |
//! | `TINYVI_IMAGES` | all | run only the first N images of the sample set |
//!
//! Relative paths are relative to `firmware/`. Both files are validated here with the host
//! build of `tinyvi`, so a bad file is a build error, not a device failure.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use tinyvi::samples::SampleSet;
use tinyvi::Model;

fn main() {
    if let Err(message) = run() {
        eprintln!("\nerror: {message}\n");
        std::process::exit(1);
    }
}

fn setting(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn input_file(var: &str, default: &str, makes_it: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let path = match setting(var) {
        Some(p) => manifest.join(p),
        None => manifest.join(default),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let bytes = fs::read(&path).map_err(|e| {
        format!(
            "{var}: cannot read {} ({e}).\n       Make it with `{makes_it}` (from the repository root), \
             or point {var} at an existing file.",
            path.display()
        )
    })?;
    Ok((path, bytes))
}

fn copy_into(out: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let dest = out.join(name);
    // Rewrite only on change, so that an unchanged file does not recompile the firmware.
    if fs::read(&dest).ok().as_deref() != Some(bytes) {
        fs::write(&dest, bytes).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    }
    Ok(())
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);

    // memory.x where the linker finds it.
    let memory = fs::read("memory.x").map_err(|e| format!("cannot read memory.x: {e}"))?;
    copy_into(&out, "memory.x", &memory)?;
    println!("cargo:rustc-link-search={}", out.display());

    let (model_path, model) = input_file(
        "TINYVI_MODEL",
        "../artifacts/model.postcard",
        "cargo run -p trainer --release -- train` (or, untrained, `cargo run -p tests --bin make-fixture -- artifacts",
    )?;
    let decoded = Model::from_bytes(&model).map_err(|e| {
        format!(
            "TINYVI_MODEL: {} is not a valid model: {e}",
            model_path.display()
        )
    })?;
    if !tinyvi::arch::is_lenet(&decoded) {
        return Err(format!(
            "TINYVI_MODEL: {} is a valid model but not the LeNet this firmware runs",
            model_path.display()
        ));
    }
    let precision = decoded.precision();
    if precision != tinyvi::format::Precision::F32 && env::var_os("CARGO_FEATURE_QUANT").is_none() {
        return Err(format!(
            "TINYVI_MODEL: {} is an {} model; build with `--features quant` to run it",
            model_path.display(),
            precision.name()
        ));
    }
    let (samples_path, samples) = input_file(
        "TINYVI_SAMPLES",
        "../artifacts/samples.bin",
        "cargo run -p trainer --release -- export-samples --count 32` (32 MNIST + 32 Fashion-MNIST test images; with the untrained fixture: `cargo run -p tests --bin make-fixture -- artifacts",
    )?;
    let set = SampleSet::from_bytes(&samples).map_err(|e| {
        format!(
            "TINYVI_SAMPLES: {} is not a valid sample set: {e}",
            samples_path.display()
        )
    })?;
    copy_into(&out, "model.postcard", &model)?;
    copy_into(&out, "samples.bin", &samples)?;

    let mode = setting("TINYVI_MODE").unwrap_or_else(|| "local-reparam".into());
    // The firmware parses it again with `Mode::from_name`; checking here turns a typo into a
    // build error instead of a failed run.
    const MODES: [&str; 5] = ["weights", "local-reparam", "mean", "local_reparam", "lr"];
    if !MODES.contains(&mode.as_str()) {
        return Err(format!(
            "TINYVI_MODE={mode:?} is not a sampling mode (weights, local-reparam, mean)"
        ));
    }
    let mc_samples: u32 = parse("TINYVI_MC_SAMPLES", 16)?;
    if mc_samples == 0 {
        return Err("TINYVI_MC_SAMPLES must be at least 1".into());
    }
    let seed: u64 = parse("TINYVI_SEED", 0)?;
    let images: usize = parse("TINYVI_IMAGES", set.len())?.min(set.len());

    let config = format!(
        "/// Sampling mode name (`TINYVI_MODE`), parsed with `Mode::from_name` at start-up.\n\
         pub const MODE: &str = {mode:?};\n\
         /// Monte Carlo samples per image (`TINYVI_MC_SAMPLES`).\n\
         pub const MC_SAMPLES: u32 = {mc_samples};\n\
         /// Run seed (`TINYVI_SEED`).\n\
         pub const SEED: u64 = {seed};\n\
         /// Images run: the first `IMAGES` of the sample set (`TINYVI_IMAGES`).\n\
         pub const IMAGES: usize = {images};\n"
    );
    copy_into(&out, "config.rs", config.as_bytes())?;
    Ok(())
}

/// Reads a number setting: decimal, or hexadecimal with `0x`.
fn parse<T: TryFrom<u64>>(name: &str, default: T) -> Result<T, String> {
    let Some(text) = setting(name) else {
        return Ok(default);
    };
    let t = text.trim();
    let value = match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    value
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{name}={text:?} is not a valid number"))
}
