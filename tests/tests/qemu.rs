//! The firmware in QEMU (mps2-an386, Cortex-M4F) against the host build of the same core:
//! 64 images × 16 Monte Carlo samples, every result bit-identical, in each sampling mode.
//!
//! Needs `qemu-system-arm`, the `thumbv7em-none-eabihf` target and flip-link; fails (does not
//! skip) with what to install when one is missing. Builds the firmware with
//! `cargo build --release --features qemu` in `firmware/`.

use std::path::PathBuf;
use std::time::Duration;

use tests::compare::log::{parse_log, DeviceLog};
use tests::compare::replay::replay;
use tests::firmware::{build, require_tools, run_qemu, Build, Run};
use tests::{random_lenet, scratch_dir, FIXTURE_THRESHOLD};
use tinyvi::arch::IMAGE_LEN;
use tinyvi::samples::SampleSet;
use trainer::data::mnist::{load_fashion_test, load_mnist};

/// Images in the sample set: the first 32 of MNIST test and of Fashion-MNIST test.
const IMAGES: usize = 64;
const MC_SAMPLES: u32 = 16;
const SEED: u64 = 2024;
const TIMEOUT: Duration = Duration::from_secs(900);

struct Fixture {
    dir: PathBuf,
    model: Vec<u8>,
    samples: Vec<u8>,
}

/// A model trained for 40 steps on real MNIST (with the trainer's OOD threshold rule) and the
/// real sample images, made once per test process.
fn trained_model_and_samples() -> &'static (Vec<u8>, Vec<u8>) {
    static ONCE: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let data = tests::data_dir();
        let (train, test) = load_mnist(&data).expect("MNIST (see the README's Data section)");
        let fashion = load_fashion_test(&data).expect("Fashion-MNIST").expect(
            "Fashion-MNIST test set (fetched with apt-get download; the line above says why not)",
        );
        let n = 40 * 128;
        let mut model = trainer::model::Lenet::init(7);
        let cfg = trainer::train::TrainConfig {
            seed: 7,
            threads: 2,
            ..Default::default()
        };
        trainer::train::train(
            &mut model,
            &train.images[..n * IMAGE_LEN],
            &train.labels[..n],
            &cfg,
            &mut |_| {},
        )
        .expect("training");
        let calibration = trainer::eval::monte_carlo::evaluate(
            &model,
            &train.images[n * IMAGE_LEN..(n + 500) * IMAGE_LEN],
            8,
            1,
        );
        let threshold = trainer::eval::threshold::ood_threshold(&calibration);
        let bytes = trainer::model::export::try_export(&model, Some(threshold)).expect("export");
        let samples = trainer::device::samples::sample_set(&test, Some(&fashion), IMAGES / 2)
            .expect("sample set");
        (bytes, samples)
    })
}

/// A model made by `trainer train --recipe best --temperature-scaling` itself (the preset's
/// options: one-cycle schedule, one sample per step, crop padding 2, 5,000 held-out images;
/// plus the temperature folded into fc3), shortened to one epoch on 5,120 images, and the
/// sample images the run wrote.
fn best_recipe_model_and_samples() -> &'static (Vec<u8>, Vec<u8>) {
    static ONCE: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        use clap::Parser;
        let data = tests::data_dir();
        let out = scratch_dir("best-recipe-run");
        let argv = [
            "trainer",
            "train",
            "--recipe",
            "best",
            "--temperature-scaling",
            "--epochs",
            "1",
            "--limit",
            "5120",
            "--quiet",
            "--data",
            data.to_str().expect("UTF-8 data path"),
            "--out",
            out.to_str().expect("UTF-8 scratch path"),
        ];
        let trainer::cli::Command::Train(args) = trainer::cli::Cli::try_parse_from(argv)
            .expect("flags")
            .into_command()
        else {
            unreachable!("a train command")
        };
        trainer::commands::train::run_train(&args).expect("trainer train --recipe best");
        let metrics = std::fs::read_to_string(out.join("metrics.json")).expect("metrics.json");
        assert!(
            !metrics.contains("\"temperature\": null"),
            "the run scales the temperature: {metrics}"
        );
        (
            std::fs::read(out.join("model.postcard")).expect("model.postcard"),
            std::fs::read(out.join("samples.bin")).expect("samples.bin"),
        )
    })
}

/// The trained model converted by `trainer export MODEL --precision P --out FILE` (the
/// command line parsed as the binary parses it), with the same sample images.
fn exported_at(precision: &str) -> (Vec<u8>, Vec<u8>) {
    use clap::Parser;
    let (model, samples) = trained_model_and_samples();
    let dir = scratch_dir(&format!("export-{precision}"));
    let (src, dst) = (dir.join("model.postcard"), dir.join("model-out.postcard"));
    std::fs::write(&src, model).expect("write the f32 model");
    let argv = [
        "trainer",
        "export",
        src.to_str().expect("UTF-8 scratch path"),
        "--precision",
        precision,
        "--out",
        dst.to_str().expect("UTF-8 scratch path"),
    ];
    let trainer::cli::Command::Export(args) = trainer::cli::Cli::try_parse_from(argv)
        .expect("flags")
        .into_command()
    else {
        unreachable!("an export command")
    };
    trainer::commands::export::run_export(&args).expect("trainer export");
    let bytes = std::fs::read(&dst).expect("exported model");
    let decoded = tinyvi::Model::from_bytes(&bytes).map(|m| m.precision().name());
    assert_eq!(decoded, Ok(precision), "the exported model decodes");
    (bytes, samples.clone())
}

fn fixture(name: &str) -> Fixture {
    fixture_of(name, trained_model_and_samples())
}

fn fixture_of(name: &str, made: &(Vec<u8>, Vec<u8>)) -> Fixture {
    let dir = scratch_dir(name);
    let (model, samples) = made.clone();
    std::fs::write(dir.join("model.postcard"), &model).expect("write fixture model");
    std::fs::write(dir.join("samples.bin"), &samples).expect("write fixture samples");
    Fixture {
        dir,
        model,
        samples,
    }
}

fn build_and_run(f: &Fixture, mode: &str, features: &[&str]) -> Run {
    require_tools();
    let elf = f.dir.join(format!("firmware-{mode}.elf"));
    build(
        &Build {
            model: &f.dir.join("model.postcard"),
            samples: &f.dir.join("samples.bin"),
            mode,
            mc_samples: MC_SAMPLES,
            seed: SEED,
            features,
        },
        &elf,
    );
    let run = run_qemu(&elf, TIMEOUT);
    std::fs::write(f.dir.join(format!("log-{mode}.txt")), &run.log).expect("write the log");
    run
}

fn bit_identical_in(mode: &str) {
    bit_identical_with(fixture(&format!("qemu-{mode}")), mode);
}

fn bit_identical_with(f: Fixture, mode: &str) {
    bit_identical_with_features(f, mode, &[]);
}

fn bit_identical_with_features(f: Fixture, mode: &str, features: &[&str]) {
    let run = build_and_run(&f, mode, features);
    assert!(!run.timed_out, "QEMU timed out; log so far:\n{}", run.log);
    assert_eq!(run.code, Some(0), "firmware failed in QEMU:\n{}", run.log);
    let log: DeviceLog = parse_log(&run.log).unwrap_or_else(|e| panic!("{e}\n{}", run.log));
    assert_eq!(log.config.mode.name(), mode);
    assert_eq!(log.config.samples, MC_SAMPLES);
    assert_eq!(log.config.seed, SEED);
    assert_eq!(log.results.len(), IMAGES);
    let set = SampleSet::from_bytes(&f.samples).expect("fixture sample set");
    let report = replay(&log, &f.model, &set);
    println!("{report}");
    assert_eq!(report.bit_identical, IMAGES, "{report}");
    assert!(report.passed(), "{report}");

    // The comparison can fail: one flipped bit in one logged probability is one mismatch…
    let line = run
        .log
        .lines()
        .find(|l| l.contains("RESULT i=5 "))
        .expect("image 5");
    let probs = line
        .split("probs=")
        .nth(1)
        .expect("probs")
        .split(',')
        .next()
        .expect("p0");
    let bits = u32::from_str_radix(probs.trim_start_matches("0x"), 16).expect("hex") ^ 1;
    let tampered = run
        .log
        .replace(line, &line.replace(probs, &format!("{bits:#x}")));
    let report = replay(&parse_log(&tampered).expect("parses"), &f.model, &set);
    assert_eq!(report.bit_identical, IMAGES - 1, "{report}");
    assert_eq!(report.mismatches.len(), 1);
    assert_eq!(report.mismatches[0].i, 5);
    assert!(!report.passed());
    // …and another model is refused by its checksum.
    let other = random_lenet(99, Some(FIXTURE_THRESHOLD));
    let report = replay(&log, &other, &set);
    assert!(!report.passed());
    assert!(
        report.problems.iter().any(|p| p.contains("CRC")),
        "{report}"
    );

    // The cost counter really counts: SysTick under -icount matches the calibration loop,
    // and every image costs something.
    let calibration = run
        .log
        .lines()
        .find_map(|l| l.split("calibration=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .expect("calibration field");
    let (counted, expected) = calibration.split_once('/').expect("counted/expected");
    let (counted, expected): (f64, f64) = (counted.parse().unwrap(), expected.parse().unwrap());
    assert!(
        (counted / expected - 1.0).abs() < 0.01,
        "SysTick × 40 = {counted} instructions for a {expected}-instruction loop"
    );
    assert!(log.results.iter().all(|r| r.cost > 0));
    for key in ["flash", "static_ram", "stack_peak"] {
        assert!(log.summary_u64(key).is_some_and(|v| v > 0), "{key} missing");
    }
    // Fits the nRF52840 budget: RAM + stack ≤ 32 KB…
    let ram_total = log.summary_u64("ram_total").expect("ram_total");
    assert!(
        ram_total <= 32 * 1024,
        "static RAM + stack peak = {ram_total} bytes"
    );
    // …and flash < 420,000 bytes with the f32 model and the standard 64 images, which are
    // 20,814 bytes compressed. Another sample set (shifted images compress differently) gets
    // the same budget for everything but its images.
    const STANDARD_SAMPLES: u64 = 20_814;
    let flash = log.summary_u64("flash").expect("flash");
    let images = f.samples.len() as u64;
    assert!(
        flash - images < 420_000 - STANDARD_SAMPLES,
        "flash = {flash} bytes, of which {images} are the sample images"
    );
}

#[test]
fn firmware_in_qemu_is_bit_identical_to_the_host_local_reparam() {
    bit_identical_in("local-reparam");
}

#[test]
fn firmware_in_qemu_is_bit_identical_to_the_host_weights() {
    bit_identical_in("weights");
}

/// The device path works for a model of the best recipe (its options only change
/// the weights, and temperature scaling is folded into fc3).
#[test]
fn firmware_in_qemu_is_bit_identical_for_the_best_recipe() {
    bit_identical_with(
        fixture_of("qemu-best", best_recipe_model_and_samples()),
        "weights",
    );
}

/// The sample set that `trainer export-samples --shift rotate:60` writes: the first 32 MNIST
/// test images rotated by 60° (then the first 32 of Fashion-MNIST, as usual).
fn rotated_samples() -> Vec<u8> {
    use clap::Parser;
    let data = tests::data_dir();
    let out = scratch_dir("rotated-samples").join("samples.bin");
    let argv = [
        "trainer",
        "export-samples",
        "--shift",
        "rotate:60",
        "--data",
        data.to_str().expect("UTF-8 data path"),
        "--out",
        out.to_str().expect("UTF-8 scratch path"),
    ];
    let trainer::cli::Command::ExportSamples(args) = trainer::cli::Cli::try_parse_from(argv)
        .expect("flags")
        .into_command()
    else {
        unreachable!("an export-samples command")
    };
    trainer::commands::export_samples::run_export_samples(&args)
        .expect("trainer export-samples --shift");
    std::fs::read(out).expect("samples.bin")
}

/// Shifted images on the device: the rotated sample set runs bit-identically to the host
/// replay, and it really holds rotated digits (not the clean ones).
#[test]
fn firmware_in_qemu_is_bit_identical_on_rotated_images() {
    let (model, clean) = trained_model_and_samples().clone();
    let rotated = rotated_samples();
    let (a, b) = (
        SampleSet::from_bytes(&clean).expect("clean set"),
        SampleSet::from_bytes(&rotated).expect("rotated set"),
    );
    assert_eq!(a.len(), b.len());
    let (mut pa, mut pb) = ([0u8; IMAGE_LEN], [0u8; IMAGE_LEN]);
    let mut differing = 0;
    for i in 0..a.len() {
        let ra = a.get(i).expect("clean record").decode(&mut pa);
        let rb = b.get(i).expect("rotated record").decode(&mut pb);
        assert_eq!(
            (ra.dataset, ra.index, ra.label),
            (rb.dataset, rb.index, rb.label)
        );
        differing += usize::from(ra.pixels != rb.pixels);
    }
    assert_eq!(
        differing,
        IMAGES / 2,
        "only the 32 MNIST images are rotated"
    );
    bit_identical_with(fixture_of("qemu-rotated", &(model, rotated)), "weights");
}

/// An `int8` model made by `trainer export --precision int8` from the trained model, in each
/// mode: bit-identical, the file ≤ 92,000 bytes.
fn int8_bit_identical_in(mode: &str) {
    let made = exported_at("int8");
    assert!(made.0.len() <= 92_000, "int8 model: {} bytes", made.0.len());
    bit_identical_with_features(
        fixture_of(&format!("qemu-int8-{mode}"), &made),
        mode,
        &["quant"],
    );
}

#[test]
fn firmware_in_qemu_is_bit_identical_for_an_int8_model_local_reparam() {
    int8_bit_identical_in("local-reparam");
}

#[test]
fn firmware_in_qemu_is_bit_identical_for_an_int8_model_weights() {
    int8_bit_identical_in("weights");
}

#[test]
fn firmware_in_qemu_is_bit_identical_for_an_int8_model_mean() {
    int8_bit_identical_in("mean");
}

#[test]
fn firmware_in_qemu_is_bit_identical_for_an_f16_model_local_reparam() {
    bit_identical_with_features(
        fixture_of("qemu-f16-local-reparam", &exported_at("f16")),
        "local-reparam",
        &["quant"],
    );
}

#[test]
fn firmware_in_qemu_is_bit_identical_for_an_f16_model_weights() {
    bit_identical_with_features(
        fixture_of("qemu-f16-weights", &exported_at("f16")),
        "weights",
        &["quant"],
    );
}

/// Builds with a `provoke-*` feature and checks that the fault is logged through defmt and
/// ends QEMU with a failing exit code.
fn fault_is_reported(feature: &str, expected: &[&str]) {
    let f = fixture(feature);
    let run = build_and_run(&f, "local-reparam", &[feature]);
    assert!(!run.timed_out, "QEMU timed out; log so far:\n{}", run.log);
    assert_eq!(run.code, Some(1), "exit code; log:\n{}", run.log);
    for text in expected {
        assert!(
            run.log.contains(text),
            "{text:?} not in the log:\n{}",
            run.log
        );
    }
    assert!(
        !run.log.contains("RESULT "),
        "ran inference after the fault:\n{}",
        run.log
    );
}

#[test]
fn firmware_reports_a_stack_overflow() {
    fault_is_reported(
        "provoke-stack-overflow",
        &["STACK OVERFLOW", "HARDFAULT", "stack_overflow=true"],
    );
}

#[test]
fn firmware_reports_a_hardfault() {
    fault_is_reported(
        "provoke-hardfault",
        &["HARDFAULT", "bfar=0x30000000", "stack_overflow=false"],
    );
}

#[test]
fn firmware_reports_a_panic() {
    fault_is_reported("provoke-panic", &["PANIC at src/main.rs", "provoked"]);
}

#[test]
fn firmware_refuses_a_square_root_that_differs_from_libm() {
    // The hook flips the last bit of the hardware result for input 1,000: positive, exponent
    // field 125, mantissa 0, x = 0.25.
    fault_is_reported(
        "provoke-sqrt-mismatch",
        &[
            "ERROR SQRT vsqrt.f32 differs from libm::sqrtf on 1 of 4096 inputs",
            "first x=0x3e800000 vsqrt=0x3f000001 libm=0x3f000000",
        ],
    );
}
