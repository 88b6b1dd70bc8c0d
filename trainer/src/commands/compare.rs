//! `trainer compare`: a device log against its host replay and the trainer's predictions.

use std::path::Path;

use tinyvi::arch::CLASSES;

use crate::cli::CompareArgs;
use crate::device::agreement::{agreement, TrainerImage};
use crate::device::log::parse_log;
use crate::device::replay::replay;
use crate::error::{Result, TrainerError};

/// `trainer compare`: replays a device log on the host and fails unless every result is
/// bit-identical; also reports agreement with the trainer's own evaluation when available.
pub fn run_compare(args: &CompareArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.log).map_err(|e| TrainerError::read(&args.log, e))?;
    let log = parse_log(&text).map_err(|e| TrainerError::data(&args.log, e.to_string()))?;
    let model = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let sample_bytes =
        std::fs::read(&args.samples).map_err(|e| TrainerError::read(&args.samples, e))?;
    let samples = tinyvi::samples::SampleSet::from_bytes(&sample_bytes)
        .map_err(|e| TrainerError::data(&args.samples, e.to_string()))?;
    let report = replay(&log, &model, &samples);
    outln!("{report}");
    if args.predictions.exists() {
        let trainer = read_trainer_predictions(&args.predictions)?;
        outln!("{}", agreement(&log, &trainer));
    } else {
        outln!(
            "({} not found: no comparison with the trainer's own evaluation)",
            args.predictions.display()
        );
    }
    if report.passed() {
        Ok(())
    } else {
        Err(TrainerError::invalid(
            "compare",
            format!(
                "{} of {} device results are bit-identical to the host replay",
                report.bit_identical, report.expected_images
            ),
        ))
    }
}

/// Reads `predictions.csv` (as [`report::write_predictions_csv`] writes it).
pub fn read_trainer_predictions(path: &Path) -> Result<Vec<TrainerImage>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainerError::read(path, e))?;
    let bad = |line: usize, what: &str| TrainerError::data(path, format!("line {line}: {what}"));
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 + CLASSES + 2 {
            return Err(bad(n + 1, "too few columns"));
        }
        let dataset = tinyvi::samples::Dataset::from_name(f[0])
            .ok_or_else(|| bad(n + 1, "unknown dataset"))?;
        let index = f[1].parse().map_err(|_| bad(n + 1, "bad index"))?;
        let num = |s: &str| s.parse::<f32>().map_err(|_| bad(n + 1, "bad number"));
        let mut probs = [0.0; CLASSES];
        for (c, p) in probs.iter_mut().enumerate() {
            *p = num(f[3 + c])?;
        }
        rows.push(TrainerImage {
            dataset,
            index,
            probs,
            entropy: num(f[3 + CLASSES])?,
            mutual_information: num(f[4 + CLASSES])?,
        });
    }
    Ok(rows)
}
