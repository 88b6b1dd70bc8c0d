//! Crash safety of `trainer train`: a run killed with SIGKILL mid-epoch leaves no corrupt output,
//! `--resume` continues from its last checkpoint and ends with the bytes of an uninterrupted
//! run; bad checkpoints are refused with one line; a non-finite loss or gradient stops training
//! naming the step and the layer and keeps the last good checkpoint.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use trainer::train::checkpoint::{self, Checkpoint};

use common::{data_dir, text};

/// The run every test compares with: 3 epochs of 24 steps on 3,000 images.
const RUN: [(&str, &str); 3] = [
    ("--epochs", "3"),
    ("--limit", "3000"),
    ("--eval-samples", "2"),
];

/// The trainer on [`RUN`] into `out`; a flag of `extra` that [`RUN`] has replaces its value.
fn command(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    for (flag, value) in RUN {
        let v = match extra.iter().position(|&e| e == flag) {
            Some(i) => extra[i + 1],
            None => value,
        };
        c.args([flag, v]);
    }
    let mut rest = extra.iter();
    while let Some(&e) = rest.next() {
        if RUN.iter().any(|(f, _)| *f == e) {
            rest.next();
        } else {
            c.arg(e);
        }
    }
    c.arg("--quiet")
        .arg("--data")
        .arg(data_dir())
        .arg("--out")
        .arg(out);
    c
}

fn run(out: &Path, extra: &[&str]) -> Output {
    command(out, extra).output().expect("run the trainer")
}

/// The uninterrupted run, shared by the tests of this file.
fn reference() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let o = run(dir.path(), &[]);
        assert!(o.status.success(), "{}", text(&o));
        dir
    })
    .path()
}

/// metrics.json without the timings.
fn metrics_sans_timings(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let bytes = std::fs::read(dir.join("metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut m = v.as_object().expect("one object").clone();
    assert!(m.remove("train_seconds").is_some() && m.remove("eval_seconds").is_some());
    m
}

/// Every file in `dir` is a complete output that decodes, or a leftover temporary file of an
/// interrupted write (`.NAME.XXXXXX.tmp`, never read); returns the outputs present.
fn assert_nothing_corrupt(dir: &Path) -> Vec<String> {
    let outputs: Vec<&str> = std::iter::once("checkpoint.bin")
        .chain(common::OUTPUTS)
        .collect();
    let mut present = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let path = dir.join(&name);
        if name.starts_with('.') && name.ends_with(".tmp") {
            assert!(
                outputs.iter().any(|o| name.starts_with(&format!(".{o}."))),
                "unexpected temporary file {name}"
            );
            continue;
        }
        assert!(outputs.contains(&name.as_str()), "unexpected file {name}");
        let bytes = std::fs::read(&path).unwrap();
        match name.as_str() {
            "checkpoint.bin" => {
                Checkpoint::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "model.postcard" => {
                tinyvi::Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "samples.bin" => {
                tinyvi::samples::SampleSet::from_bytes(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "metrics.json" => {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "predictions.csv" => {
                let t = String::from_utf8(bytes).unwrap();
                assert_eq!(t.lines().count(), 20_001, "{name}");
                assert!(t.ends_with('\n'), "{name}");
            }
            _ => assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}"),
        }
        present.push(name);
    }
    present
}

/// Starts the run into `out`, waits until a checkpoint exists, lets it train `pause` more and
/// kills it with SIGKILL while it is still training; returns the checkpoint it left.
fn kill_after_first_checkpoint(out: &Path, extra: &[&str], pause: Duration) -> Checkpoint {
    let mut child = command(out, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the trainer");
    let ck = out.join(checkpoint::FILE);
    let start = Instant::now();
    while !ck.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the trainer ended ({status}) before writing a checkpoint");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(pause);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the trainer finished before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success());
    let present = assert_nothing_corrupt(out);
    assert_eq!(
        present,
        ["checkpoint.bin"],
        "only the checkpoint exists while training"
    );
    Checkpoint::from_bytes(&std::fs::read(&ck).unwrap()).unwrap()
}

fn assert_same_as_reference(dir: &Path) {
    let a = reference();
    for f in ["model.postcard", "predictions.csv", "samples.bin"] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(dir.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs from the uninterrupted run's");
    }
    assert_eq!(metrics_sans_timings(dir), metrics_sans_timings(a));
    assert_nothing_corrupt(dir);
}

#[test]
fn sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run() {
    reference();
    let b = tempfile::tempdir().unwrap();
    let c = kill_after_first_checkpoint(b.path(), &[], Duration::from_millis(100));
    // Killed in epoch 2 (or, on a very slow machine, 3): the checkpoint is an epoch boundary.
    assert!(
        c.state.step == 0 && (1..3).contains(&c.state.epoch),
        "{:?}",
        (c.state.epoch, c.state.step)
    );
    // What a kill during a write leaves behind; --resume removes it.
    let stale = b.path().join(".checkpoint.bin.Ab12Cd.tmp");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let o = run(b.path(), &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!stale.exists(), "the stale temporary file is still there");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("after epoch {}", c.state.epoch)),
        "{stdout}"
    );
    assert_same_as_reference(b.path());
}

#[test]
fn sigkill_after_a_mid_epoch_checkpoint_then_resume_matches() {
    reference();
    let b = tempfile::tempdir().unwrap();
    let every = ["--checkpoint-steps", "5"];
    let c = kill_after_first_checkpoint(b.path(), &every, Duration::from_millis(30));
    assert!(c.state.global_step >= 5 && c.state.global_step < 72);
    // Resuming with 1 thread and without --checkpoint-steps changes nothing.
    let o = run(b.path(), &["--resume", "--threads", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_same_as_reference(b.path());
}

#[test]
fn resume_refuses_a_missing_corrupt_or_different_checkpoint() {
    let a = reference();
    let dir = tempfile::tempdir().unwrap();
    let one_line_error = |o: &Output, want: &str| {
        assert!(!o.status.success(), "{}", text(o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{}", text(o));
        assert!(err.contains(want), "wanted {want:?}: {}", text(o));
    };
    one_line_error(
        &run(dir.path(), &["--resume"]),
        "--resume: no checkpoint at",
    );
    let good = std::fs::read(a.join(checkpoint::FILE)).unwrap();
    let ck = dir.path().join(checkpoint::FILE);
    for (bytes, want) in [
        (good[..good.len() / 2].to_vec(), "truncated checkpoint"),
        (
            {
                let mut b = good.clone();
                b[5000] ^= 1;
                b
            },
            "corrupt checkpoint: CRC-32",
        ),
        (b"not a checkpoint".to_vec(), "bad magic"),
    ] {
        std::fs::write(&ck, &bytes).unwrap();
        one_line_error(&run(dir.path(), &["--resume"]), want);
        assert_eq!(
            std::fs::read(&ck).unwrap(),
            bytes,
            "the checkpoint was touched"
        );
    }
    std::fs::write(&ck, &good).unwrap();
    for (flags, want) in [
        (
            &["--lr", "0.002"][..],
            "made with --lr 0.001 (this run has 0.002)",
        ),
        (&["--seed", "4"], "made with --seed 0 (this run has 4)"),
        (&["--batch-size", "100"], "made with --batch-size 128"),
        (&["--kl-weight", "0"], "made with --kl-weight 0.00002"),
        (&["--train-samples", "2"], "made with --train-samples 3"),
        (&["--epochs", "2"], "is after epoch 3, past --epochs 2"),
    ] {
        let mut args = vec!["--resume"];
        args.extend_from_slice(flags);
        one_line_error(&run(dir.path(), &args), want);
    }
    one_line_error(
        &run(dir.path(), &["--resume", "--limit", "2000"]),
        "made with --limit 3000 (this run has 2000)",
    );
    assert_eq!(std::fs::read(&ck).unwrap(), good);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a refused resume wrote files"
    );
}

#[test]
fn a_non_finite_gradient_names_step_and_layer_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Step 30 is in epoch 2 (24 steps per epoch); layer 3 is fc2.
    let o = run(dir.path(), &["--inject-nan", "30:3"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("diverged at step 30: non-finite ρ gradient in layer fc2")
            && err.contains("the last good checkpoint")
            && err.contains("after epoch 1) is kept"),
        "{}",
        text(&o)
    );
    assert_eq!(assert_nothing_corrupt(dir.path()), ["checkpoint.bin"]);
    let c =
        Checkpoint::from_bytes(&std::fs::read(dir.path().join(checkpoint::FILE)).unwrap()).unwrap();
    assert_eq!(
        (c.state.epoch, c.state.step, c.state.global_step),
        (1, 0, 24)
    );
    assert!(c.model.mu.iter().chain(&c.model.rho).all(|v| v.is_finite()));
    // That checkpoint is good: resuming from it gives the uninterrupted run's bytes.
    let o = run(dir.path(), &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_same_as_reference(dir.path());
}

#[test]
fn a_huge_learning_rate_diverges_with_a_one_line_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["--lr", "1e30"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{}", text(&o));
    // Step 0 moves every parameter by ~1e30; step 1's forward pass overflows.
    assert!(
        err.contains("diverged at step 1: non-finite loss in layer "),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
