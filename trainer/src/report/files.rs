//! Output files: atomic writes, the output directory, `metrics.json` and `predictions.csv`.
//!
//! Every file is written to a temporary file in the same directory, flushed, synced and then
//! renamed over the target, so a crash never leaves a half-written output; errors name the path.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, TrainerError};
use crate::eval::metrics::{self, Metrics, Predictions};

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let err = |e: std::io::Error| TrainerError::write(path, e);
    if path.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // Outputs are ordinary files (rw-r--r--), not tempfile's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Creates the output directory (and its parents), with an error naming it.
pub fn create_out_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainerError::write(dir, e))?;
    if !dir.is_dir() {
        return Err(TrainerError::write(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    Ok(())
}

/// Writes `metrics.json`: one flat, pretty-printed JSON object (see [`Metrics`]).
pub fn write_metrics_json(path: &Path, m: &Metrics) -> Result<()> {
    let mut json = serde_json::to_string_pretty(m)
        .map_err(|e| TrainerError::invalid("metrics", e.to_string()))?;
    json.push('\n');
    write_atomic(path, json.as_bytes())
}

/// The CSV text of [`write_predictions_csv`].
pub fn predictions_csv(sets: &[(&str, Predictions<'_>)]) -> String {
    let mut s = String::from("dataset,index,label");
    for c in 0..tinyvi::arch::CLASSES {
        let _ = write!(s, ",p{c}");
    }
    s.push_str(",entropy,mi\n");
    for (name, p) in sets {
        for i in 0..p.len() {
            let _ = write!(s, "{name},{i},{}", p.labels[i]);
            for v in &p.probs[i] {
                // f32 Display is the shortest string that parses back to the same f32.
                let _ = write!(s, ",{v}");
            }
            let h = metrics::entropy(&p.probs[i]);
            let mi = metrics::mutual_information(&p.probs[i], p.expected_entropy[i]);
            let _ = writeln!(s, ",{},{}", h as f32, mi as f32);
        }
    }
    s
}

/// Writes `predictions.csv`: header `dataset,index,label,p0,…,p9,entropy,mi`, one row per image of
/// each named set (`mnist`, `fashion`); `p*` is `p̄`, `entropy` is `H[p̄]`, `mi` the mutual information.
pub fn write_predictions_csv(path: &Path, sets: &[(&str, Predictions<'_>)]) -> Result<()> {
    write_atomic(path, predictions_csv(sets).as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tinyvi::arch::CLASSES;

    pub(crate) fn sample_metrics(ood: bool) -> Metrics {
        Metrics {
            acc: 0.95,
            nll: 0.15,
            brier: 0.07,
            ece: 0.012,
            aece: 0.011,
            entropy: 0.19,
            mi: 0.01,
            ood_auroc: ood.then_some(0.8),
            ood_aupr: ood.then_some(0.75),
            ood_fpr95: ood.then_some(0.6),
            ood_auroc_entropy: ood.then_some(0.82),
            ood_auroc_mi: ood.then_some(0.7),
            epochs: 1,
            seed: 0,
            eval_samples: 16,
            train_seconds: 9.5,
            eval_seconds: 4.2,
            train_images: 60_000,
            temperature: None,
        }
    }

    #[test]
    fn json_is_flat_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        write_metrics_json(&path, &sample_metrics(false)).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["acc"], 0.95);
        assert!(v["ood_auroc"].is_null());
        assert_eq!(v["eval_samples"], 16);
        // No temporary file left behind; an ordinary file mode.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o644, 0o644, "{mode:o}");
        }
    }

    #[test]
    fn unwritable_paths_give_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/metrics.json");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: cannot write:", missing.display())),
            "{e}"
        );
        assert!(!e.contains('\n'));
        // A directory where the file should go: refused, and left as it is.
        let target = dir.path().join("metrics.json");
        std::fs::create_dir(&target).unwrap();
        let e = write_atomic(&target, b"x").unwrap_err().to_string();
        assert!(e.contains("cannot write"), "{e}");
        assert!(target.is_dir());
        // A file where the output directory should go.
        let file = dir.path().join("file");
        std::fs::write(&file, b"keep").unwrap();
        assert!(create_out_dir(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    #[test]
    fn csv_round_trips_f32() {
        let probs = [[0.1f32, 0.2, 0.3, 0.4, 1e-8, 0.0, 0.0, 0.0, 0.0, 1.0 / 3.0]];
        let p = Predictions {
            probs: &probs,
            labels: &[3],
            expected_entropy: &[0.5],
        };
        let csv = predictions_csv(&[("mnist", p), ("fashion", p)]);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "dataset,index,label,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,entropy,mi"
        );
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(&row[..3], &["mnist", "0", "3"]);
        for c in 0..CLASSES {
            assert_eq!(
                row[3 + c].parse::<f32>().unwrap().to_bits(),
                probs[0][c].to_bits()
            );
        }
        let h: f32 = row[13].parse().unwrap();
        assert!((f64::from(h) - metrics::entropy(&probs[0])).abs() < 1e-6);
        assert!(lines.next().unwrap().starts_with("fashion,0,3,"));
        assert_eq!(lines.next(), None);
    }
}
