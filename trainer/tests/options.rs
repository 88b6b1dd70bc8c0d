//! The training options of `trainer train` (local reparameterisation, closed-form KL, KL
//! reduction and annealing, learning-rate schedules) through the command line: parsing, one-line
//! errors, `--help`, determinism across thread counts, and resume after a failure.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use clap::{CommandFactory, Parser};
use trainer::cli::recipe::resolve;
use trainer::cli::{one_line_error, Cli, Command as Sub};
use trainer::train::{KlMode, KlReduction, LrSchedule, TrainConfig};

use common::{data_dir, text};

/// The settings of a `train` command line (explicit flags over the recipe's).
fn parse(args: &[&str]) -> Result<TrainConfig, String> {
    let cli = Cli::try_parse_from(std::iter::once("trainer").chain(args.iter().copied()))
        .map_err(|e| one_line_error(&e))?;
    match cli.into_command() {
        Sub::Train(t) => Ok(resolve(&t)),
        other => panic!("expected train, got {other:?}"),
    }
}

#[test]
fn options_are_off_by_default() {
    let t = parse(&[]).unwrap();
    assert!(!t.local_reparam);
    assert_eq!(t.kl, KlMode::Mc);
    assert_eq!(t.kl_reduction, KlReduction::LayerMean);
    assert_eq!(t.kl_anneal_epochs, 0);
    assert_eq!(t.lr_schedule, LrSchedule::Constant);
}

#[test]
fn options_parse() {
    let t = parse(&[
        "train",
        "--local-reparam",
        "--kl-reduction",
        "sum",
        "--kl-weight",
        "1/60000",
        "--kl-anneal-epochs",
        "3",
        "--lr-schedule",
        "one-cycle",
        "--train-samples",
        "1",
    ])
    .unwrap();
    assert!(t.local_reparam);
    assert_eq!(t.kl, KlMode::Closed);
    assert_eq!(t.kl_reduction, KlReduction::Sum);
    assert_eq!(t.kl_weight, (1.0f64 / 60000.0) as f32);
    assert_eq!(t.kl_anneal_epochs, 3);
    assert_eq!(t.lr_schedule, LrSchedule::OneCycle);
    assert_eq!(t.train_samples, 1);
    assert_eq!(parse(&["--kl", "closed"]).unwrap().kl, KlMode::Closed);
    assert_eq!(
        parse(&["--lr-schedule", "cosine"]).unwrap().lr_schedule,
        LrSchedule::Cosine
    );
}

#[test]
fn bad_option_values_are_one_line_errors() {
    for (args, needle) in [
        (&["--kl", "exact"][..], "invalid value 'exact'"),
        (&["--kl-reduction", "max"], "invalid value 'max'"),
        (&["--lr-schedule", "step"], "invalid value 'step'"),
        (&["--kl-anneal-epochs", "-1"], "--kl-anneal-epochs"),
        (&["--kl-anneal-epochs", "x"], "--kl-anneal-epochs"),
        (&["--kl-weight", "1/0"], "division by zero"),
        (&["--kl-weight", "-1/2"], "must not be negative"),
        (&["train", "--local-reparam", "yes"], "invalid value 'yes'"),
    ] {
        let e = parse(args).map(|t| format!("accepted {t:?}")).unwrap_err();
        assert!(
            e.starts_with("error:") && e.contains(needle),
            "{args:?}: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn every_option_is_in_help() {
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("train")
        .unwrap()
        .render_long_help()
        .to_string();
    for flag in [
        "--local-reparam",
        "--kl <KL>",
        "--kl-reduction",
        "--kl-anneal-epochs",
        "--lr-schedule",
        "one-cycle",
        "layer-mean",
        "1/60000",
        "lr/1e4",
    ] {
        assert!(help.contains(flag), "{flag} not in train --help:\n{help}");
    }
}

fn run(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--limit", "1000", "--eval-samples", "2", "--quiet"])
        .args(args)
        .arg("--data")
        .arg(data_dir())
        .arg("--out")
        .arg(out)
        .output()
        .expect("run the trainer")
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const LR_RUN: [&str; 10] = [
    "--local-reparam",
    "--train-samples",
    "1",
    "--epochs",
    "2",
    "--lr-schedule",
    "one-cycle",
    "--kl-reduction",
    "sum",
    "--kl-anneal-epochs=1",
];

#[test]
fn local_reparam_run_is_the_same_for_one_or_two_threads() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let oa = run(a.path(), &[&LR_RUN[..], &["--threads", "1"]].concat());
    assert!(oa.status.success(), "{}", text(&oa));
    let ob = run(b.path(), &[&LR_RUN[..], &["--threads", "2"]].concat());
    assert!(ob.status.success(), "{}", text(&ob));
    for f in ["model.postcard", "predictions.csv", "checkpoint.bin"] {
        assert!(read(a.path(), f) == read(b.path(), f), "{f} differs");
    }
    let m = read(a.path(), "model.postcard");
    assert!(tinyvi::arch::is_lenet(
        &tinyvi::Model::from_bytes(&m).unwrap()
    ));
    // And it is another model than the default recipe's.
    let c = tempfile::tempdir().unwrap();
    let oc = run(c.path(), &["--epochs", "2", "--threads", "2"]);
    assert!(oc.status.success(), "{}", text(&oc));
    assert!(read(c.path(), "model.postcard") != m);
}

/// A run with a schedule stopped by a bad gradient mid-run resumes from its last checkpoint and
/// ends with the bytes of the uninterrupted run; resuming with other settings is refused.
#[test]
fn resume_with_a_schedule_is_byte_identical() {
    let full = tempfile::tempdir().unwrap();
    let o = run(full.path(), &LR_RUN);
    assert!(o.status.success(), "{}", text(&o));
    let cut = tempfile::tempdir().unwrap();
    // 8 steps per epoch: step 12 fails, the checkpoint after epoch 1 (step 8) is kept.
    let o = run(
        cut.path(),
        &[&LR_RUN[..], &["--inject-nan", "12:2"]].concat(),
    );
    assert!(!o.status.success(), "{}", text(&o));
    for (extra, needle) in [
        (&["--epochs", "3"][..], "--epochs 2"),
        (&["--lr-schedule", "cosine"], "--lr-schedule one-cycle"),
        (&["--kl-reduction", "layer-mean"], "--kl-reduction sum"),
        (&["--kl-anneal-epochs", "2"], "--kl-anneal-epochs 1"),
        (&["--kl", "mc"], "--kl closed"),
    ] {
        let mut args = LR_RUN.to_vec();
        if let Some(i) = args.iter().position(|a| *a == extra[0]) {
            args[i + 1] = extra[1];
        } else if extra[0] == "--kl-anneal-epochs" {
            args.retain(|a| !a.starts_with("--kl-anneal-epochs"));
            args.extend(extra);
        } else {
            args.extend(extra);
        }
        args.push("--resume");
        let o = run(cut.path(), &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{extra:?}: {}",
            text(&o)
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let o = run(cut.path(), &[&LR_RUN[..], &["--resume"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    for f in ["model.postcard", "predictions.csv", "checkpoint.bin"] {
        assert!(
            read(full.path(), f) == read(cut.path(), f),
            "{f} differs after resuming"
        );
    }
}

#[test]
fn local_reparam_with_the_monte_carlo_kl_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let o = run(out.path(), &["--local-reparam", "--kl", "mc"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(err.contains("--kl closed"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
