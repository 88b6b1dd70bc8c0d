//! One seed, one model, on every x86-64 CPU with AVX2 and FMA: a short training run on each
//! kernel path this CPU has (forced with `TINYVI_KERNELS`) writes the same `model.postcard`,
//! and that file is the one this test pins, so a machine with only AVX2 checks its bits
//! against those of a machine with AVX-512. The portable path (no FMA) may differ and is only
//! run. A path the CPU lacks is reported as not run on stderr.

mod common;

use std::process::Command;

use trainer::data::idx::sha256_hex;
use trainer::nn::kernels::KernelPath;

use common::{data_dir, text};

/// SHA-256 of `model.postcard` after `trainer train --limit 1024 --seed 3` on either FMA path.
/// It changes only when the training arithmetic does (then say why in the commit).
const FMA_PATHS_MODEL_SHA256: &str =
    "852f277da3b2799897759bd86b101598db4a010e2fcaec0a77ff13bce0c4d01c";

fn train_on(path: KernelPath, out: &std::path::Path) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("TINYVI_KERNELS", path.name())
        .args([
            "train",
            "--limit",
            "1024",
            "--seed",
            "3",
            "--eval-samples",
            "2",
        ])
        .args(["--quiet", "--threads", "2", "--data"])
        .arg(data_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read(out.join("model.postcard")).unwrap()
}

#[test]
fn every_fma_path_writes_the_pinned_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut fma_runs = 0;
    for path in KernelPath::ALL {
        if !path.available() {
            eprintln!(
                "kernel path {}: not run (this CPU lacks {})",
                path.name(),
                path.needs()
            );
            continue;
        }
        let model = train_on(path, &dir.path().join(path.name()));
        tinyvi::Model::from_bytes(&model).expect("the model decodes");
        if path == KernelPath::Portable {
            eprintln!("kernel path portable: ran (its bits may differ, not compared)");
            continue;
        }
        assert_eq!(
            sha256_hex(&model),
            FMA_PATHS_MODEL_SHA256,
            "kernel path {} trained a different model",
            path.name()
        );
        eprintln!("kernel path {}: the pinned model", path.name());
        fma_runs += 1;
    }
    assert!(
        fma_runs > 0,
        "this CPU has neither AVX2+FMA nor AVX-512: no path to compare"
    );
}

#[test]
fn a_bad_kernel_path_is_a_one_line_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("TINYVI_KERNELS", "sse9")
        .args(["bench", "--help"])
        .output()
        .unwrap();
    // --help is answered before anything runs.
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("TINYVI_KERNELS", "sse9")
        .args(["eval", "--model", "none.postcard"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: TINYVI_KERNELS=\"sse9\" is not a kernel path (expected avx512, avx2 or portable)\n"
    );
}
