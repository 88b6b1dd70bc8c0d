//! `trainer export-samples`, and the sample set `train` writes beside the model.

use std::path::Path;

use super::TestSets;
use crate::cli::ExportSamplesArgs;
use crate::device::samples::sample_set;
use crate::error::Result;
use crate::report;

/// Images of MNIST test and of Fashion-MNIST test written to `samples.bin` for the firmware.
pub const DEVICE_SAMPLES_PER_SET: usize = 32;

/// `trainer export-samples`: writes the firmware's sample images without training.
pub fn run_export_samples(args: &ExportSamplesArgs) -> Result<()> {
    let mut tests = TestSets::load(&args.data)?;
    if let Some(c) = args.shift {
        tests.mnist = crate::shift::shifted_head(&tests.mnist, c, args.count, args.data_seed)?;
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        report::create_out_dir(dir)?;
    }
    let bytes = sample_set(&tests.mnist, tests.fashion.as_ref(), args.count)?;
    report::write_atomic(&args.out, &bytes)?;
    outln!("wrote {}", args.out.display());
    Ok(())
}

/// Writes the firmware's sample images: the first [`DEVICE_SAMPLES_PER_SET`] of MNIST test and
/// of Fashion-MNIST test (when installed).
pub(super) fn write_samples(path: &Path, tests: &TestSets) -> Result<()> {
    let bytes = sample_set(&tests.mnist, tests.fashion.as_ref(), DEVICE_SAMPLES_PER_SET)?;
    report::write_atomic(path, &bytes)
}
