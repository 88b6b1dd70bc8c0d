//! `trainer ablation`: the README's ablation table. Each training option of `train` alone on
//! top of the seed recipe, the `best` preset, and the preset with one of its choices undone,
//! over several seeds; every run is an ordinary
//! `trainer train` whose files stay in `--out/<row>/seed-<S>/`, and the table (mean ± sample
//! standard deviation over the seeds) goes to stdout and `--out/ablation.md`.

use std::fmt::Write as _;
use std::path::Path;

use clap::Parser;

use crate::cli::{AblationArgs, Cli, Command};
use crate::commands::files;
use crate::commands::train as pipeline;
use crate::error::{Result, TrainerError};
use crate::eval::metrics::Metrics;
use crate::report;

/// One configuration of the table.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// Short name (also the directory of its runs).
    pub name: &'static str,
    /// Flags added to `trainer train`.
    pub flags: &'static [&'static str],
}

/// The rows, in table order: the seed recipe, each option alone, the preset, and the preset
/// with one choice undone.
pub const ROWS: &[Row] = &[
    Row {
        name: "seed",
        flags: &[],
    },
    Row {
        name: "closed-kl",
        flags: &["--kl", "closed"],
    },
    Row {
        name: "local-reparam",
        flags: &["--local-reparam", "--kl", "closed"],
    },
    Row {
        name: "kl-per-example",
        flags: &["--kl-reduction", "sum", "--kl-weight", "1/60000"],
    },
    Row {
        name: "kl-anneal",
        flags: &["--kl-anneal-epochs", "1"],
    },
    Row {
        name: "cosine",
        flags: &["--lr-schedule", "cosine"],
    },
    Row {
        name: "one-cycle",
        flags: &["--lr-schedule", "one-cycle"],
    },
    Row {
        name: "crop-pad-2",
        flags: &["--crop-pad", "2"],
    },
    Row {
        name: "epochs-20",
        flags: &["--epochs", "20"],
    },
    Row {
        name: "temperature",
        flags: &["--holdout", "5000", "--temperature-scaling"],
    },
    Row {
        name: "best",
        flags: &["--recipe", "best"],
    },
    Row {
        name: "best-constant-lr",
        flags: &[
            "--recipe",
            "best",
            "--lr-schedule",
            "constant",
            "--lr",
            "1e-3",
        ],
    },
    Row {
        name: "best-crop-pad-4",
        flags: &["--recipe", "best", "--crop-pad", "4"],
    },
    Row {
        name: "best-closed-kl",
        flags: &["--recipe", "best", "--kl", "closed"],
    },
    Row {
        name: "best-local-reparam",
        flags: &["--recipe", "best", "--local-reparam"],
    },
    Row {
        name: "best-temperature",
        flags: &["--recipe", "best", "--temperature-scaling"],
    },
    Row {
        name: "best-no-holdout",
        flags: &["--recipe", "best", "--holdout", "0"],
    },
];

/// Reads one figure of a run (`None` when it was not measured, e.g. OOD without Fashion-MNIST).
type Figure = fn(&Metrics) -> Option<f64>;

/// The figures of one run that the table shows.
const COLUMNS: [(&str, Figure); 7] = [
    ("acc", |m| Some(m.acc)),
    ("nll", |m| Some(m.nll)),
    ("ece", |m| Some(m.ece)),
    ("AUROC −max p̄", |m| m.ood_auroc),
    ("AUROC H", |m| m.ood_auroc_entropy),
    ("AUROC MI", |m| m.ood_auroc_mi),
    ("train s", |m| Some(m.train_seconds)),
];

/// Runs the table's trainings and writes `ablation.md`.
pub fn run(args: &AblationArgs) -> Result<()> {
    let rows: Vec<Row> = match &args.rows {
        None => ROWS.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| {
                ROWS.iter().copied().find(|r| r.name == n).ok_or_else(|| {
                    let all: Vec<&str> = ROWS.iter().map(|r| r.name).collect();
                    TrainerError::invalid(
                        "--rows",
                        format!("no row {n:?} (rows: {})", all.join(", ")),
                    )
                })
            })
            .collect::<Result<_>>()?,
    };
    report::create_out_dir(&args.out)?;
    let mut results: Vec<(Row, Vec<Metrics>)> = vec![];
    for row in rows {
        let mut runs = vec![];
        for &seed in &args.seeds {
            let dir = args.out.join(row.name).join(format!("seed-{seed}"));
            outln!(
                "== ablation row {} seed {seed}: trainer train {}",
                row.name,
                row.flags.join(" ")
            );
            let train = train_args(row, seed, args, &dir)?;
            pipeline::run_train(&train)?;
            runs.push(read_metrics(&dir.join(files::METRICS))?);
        }
        results.push((row, runs));
    }
    let table = table(&results, &args.seeds);
    out!("{table}");
    report::write_atomic(&args.out.join("ablation.md"), table.as_bytes())
}

/// The `train` flags of one run, parsed as the command line parses them.
fn train_args(
    row: Row,
    seed: u64,
    args: &AblationArgs,
    dir: &Path,
) -> Result<crate::cli::TrainArgs> {
    let seed = seed.to_string();
    let data = args.data.display().to_string();
    let out = dir.display().to_string();
    let mut argv = vec!["trainer", "train"];
    argv.extend_from_slice(row.flags);
    argv.extend(["--seed", &seed, "--data", &data, "--out", &out, "--quiet"]);
    let threads = args.threads.map(|t| t.to_string());
    if let Some(t) = &threads {
        argv.extend(["--threads", t]);
    }
    match Cli::try_parse_from(&argv).map(Cli::into_command) {
        Ok(Command::Train(t)) => Ok(t),
        Ok(_) => Err(TrainerError::invalid("ablation", "not a train command")),
        Err(e) => Err(TrainerError::invalid(
            format!("ablation row {}", row.name),
            crate::cli::one_line_error(&e),
        )),
    }
}

fn read_metrics(path: &Path) -> Result<Metrics> {
    let bytes = std::fs::read(path).map_err(|e| TrainerError::read(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainerError::data(path, e.to_string()))
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n.max(1.0);
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The Markdown table: one row per configuration, `mean ± sd` over the seeds.
pub fn table(results: &[(Row, Vec<Metrics>)], seeds: &[u64]) -> String {
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let mut s = format!(
        "Mean ± sample standard deviation over seeds {} (`trainer ablation`).\n\n| row | flags |",
        seeds.join(", ")
    );
    for (name, _) in COLUMNS {
        let _ = write!(s, " {name} |");
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---:|".repeat(COLUMNS.len()));
    s.push('\n');
    for (row, runs) in results {
        let flags = if row.flags.is_empty() {
            "(the tutorial's recipe)".to_string()
        } else {
            format!("`{}`", row.flags.join(" "))
        };
        let _ = write!(s, "| {} | {flags} |", row.name);
        for (name, get) in COLUMNS {
            let v: Option<Vec<f64>> = runs.iter().map(get).collect();
            let cell = match v {
                Some(v) if !v.is_empty() => {
                    let (m, sd) = mean_sd(&v);
                    if name == "train s" {
                        format!("{m:.1} ± {sd:.1}")
                    } else {
                        format!("{m:.4} ± {sd:.4}")
                    }
                }
                _ => "n/a".to_string(),
            };
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean_sd(&[2.0]), (2.0, 0.0));
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
    }

    #[test]
    fn every_row_parses_as_train_flags() {
        let args = AblationArgs {
            seeds: vec![0],
            data: "data".into(),
            out: "x".into(),
            rows: None,
            threads: Some(1),
        };
        for row in ROWS {
            let t = train_args(*row, 7, &args, Path::new("o")).unwrap();
            assert_eq!(t.seed, 7, "{}", row.name);
            assert!(t.quiet);
        }
    }

    #[test]
    fn table_shows_mean_and_sd_and_missing_ood() {
        let m = |acc: f64, ood: Option<f64>| Metrics {
            acc,
            ood_auroc: ood,
            train_seconds: 2.0,
            ..Metrics::default()
        };
        let t = table(
            &[
                (ROWS[0], vec![m(0.95, Some(0.8)), m(0.97, Some(0.9))]),
                (ROWS[1], vec![m(0.9, None)]),
            ],
            &[0, 1],
        );
        assert!(
            t.contains("| seed | (the tutorial's recipe) | 0.9600 ± 0.0141 |"),
            "{t}"
        );
        assert!(t.contains("0.8500 ± 0.0707"), "{t}");
        assert!(
            t.contains("| closed-kl | `--kl closed` | 0.9000 ± 0.0000 |"),
            "{t}"
        );
        assert!(t.contains("n/a"), "{t}");
        assert_eq!(t.lines().count(), 6);
    }
}
