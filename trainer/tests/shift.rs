//! `trainer shift` end to end on the real data at toy size: every output file is written, and
//! every per-condition metric of shift.csv equals an independent recomputation from
//! predictions_shift.csv (to 1e-3); shift.json holds the same rows.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::{data_dir, text};
use tinyvi::arch::IMAGE_LEN;

const LIMIT: usize = 300;

/// A model trained for 30 steps on real MNIST, exported into `dir`.
fn model(dir: &Path) -> std::path::PathBuf {
    let (train, _) = trainer::data::mnist::load_mnist(&data_dir()).expect("MNIST");
    let n = 30 * 128;
    let mut m = trainer::model::Lenet::init(5);
    let cfg = trainer::train::TrainConfig {
        seed: 5,
        ..Default::default()
    };
    trainer::train::train(
        &mut m,
        &train.images[..n * IMAGE_LEN],
        &train.labels[..n],
        &cfg,
        &mut |_| {},
    )
    .expect("training");
    let path = dir.join("model.postcard");
    std::fs::write(
        &path,
        trainer::model::export::try_export(&m, None).expect("export"),
    )
    .unwrap();
    path
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("run the trainer binary");
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// One image of predictions_shift.csv.
struct Image {
    label: usize,
    p: [f64; 10],
    mi: f64,
}

fn entropy(p: &[f64; 10]) -> f64 {
    p.iter().filter(|&&v| v > 0.0).map(|&v| -v * v.ln()).sum()
}

fn argmax(p: &[f64; 10]) -> usize {
    (1..10).fold(0, |b, c| if p[c] > p[b] { c } else { b })
}

/// Mann–Whitney AUROC of `pos` scoring above `neg`, ties counted ½ (plain double loop).
fn auroc(pos: &[f64], neg: &[f64]) -> f64 {
    let mut s = 0.0;
    for &a in pos {
        for &b in neg {
            s += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (pos.len() * neg.len()) as f64
}

/// 15 equal-width bins of the confidence, a confidence of 1 in a bin of its own.
fn ece(imgs: &[Image]) -> f64 {
    let mut bins = vec![(0usize, 0.0f64, 0.0f64); 16];
    for im in imgs {
        let c = im.p[argmax(&im.p)];
        let k = ((c * 15.0).floor() as usize).min(15);
        bins[k].0 += 1;
        bins[k].1 += c;
        bins[k].2 += f64::from(u8::from(argmax(&im.p) == im.label));
    }
    bins.iter()
        .filter(|b| b.0 > 0)
        .map(|b| (b.2 - b.1).abs() / imgs.len() as f64)
        .sum()
}

fn close(what: &str, got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("{what}: missing"));
    assert!(
        (got - want).abs() <= 1e-3,
        "{what}: {got} vs recomputed {want}"
    );
}

#[test]
fn shift_writes_every_file_and_its_metrics_recompute_from_the_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let out = dir.path().join("shift");
    let data = data_dir();
    let limit = LIMIT.to_string();
    run(&[
        "shift",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit",
        &limit,
        "--samples",
        "4",
        "--quiet",
    ]);
    for f in [
        "shift.json",
        "shift.csv",
        "predictions_shift.csv",
        "shift_rotation.png",
        "shift_translation.png",
        "shift_corruptions.png",
    ] {
        let bytes = std::fs::read(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(bytes.len() > 1000, "{f} is {} bytes", bytes.len());
    }

    // predictions_shift.csv: dataset = CONDITION/PREDICTOR, then index, label, p0..p9, entropy, mi.
    let text = std::fs::read_to_string(out.join("predictions_shift.csv")).unwrap();
    let mut groups: HashMap<String, Vec<Image>> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 15, "{line}");
        let num = |s: &str| s.parse::<f64>().unwrap();
        let p: [f64; 10] = std::array::from_fn(|c| num(f[3 + c]));
        assert!((num(f[13]) - entropy(&p)).abs() < 1e-5, "{line}");
        groups.entry(f[0].to_string()).or_default().push(Image {
            label: f[2].parse().unwrap(),
            p,
            mi: num(f[14]),
        });
    }

    // shift.csv: one row per condition and predictor, every metric recomputed.
    let table = std::fs::read_to_string(out.join("shift.csv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 2 * 40, "40 conditions × 2 predictors");
    assert_eq!(groups.len(), rows.len());
    let mut checked_auroc = 0;
    for r in &rows {
        let get = |name: &str| -> Option<f64> {
            let v = &r[col(name)];
            (!v.is_empty()).then(|| v.parse().unwrap())
        };
        let (condition, predictor) = (&r[col("condition")], &r[col("predictor")]);
        let key = format!("{condition}/{predictor}");
        let imgs = &groups[&key];
        assert_eq!(imgs.len(), LIMIT, "{key}");
        assert_eq!(get("images"), Some(LIMIT as f64));
        let n = imgs.len() as f64;
        let no_digit = ["ood:uniform", "ood:gaussian", "ood:permuted", "ood:fashion"]
            .contains(&condition.as_str());
        if no_digit {
            for m in ["acc", "nll", "brier", "ece"] {
                assert_eq!(get(m), None, "{key} {m}");
            }
        } else {
            let acc = imgs.iter().filter(|i| argmax(&i.p) == i.label).count() as f64 / n;
            let nll = imgs
                .iter()
                .map(|i| -i.p[i.label].max(1e-12).ln())
                .sum::<f64>()
                / n;
            let brier = imgs
                .iter()
                .map(|i| {
                    (0..10)
                        .map(|c| (i.p[c] - f64::from(u8::from(c == i.label))).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / n;
            close(&format!("{key} acc"), get("acc"), acc);
            close(&format!("{key} nll"), get("nll"), nll);
            close(&format!("{key} brier"), get("brier"), brier);
            close(&format!("{key} ece"), get("ece"), ece(imgs));
        }
        let h = imgs.iter().map(|i| entropy(&i.p)).sum::<f64>() / n;
        let mi = imgs.iter().map(|i| i.mi).sum::<f64>() / n;
        close(
            &format!("{key} entropy"),
            Some(r[col("entropy")].parse().unwrap()),
            h,
        );
        close(
            &format!("{key} mi"),
            Some(r[col("mi")].parse().unwrap()),
            mi,
        );
        if predictor == "mean" {
            assert!(mi.abs() < 1e-6, "{key}: the mean network has no MI");
        }
        if condition == "clean" {
            assert_eq!(get("auroc_entropy"), None);
            continue;
        }
        let clean = &groups[&format!("clean/{predictor}")];
        let scores =
            |set: &[Image], f: &dyn Fn(&Image) -> f64| -> Vec<f64> { set.iter().map(f).collect() };
        let msp = |i: &Image| -i.p[argmax(&i.p)];
        let ent = |i: &Image| entropy(&i.p);
        let info = |i: &Image| i.mi;
        close(
            &format!("{key} auroc_msp"),
            get("auroc_msp"),
            auroc(&scores(imgs, &msp), &scores(clean, &msp)),
        );
        close(
            &format!("{key} auroc_entropy"),
            get("auroc_entropy"),
            auroc(&scores(imgs, &ent), &scores(clean, &ent)),
        );
        if predictor == "mc" {
            close(
                &format!("{key} auroc_mi"),
                get("auroc_mi"),
                auroc(&scores(imgs, &info), &scores(clean, &info)),
            );
        }
        checked_auroc += 1;
    }
    assert_eq!(checked_auroc, 2 * 39);

    // shift.json holds the same rows.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("shift.json")).unwrap()).unwrap();
    let jrows = json["rows"].as_array().unwrap();
    assert_eq!(jrows.len(), rows.len());
    for (j, r) in jrows.iter().zip(&rows) {
        assert_eq!(j["condition"].as_str().unwrap(), r[col("condition")]);
        // (serde_json parses floats to within an ulp, not always exactly.)
        let a = j["entropy"].as_f64().unwrap();
        let b = r[col("entropy")].parse::<f64>().unwrap();
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert_eq!(json["samples"], 4);
    // Shifts hurt: the clean accuracy beats that of a 90° rotation and of the stripe corruption.
    let acc = |c: &str| {
        rows.iter()
            .find(|r| r[col("condition")] == c && r[col("predictor")] == "mc")
            .map(|r| r[col("acc")].parse::<f64>().unwrap())
            .unwrap()
    };
    assert!(acc("clean") > acc("rotate:90") + 0.3);
    assert!(acc("clean") > acc("mnistc:stripe:1") + 0.3);
}

#[test]
fn local_reparam_mode_runs_through_the_core_and_only_picks_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let out = dir.path().join("lr");
    let data = data_dir();
    run(&[
        "shift",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit",
        "40",
        "--samples",
        "3",
        "--mode",
        "local-reparam",
        "--only",
        "rotate:60,mnistc:fog:2",
        "--quiet",
    ]);
    let table = std::fs::read_to_string(out.join("shift.csv")).unwrap();
    let conditions: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        conditions,
        [
            "clean",
            "clean",
            "rotate:60",
            "rotate:60",
            "mnistc:fog:2",
            "mnistc:fog:2"
        ]
    );
    // A rotation and a corruption: those figures; no translation: no translation figure.
    assert!(out.join("shift_rotation.png").exists());
    assert!(out.join("shift_corruptions.png").exists());
    assert!(!out.join("shift_translation.png").exists());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("shift.json")).unwrap()).unwrap();
    assert_eq!(json["mode"], "local-reparam");
    // The Monte Carlo rows have mutual information, the mean network's none.
    let mi: Vec<f64> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mi"].as_f64().unwrap())
        .collect();
    // (The mean network's is f32 rounding: H[p] in f64 minus the same entropy in f32.)
    assert!(mi[0] > 1e-5 && mi[1] < 1e-6, "{mi:?}");
}

#[test]
fn export_samples_with_a_shift_writes_the_shifted_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir();
    let path = dir.path().join("samples.bin");
    run(&[
        "export-samples",
        "--shift",
        "translate:4",
        "--count",
        "5",
        "--data",
        data.to_str().unwrap(),
        "--out",
        path.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&path).unwrap();
    let set = tinyvi::samples::SampleSet::from_bytes(&bytes).unwrap();
    let (_, test) = trainer::data::mnist::load_mnist(&data).unwrap();
    let mut px = [0u8; IMAGE_LEN];
    for i in 0..5 {
        let s = set.get(i).unwrap().decode(&mut px);
        assert_eq!((s.index, s.label), (i as u32, test.label(i)));
        let clean = test.image(i);
        for r in 0..28 {
            for c in 0..28 {
                let want = if c >= 4 { clean[r * 28 + c - 4] } else { 0 };
                assert_eq!(s.pixels[r * 28 + c], want);
            }
        }
    }
    // A bad condition is refused with a one-line error.
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["export-samples", "--shift", "mnistc:fog:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("severities 1..=5"));
}
