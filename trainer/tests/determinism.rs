//! Determinism of `trainer train`: the same seed gives byte-identical model.postcard and
//! metrics.json (timings aside), and the same predictions.csv, across runs and across
//! `--threads 1` and `--threads 2`; another seed gives another model.

mod common;

use std::path::Path;
use std::process::Command;

use common::{data_dir, text};

/// A quick run (2,000 images, 2 epochs, 2 evaluation samples) into a fresh directory.
fn train(seed: u64, threads: usize) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--limit", "2000", "--epochs", "2", "--eval-samples", "2"])
        .args([
            "--seed",
            &seed.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .arg("--quiet")
        .arg("--data")
        .arg(data_dir())
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run the trainer");
    assert!(o.status.success(), "{}", text(&o));
    out
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// metrics.json without `train_seconds` and `eval_seconds`, as text (key order kept).
fn metrics_sans_timings(dir: &Path) -> String {
    let text = String::from_utf8(read(dir, "metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object().expect("one object");
    assert!(o.contains_key("train_seconds") && o.contains_key("eval_seconds"));
    text.lines()
        .filter(|l| !l.contains("\"train_seconds\"") && !l.contains("\"eval_seconds\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_same(a: &Path, b: &Path, what: &str) {
    for f in ["model.postcard", "predictions.csv", "samples.bin"] {
        assert!(read(a, f) == read(b, f), "{f} differs {what}");
    }
    assert_eq!(
        metrics_sans_timings(a),
        metrics_sans_timings(b),
        "metrics.json differs {what}"
    );
}

#[test]
fn same_seed_same_bytes_across_runs_and_thread_counts() {
    let one = train(0, 1);
    let two = train(0, 2);
    let two_again = train(0, 2);
    assert_same(two.path(), two_again.path(), "between two runs");
    assert_same(
        one.path(),
        two.path(),
        "between --threads 1 and --threads 2",
    );
    let m = read(one.path(), "model.postcard");
    let model = tinyvi::Model::from_bytes(&m).expect("the model decodes");
    assert!(tinyvi::arch::is_lenet(&model));
    // The checkpoints agree too.
    assert!(read(one.path(), "checkpoint.bin") == read(two.path(), "checkpoint.bin"));
}

#[test]
fn another_seed_gives_another_model() {
    let a = train(0, 2);
    let b = train(1, 2);
    let (ma, mb) = (
        read(a.path(), "model.postcard"),
        read(b.path(), "model.postcard"),
    );
    assert_eq!(ma.len(), mb.len());
    let differing = ma.iter().zip(&mb).filter(|(x, y)| x != y).count();
    assert!(
        differing > ma.len() / 2,
        "only {differing} of {} bytes differ between seeds 0 and 1",
        ma.len()
    );
    assert_ne!(
        metrics_sans_timings(a.path()),
        metrics_sans_timings(b.path())
    );
}
