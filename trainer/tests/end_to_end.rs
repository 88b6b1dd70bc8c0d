//! The `trainer` binary end to end on the real data, at toy size: train → files → an
//! independent check of the metrics → `eval` through the no_std core → `export-samples`.
//! Bad flags and unwritable outputs get a one-line error and a failing exit code.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{data_dir, text};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("run the trainer binary")
}

fn metrics(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v.as_object().expect("metrics.json is one object").clone()
}

/// Python with numpy and scikit-learn, for the independent metrics check.
fn python_with_sklearn() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import numpy, sklearn"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the independent metrics check needs python3 with numpy and scikit-learn: \
         pip install numpy scikit-learn (.ci/run installs them)"
    );
    "python3"
}

#[test]
fn train_writes_every_file_and_the_metrics_check_out() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let data = data_dir();
    let run = trainer(&[
        "--limit",
        "6400",
        "--eval-samples",
        "4",
        "--seed",
        "3",
        "--data",
        data.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("trained 50 steps in"), "{}", text(&run));
    assert!(stdout.contains("evaluated 20000 test images × 4 Monte Carlo samples"));
    assert!(stdout.contains("Test metric"), "metrics table missing");
    for f in common::OUTPUTS {
        let len = std::fs::metadata(out.path().join(f)).map(|m| m.len());
        assert!(matches!(len, Ok(n) if n > 0), "{f}: {len:?}");
    }

    let m = metrics(&out.path().join("metrics.json"));
    for key in [
        "acc",
        "nll",
        "brier",
        "ece",
        "aece",
        "entropy",
        "mi",
        "ood_auroc",
        "ood_aupr",
        "ood_fpr95",
        "ood_auroc_entropy",
        "ood_auroc_mi",
        "epochs",
        "seed",
        "eval_samples",
        "train_seconds",
        "eval_seconds",
    ] {
        assert!(m.contains_key(key), "metrics.json lacks {key}");
    }
    assert_eq!(m["seed"], 3);
    assert_eq!(m["eval_samples"], 4);
    // 50 steps already learn much: far above chance (seed 3 reaches 0.74).
    let acc = m["acc"].as_f64().unwrap();
    assert!(acc > 0.6, "accuracy {acc} after 50 steps");

    let csv = std::fs::read_to_string(out.path().join("predictions.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("dataset,index,label,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9"));
    assert_eq!(lines.count(), 20_000);

    // An independent implementation of docs/design.md (Metrics) (numpy + scikit-learn) agrees to 1e-3.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_metrics.py");
    let check = Command::new(python_with_sklearn())
        .arg(script)
        .arg(out.path().join("predictions.csv"))
        .arg(out.path().join("metrics.json"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));

    // The exported model, evaluated through the no_std core, gives the same picture.
    let eval_out = out.path().join("eval");
    let model = out.path().join("model.postcard");
    let run = trainer(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--samples",
        "4",
        "--mode",
        "weights",
        "--data",
        data.to_str().unwrap(),
        "--out",
        eval_out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let e = metrics(&eval_out.join("metrics.json"));
    let core_acc = e["acc"].as_f64().unwrap();
    // Different Monte Carlo draws of the same posterior: close, not equal.
    assert!(
        (core_acc - acc).abs() < 0.02,
        "trainer acc {acc}, core acc {core_acc}"
    );
}

fn layer_values(model: &[u8]) -> Vec<[Vec<f32>; 4]> {
    let m = tinyvi::format::Model::from_bytes(model).expect("the export decodes");
    m.layers()
        .iter()
        .map(|l| {
            let get = |t: &tinyvi::format::Tensor<'_>| t.iter().collect::<Vec<f32>>();
            [
                get(&l.weight_mean),
                get(&l.weight_var),
                get(&l.bias_mean),
                get(&l.bias_var),
            ]
        })
        .collect()
}

#[test]
fn temperature_scaling_is_fitted_on_held_out_images_and_folded_into_fc3() {
    let out = tempfile::tempdir().unwrap();
    let data = data_dir();
    let run = |dir: &str, extra: &[&str]| -> Output {
        let d = out.path().join(dir);
        let mut args = vec![
            "--limit",
            "3200",
            "--holdout",
            "2000",
            "--eval-samples",
            "4",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--out",
            d.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let r = trainer(&args);
        assert!(r.status.success(), "{}", text(&r));
        r
    };
    run("plain", &[]);
    let scaled = run("scaled", &["--temperature-scaling"]);
    let stdout = String::from_utf8_lossy(&scaled.stdout);
    assert!(
        stdout.contains("temperature scaling: T = ") && stdout.contains("on 2000 held-out images"),
        "{stdout}"
    );
    assert!(
        stdout.contains("of 2000 held-out training images"),
        "{stdout}"
    );
    let m = metrics(&out.path().join("scaled/metrics.json"));
    let t = m["temperature"].as_f64().expect("temperature is a number");
    assert!(t > 0.05 && t < 20.0 && (t - 1.0).abs() > 1e-3, "T = {t}");
    assert_eq!(m["train_images"], 3200);
    assert!(metrics(&out.path().join("plain/metrics.json"))["temperature"].is_null());

    // Same seed, same training: only fc3 differs, its means divided by T and variances by T².
    let a = layer_values(&std::fs::read(out.path().join("plain/model.postcard")).unwrap());
    let b = layer_values(&std::fs::read(out.path().join("scaled/model.postcard")).unwrap());
    assert_eq!(a[..4], b[..4], "layers before fc3 changed");
    for (k, (x, y)) in a[4].iter().zip(&b[4]).enumerate() {
        let scale = if k % 2 == 0 { t } else { t * t };
        for (&x, &y) in x.iter().zip(y) {
            let want = f64::from(x) / scale;
            assert!(
                (f64::from(y) - want).abs() <= 1e-5 * want.abs() + 1e-12,
                "fc3 tensor {k}: {y} vs {want}"
            );
        }
    }
}

#[test]
fn export_samples_writes_a_valid_sample_set() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("s.bin");
    let run = trainer(&[
        "export-samples",
        "--count",
        "5",
        "--data",
        data_dir().to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let bytes = std::fs::read(&file).unwrap();
    let set = tinyvi::samples::SampleSet::from_bytes(&bytes).unwrap();
    assert_eq!(set.len(), 10);
    let first = set.get(0).unwrap();
    assert_eq!(
        (first.index, first.label),
        (0, 7),
        "MNIST test image 0 is a 7"
    );
    let sixth = set.get(5).unwrap();
    assert_eq!(sixth.dataset, tinyvi::samples::Dataset::Fashion);
    assert_eq!(
        (sixth.index, sixth.label),
        (0, 9),
        "Fashion test image 0 is an ankle boot"
    );
}

#[test]
fn bad_flags_and_outputs_get_one_line_errors() {
    for args in [
        &["--epochs", "0"][..],
        &["--batch-size", "-1"],
        &["--lr", "nan"],
        &["--eval-samples", "0"],
        &["--nonsense"],
    ] {
        let run = trainer(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", text(&run));
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }

    // --out is a file, so it cannot be a directory: refused before any training.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"keep me").unwrap();
    let run = trainer(&["--limit", "128", "--out", file.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("not-a-dir"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // A model file that is not one.
    let bad = tmp.path().join("bad.postcard");
    std::fs::write(&bad, b"TNVI garbage").unwrap();
    let run = trainer(&["eval", "--model", bad.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.postcard"), "{err}");

    // Temperature scaling without held-out images, and a hold-out that leaves nothing.
    let data = data_dir();
    for (args, needle) in [
        (&["--temperature-scaling"][..], "--holdout"),
        (&["--holdout", "60000"], "no training image"),
    ] {
        let mut all = vec![
            "--data",
            data.to_str().unwrap(),
            "--out",
            tmp.path().to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let run = trainer(&all);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {}", text(&run));
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    }
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    // `trainer … | head -1`: the reader goes away after the first line.
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--limit", "256", "--eval-samples", "1", "--quiet", "--data"])
        .arg(data_dir())
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the trainer binary");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("training the Bayesian LeNet"), "{first}");
    // The pipe is closed here (the reader was dropped).
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(done.status.success(), "{:?}: {err}", done.status);
    assert!(out.path().join("model.postcard").exists());
}

/// A full disk: `--out` on a 200 KiB tmpfs (mounted in a private mount namespace with
/// `unshare -rm`, so nothing outside the test sees it). The run fails with one line naming the
/// file and the error, leaves no temporary file, and the file already there is untouched.
#[test]
fn full_out_disk_gets_a_one_line_error_and_overwrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("full");
    std::fs::create_dir(&out).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=200k tmpfs '{out}' || exit 99
         echo keep > '{out}/metrics.json'
         '{bin}' --limit 256 --eval-samples 1 --quiet --data '{data}' --out '{out}' >/dev/null
         rc=$?
         ls -A '{out}'
         cat '{out}/metrics.json'
         exit $rc",
        out = out.display(),
        bin = env!("CARGO_BIN_EXE_trainer"),
        data = data_dir().display(),
    );
    let run = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .expect("`unshare` (util-linux) runs the trainer on a tiny tmpfs");
    assert_ne!(
        run.status.code(),
        Some(99),
        "cannot mount a tmpfs in a user + mount namespace (`unshare -rm`): {}",
        text(&run)
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let listing = String::from_utf8_lossy(&run.stdout);
    assert_eq!(listing, "metrics.json\nkeep\n", "{}", text(&run));
}
