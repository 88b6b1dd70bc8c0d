//! A model trained by torch-uncertainty, imported with `trainer import`, on the firmware in
//! QEMU: every result bit-identical to the host replay, and `trainer compare` agrees.
//!
//! Needs what tests/qemu.rs needs (qemu-system-arm, the thumbv7em-none-eabihf target,
//! flip-link); fails with what to install when one is missing.

use std::time::Duration;

use tests::compare::log::parse_log;
use tests::compare::replay::replay;
use tests::firmware::{build, require_tools, run_qemu, Build};
use tests::{scratch_dir, workspace_root};
use tinyvi::samples::SampleSet;
use trainer::data::mnist::{load_fashion_test, load_mnist};

const IMAGES: usize = 64;
const MC_SAMPLES: u32 = 16;
const SEED: u64 = 2024;

#[test]
fn an_imported_torch_uncertainty_model_runs_in_qemu_bit_identically() {
    require_tools();
    let dir = scratch_dir("interop-qemu");
    let st = workspace_root().join("tests/fixtures/torch-uncertainty/bayesian_lenet.safetensors");
    let model_path = dir.join("model.postcard");
    trainer::interop::run_import(&trainer::interop::ImportArgs {
        file: st,
        out: model_path.clone(),
    })
    .expect("trainer import");
    let model = std::fs::read(&model_path).unwrap();

    let data = tests::data_dir();
    let (_, test) = load_mnist(&data).expect("MNIST");
    let fashion = load_fashion_test(&data).expect("Fashion-MNIST").expect(
        "Fashion-MNIST test set (fetched with apt-get download; the line above says why not)",
    );
    let samples = trainer::device::samples::sample_set(&test, Some(&fashion), IMAGES / 2).unwrap();
    let samples_path = dir.join("samples.bin");
    std::fs::write(&samples_path, &samples).unwrap();

    let mode = "local-reparam";
    let elf = dir.join("firmware.elf");
    build(
        &Build {
            model: &model_path,
            samples: &samples_path,
            mode,
            mc_samples: MC_SAMPLES,
            seed: SEED,
            features: &[],
        },
        &elf,
    );
    let run = run_qemu(&elf, Duration::from_secs(900));
    assert!(!run.timed_out, "QEMU timed out; log so far:\n{}", run.log);
    assert_eq!(run.code, Some(0), "firmware failed in QEMU:\n{}", run.log);
    let log_path = dir.join("log.txt");
    std::fs::write(&log_path, &run.log).unwrap();

    let log = parse_log(&run.log).unwrap_or_else(|e| panic!("{e}\n{}", run.log));
    assert_eq!(log.config.mode.name(), mode);
    assert_eq!(log.results.len(), IMAGES);
    let set = SampleSet::from_bytes(&samples).unwrap();
    let report = replay(&log, &model, &set);
    println!("{report}");
    assert_eq!(report.bit_identical, IMAGES, "{report}");
    assert!(report.passed(), "{report}");
    // The device's MNIST answers are mostly right: the imported model is a real one.
    let right = log.results[..IMAGES / 2]
        .iter()
        .filter(|r| r.class == r.label)
        .count();
    assert!(right >= 28, "{right}/32 MNIST images right on the device");

    // `trainer compare` on the same files succeeds (no predictions.csv: skipped with a note).
    trainer::commands::compare::run_compare(&trainer::cli::CompareArgs {
        log: log_path,
        model: model_path,
        samples: samples_path,
        predictions: dir.join("no-predictions.csv"),
    })
    .expect("trainer compare");
}
