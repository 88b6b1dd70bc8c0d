//! Outputs: `metrics.json`, `predictions.csv`, the metrics table, `reliability.png`,
//! `uncertainty.png`, and the progress display.
//!
//! Every file is written to a temporary file in the same directory, flushed, synced and then
//! renamed over the target, so a crash never leaves a half-written output; errors name the path.
//!
//! Figures are drawn with plotters' bitmap backend (no system libraries) and encoded with the
//! `png` crate. Text is set in DejaVu Sans, embedded in the binary by the `dejavu` crate, so a
//! figure looks the same on every machine and needs no installed font.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plotters::prelude::*;

use crate::error::{Result, TrainerError};
use crate::metrics::{self, Metrics, Predictions};

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

/// Rows of the metrics table: (key, value), OOD rows only when present.
pub fn metric_rows(m: &Metrics) -> Vec<(&'static str, f64)> {
    let mut rows = vec![
        ("acc", m.acc),
        ("nll", m.nll),
        ("brier", m.brier),
        ("ece", m.ece),
        ("aece", m.aece),
        ("entropy", m.entropy),
        ("mi", m.mi),
    ];
    for (k, v) in [
        ("ood_auroc", m.ood_auroc),
        ("ood_aupr", m.ood_aupr),
        ("ood_fpr95", m.ood_fpr95),
        ("ood_auroc_entropy", m.ood_auroc_entropy),
        ("ood_auroc_mi", m.ood_auroc_mi),
    ] {
        if let Some(v) = v {
            rows.push((k, v));
        }
    }
    rows
}

fn center(s: &str, width: usize) -> String {
    let len = s.chars().count();
    let left = width.saturating_sub(len) / 2;
    let right = width.saturating_sub(len + left);
    format!("{}{s}{}", " ".repeat(left), " ".repeat(right))
}

/// The metrics as a box table like Lightning's `Test metric | Value`.
pub fn metrics_table(m: &Metrics) -> String {
    const W: usize = 27;
    let bar = |c: &str| c.repeat(W);
    let mut s = String::new();
    let _ = writeln!(s, "┏{}┳{}┓", bar("━"), bar("━"));
    let _ = writeln!(s, "┃{}┃{}┃", center("Test metric", W), center("Value", W));
    let _ = writeln!(s, "┡{}╇{}┩", bar("━"), bar("━"));
    for (k, v) in metric_rows(m) {
        let _ = writeln!(s, "│{}│{}│", center(k, W), center(&format!("{v:.5}"), W));
    }
    let _ = writeln!(s, "└{}┴{}┘", bar("─"), bar("─"));
    s
}

/// Prints [`metrics_table`] to stdout.
pub fn print_metrics_table(m: &Metrics) {
    out!("{}", metrics_table(m));
}

// ---------------------------------------------------------------------------------------------
// Figures

/// Registers the embedded DejaVu Sans for figure text once; false only if plotters refuses it
/// (the figures are then drawn without text).
pub fn font_available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    })
}

const FIG_W: u32 = 640;
const FIG_H: u32 = 480;

fn encode_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let plot_err = |e: png::EncodingError| TrainerError::Plot {
        path: path.into(),
        problem: e.to_string(),
    };
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(plot_err)?;
    writer.write_image_data(rgb).map_err(plot_err)?;
    writer.finish().map_err(plot_err)?;
    Ok(out)
}

fn plot_error<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> TrainerError + '_ {
    move |e| TrainerError::Plot {
        path: path.into(),
        problem: format!("{e:?}"),
    }
}

/// Equal-width bins for the diagram: torchmetrics' 16th bin (confidence exactly 1) is merged
/// into the 15th so that the bars cover [0, 1].
pub fn reliability_bins(p: &Predictions<'_>) -> Vec<metrics::Bin> {
    let (conf, correct): (Vec<f32>, Vec<bool>) = (0..p.len())
        .map(|i| {
            let (c, v) = metrics::top1(&p.probs[i]);
            (v, c == usize::from(p.labels[i]))
        })
        .unzip();
    let mut bins = metrics::calibration_bins(&conf, &correct, metrics::CALIBRATION_BINS);
    if let (Some(extra), Some(_)) = (bins.pop(), bins.last()) {
        let last = bins.last_mut().expect("15 bins");
        let n = last.count + extra.count;
        if n > 0 {
            last.accuracy = (last.accuracy * last.count as f64
                + extra.accuracy * extra.count as f64)
                / n as f64;
            last.confidence = (last.confidence * last.count as f64
                + extra.confidence * extra.count as f64)
                / n as f64;
        }
        last.count = n;
        last.upper = 1.0;
    }
    bins
}

/// Draws `reliability.png`: accuracy per confidence bin (15 equal-width bins) as bars, the
/// diagonal of perfect calibration, the mean confidence per bin as dots, and the ECE in the title.
pub fn write_reliability_png(path: &Path, p: &Predictions<'_>, ece: f64) -> Result<()> {
    let bins = reliability_bins(p);
    let text = font_available();
    let mut rgb = vec![0u8; (FIG_W * FIG_H * 3) as usize];
    {
        let e = plot_error(path);
        let root = BitMapBackend::with_buffer(&mut rgb, (FIG_W, FIG_H)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20);
        if text {
            builder
                .caption(
                    format!("Reliability diagram (ECE = {ece:.4})"),
                    ("sans-serif", 22),
                )
                .x_label_area_size(45)
                .y_label_area_size(55);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(&e)?;
        if text {
            chart
                .configure_mesh()
                .x_desc("confidence (max of the mean softmax)")
                .y_desc("accuracy")
                .light_line_style(WHITE)
                .draw()
                .map_err(&e)?;
        } else {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(&e)?;
        }
        let bar = RGBColor(66, 114, 196);
        let bars = chart
            .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.accuracy)],
                    bar.mix(0.8).filled(),
                )
            }))
            .map_err(&e)?;
        if text {
            bars.label("accuracy per bin").legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], bar.mix(0.8).filled())
            });
        }
        chart
            .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.accuracy)],
                    BLACK.stroke_width(1),
                )
            }))
            .map_err(&e)?;
        let diagonal = chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                RED.stroke_width(2),
            ))
            .map_err(&e)?;
        if text {
            diagonal
                .label("perfect calibration")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED.stroke_width(2)));
        }
        let dots =
            chart
                .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
                    Circle::new(((b.lower + b.upper) / 2.0, b.confidence), 3, BLACK.filled())
                }))
                .map_err(&e)?;
        if text {
            dots.label("mean confidence per bin")
                .legend(|(x, y)| Circle::new((x + 7, y), 3, BLACK.filled()));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(&e)?;
        }
        root.present().map_err(&e)?;
    }
    write_atomic(path, &encode_png(path, &rgb, FIG_W, FIG_H)?)
}

/// Share of `values` in each of `bins` equal-width bins over `[0, hi]` (the last bin closed).
pub fn histogram(values: &[f64], hi: f64, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    if values.is_empty() || hi <= 0.0 {
        return h;
    }
    for &v in values {
        let k = ((v / hi) * bins as f64).floor();
        let k = if k.is_finite() {
            (k.max(0.0) as usize).min(bins - 1)
        } else {
            0
        };
        h[k] += 1.0;
    }
    let n = values.len() as f64;
    h.iter_mut().for_each(|x| *x /= n);
    h
}

/// Draws `uncertainty.png`: histograms (share of images) of the predictive entropy `H[p̄]` and
/// of the mutual information, MNIST test (blue) against Fashion-MNIST test (orange) when given.
pub fn write_uncertainty_png(
    path: &Path,
    mnist: &Predictions<'_>,
    fashion: Option<&Predictions<'_>>,
) -> Result<()> {
    const BINS: usize = 30;
    let series = |p: &Predictions<'_>| -> (Vec<f64>, Vec<f64>) {
        (0..p.len())
            .map(|i| {
                (
                    metrics::entropy(&p.probs[i]),
                    metrics::mutual_information(&p.probs[i], p.expected_entropy[i]),
                )
            })
            .unzip()
    };
    let (h_in, mi_in) = series(mnist);
    let (h_out, mi_out) = fashion.map(series).unwrap_or_default();
    let h_hi = (tinyvi::arch::CLASSES as f64).ln();
    let mi_hi = mi_in
        .iter()
        .chain(&mi_out)
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-3)
        * 1.05;
    let text = font_available();
    let mut rgb = vec![0u8; (2 * FIG_W * FIG_H * 3) as usize];
    {
        let e = plot_error(path);
        let root = BitMapBackend::with_buffer(&mut rgb, (2 * FIG_W, FIG_H)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let panels = root.split_evenly((1, 2));
        let blue = RGBColor(66, 114, 196);
        let orange = RGBColor(237, 125, 49);
        for (panel, (title, hi, a, b)) in panels.iter().zip([
            ("predictive entropy (nats)", h_hi, &h_in, &h_out),
            ("mutual information (nats)", mi_hi, &mi_in, &mi_out),
        ]) {
            let ha = histogram(a, hi, BINS);
            let hb = histogram(b, hi, BINS);
            let top = ha
                .iter()
                .chain(&hb)
                .fold(0.0f64, |x, &y| x.max(y))
                .max(1e-3)
                * 1.1;
            let mut builder = ChartBuilder::on(panel);
            builder.margin(20);
            if text {
                builder
                    .caption(title, ("sans-serif", 20))
                    .x_label_area_size(40)
                    .y_label_area_size(55);
            }
            let mut chart = builder
                .build_cartesian_2d(0f64..hi, 0f64..top)
                .map_err(&e)?;
            if text {
                chart
                    .configure_mesh()
                    .y_desc("share of images")
                    .light_line_style(WHITE)
                    .draw()
                    .map_err(&e)?;
            }
            let w = hi / BINS as f64;
            for (h, color, label) in [
                (&ha, blue, "MNIST test"),
                (&hb, orange, "Fashion-MNIST test"),
            ] {
                if h.iter().all(|&v| v == 0.0) {
                    continue;
                }
                let s =
                    chart
                        .draw_series(h.iter().enumerate().filter(|(_, &v)| v > 0.0).map(
                            |(k, &v)| {
                                Rectangle::new(
                                    [(k as f64 * w, 0.0), ((k + 1) as f64 * w, v)],
                                    color.mix(0.55).filled(),
                                )
                            },
                        ))
                        .map_err(&e)?;
                if text {
                    s.label(label).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.55).filled())
                    });
                }
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(&e)?;
            }
        }
        root.present().map_err(&e)?;
    }
    write_atomic(path, &encode_png(path, &rgb, 2 * FIG_W, FIG_H)?)
}

// ---------------------------------------------------------------------------------------------
// Progress

/// A progress display: an indicatif bar on a terminal; plain lines (`label: 30% (141/469) msg`)
/// at every 10% when stdout is not a terminal; nothing when quiet.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Mutex<Plain>>,
}

struct Plain {
    label: String,
    len: u64,
    pos: u64,
    next_decile: u64,
    message: String,
    start: Instant,
}

impl Plain {
    fn line(&self) -> String {
        let pct = self
            .pos
            .saturating_mul(100)
            .checked_div(self.len)
            .unwrap_or(100);
        let mut s = format!(
            "{}: {pct:>3}% ({}/{}) {:.1}s",
            self.label,
            self.pos,
            self.len,
            self.start.elapsed().as_secs_f64()
        );
        if !self.message.is_empty() {
            s.push(' ');
            s.push_str(&self.message);
        }
        s
    }
}

/// A progress display for `len` steps named `label`; see [`Progress`].
pub fn progress(len: u64, label: &str, quiet: bool) -> Progress {
    progress_to(len, label, quiet, std::io::stdout().is_terminal())
}

/// [`progress`] with the terminal decision made by the caller (for tests).
pub fn progress_to(len: u64, label: &str, quiet: bool, terminal: bool) -> Progress {
    if quiet {
        return Progress {
            bar: None,
            plain: None,
        };
    }
    if terminal {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar: Some(bar),
            plain: None,
        }
    } else {
        Progress {
            bar: None,
            plain: Some(Mutex::new(Plain {
                label: label.to_string(),
                len,
                pos: 0,
                next_decile: 1,
                message: String::new(),
                start: Instant::now(),
            })),
        }
    }
}

impl Progress {
    /// Advances by `n` steps; returns the plain lines printed (for tests), empty on a terminal.
    pub fn inc(&self, n: u64) -> Vec<String> {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        let mut lines = Vec::new();
        if let Some(plain) = &self.plain {
            let mut p = plain.lock().unwrap_or_else(|e| e.into_inner());
            p.pos = (p.pos + n).min(p.len);
            // Print once per decile crossed (at most one line per call).
            let mut crossed = false;
            while p.next_decile <= 10 && p.pos * 10 >= p.next_decile * p.len {
                p.next_decile += 1;
                crossed = true;
            }
            if crossed {
                let line = p.line();
                outln!("{line}");
                lines.push(line);
            }
        }
        lines
    }

    /// Sets the message shown after the bar (e.g. `loss 0.31 acc 0.912`).
    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        } else if let Some(plain) = &self.plain {
            plain.lock().unwrap_or_else(|e| e.into_inner()).message = msg;
        }
    }

    /// Prints a line above the bar on a terminal (plainly otherwise; not at all when quiet).
    pub fn println(&self, line: impl AsRef<str>) {
        if let Some(bar) = &self.bar {
            bar.println(line.as_ref());
        } else if self.plain.is_some() {
            outln!("{}", line.as_ref());
        }
    }

    /// Ends the display (the bar stays on screen with its last message).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyvi::arch::CLASSES;

    fn sample_metrics(ood: bool) -> Metrics {
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
    fn table_has_a_row_per_metric() {
        let t = metrics_table(&sample_metrics(true));
        assert!(t.contains("Test metric"));
        assert!(t.contains("│            acc            │          0.95000          │"));
        assert!(t.contains("ood_auroc_mi"));
        assert_eq!(t.lines().count(), 4 + 12);
        let t = metrics_table(&sample_metrics(false));
        assert!(!t.contains("ood_"));
        assert!(t.lines().all(|l| l.chars().count() == 57));
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

    #[test]
    fn histogram_shares() {
        let h = histogram(&[0.0, 0.5, 0.99, 1.0, 2.0], 1.0, 2);
        assert_eq!(h, vec![0.2, 0.8]);
    }

    fn fake_predictions(n: usize, sharp: bool) -> (Vec<[f32; CLASSES]>, Vec<u8>, Vec<f32>) {
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        let mut ee = Vec::new();
        for i in 0..n {
            let mut p = [0.0f32; CLASSES];
            let top = if sharp {
                0.5 + 0.5 * (i % 10) as f32 / 10.0
            } else {
                0.3
            };
            p[i % CLASSES] = top;
            let rest = (1.0 - top) / 9.0;
            for (c, v) in p.iter_mut().enumerate() {
                if c != i % CLASSES {
                    *v = rest;
                }
            }
            probs.push(p);
            labels.push(((i + usize::from(i % 7 == 0)) % CLASSES) as u8);
            ee.push((metrics::entropy(&p) * 0.8) as f32);
        }
        (probs, labels, ee)
    }

    #[test]
    fn figures_are_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let (pi, li, ei) = fake_predictions(200, true);
        let (po, lo, eo) = fake_predictions(200, false);
        let id = Predictions {
            probs: &pi,
            labels: &li,
            expected_entropy: &ei,
        };
        let ood = Predictions {
            probs: &po,
            labels: &lo,
            expected_entropy: &eo,
        };
        let rel = dir.path().join("reliability.png");
        let unc = dir.path().join("uncertainty.png");
        write_reliability_png(&rel, &id, 0.0123).unwrap();
        write_uncertainty_png(&unc, &id, Some(&ood)).unwrap();
        write_uncertainty_png(&dir.path().join("u2.png"), &id, None).unwrap();
        for p in [&rel, &unc] {
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            assert!(bytes.len() > 2000);
        }
        let bins = reliability_bins(&id);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 200);
    }

    #[test]
    fn progress_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Progress>();
        let p = progress_to(0, "empty", false, false);
        assert_eq!(p.inc(1).len(), 1);
        assert!(p.inc(1).is_empty());
    }

    #[test]
    fn plain_progress_prints_every_tenth() {
        let p = progress_to(100, "train", false, false);
        p.set_message("loss 0.5");
        let mut lines = Vec::new();
        for _ in 0..100 {
            lines.extend(p.inc(1));
        }
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert!(lines[0].starts_with("train:  10% (10/100)"), "{}", lines[0]);
        assert!(lines[0].ends_with("loss 0.5"));
        assert!(lines[9].starts_with("train: 100% (100/100)"));
        // Few steps: one line per step that crosses a decile, never more than one per call.
        let p = progress_to(3, "eval", false, false);
        assert_eq!(p.inc(1).len(), 1);
        assert_eq!(p.inc(2).len(), 1);
        assert!(p.inc(1).is_empty());
        assert!(progress_to(10, "q", true, false).inc(10).is_empty());
    }
}
