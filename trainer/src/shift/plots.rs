//! The figures of `trainer shift`: accuracy, ECE and predictive entropy against the rotation
//! angle and against the translation (Ovadia et al.'s Figure 1 style), Monte Carlo and mean
//! network as two lines; and a per-corruption bar chart of accuracy and OOD AUROC (entropy).
//! Drawn with the same plotters backend, font lookup and PNG encoder as the other figures.

use std::path::Path;

use plotters::prelude::*;

use super::suite::{files, Row};
use crate::error::Result;
use crate::report::figures::{encode_png, plot_error};
use crate::report::{font_available, write_atomic};

/// A panel's title and the value it shows of a row.
type Panel = (&'static str, fn(&Row) -> Option<f64>);

const W: u32 = 480;
const H: u32 = 400;
const BLUE: RGBColor = RGBColor(66, 114, 196);
const ORANGE: RGBColor = RGBColor(237, 125, 49);

/// Writes the three figures into `out` (a figure with no rows to show is skipped).
pub fn write_all(out: &Path, rows: &[Row]) -> Result<()> {
    for (family, x_desc, file) in [
        ("rotate", "rotation (degrees)", files::ROTATION_PNG),
        ("translate", "translation (pixels)", files::TRANSLATION_PNG),
    ] {
        let sel: Vec<&Row> = rows
            .iter()
            .filter(|r| r.family == family || r.family == "clean")
            .collect();
        if sel.iter().any(|r| r.family == family) {
            write_curves(&out.join(file), &sel, x_desc)?;
        }
    }
    let corr: Vec<&Row> = rows.iter().filter(|r| r.family == "mnistc").collect();
    if !corr.is_empty() {
        write_bars(&out.join(files::CORRUPTIONS_PNG), &corr)?;
    }
    Ok(())
}

/// The series `(level, value)` of one predictor, sorted by level.
fn series(rows: &[&Row], predictor: &str, f: fn(&Row) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.predictor == predictor)
        .filter_map(|r| f(r).map(|y| (r.level, y)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Three panels (accuracy, ECE, entropy) against the level.
pub fn write_curves(path: &Path, rows: &[&Row], x_desc: &str) -> Result<()> {
    let text = font_available();
    let x_hi = rows.iter().map(|r| r.level).fold(1.0f64, f64::max);
    let panels: [Panel; 3] = [
        ("accuracy", |r| r.acc),
        ("ECE", |r| r.ece),
        ("predictive entropy (nats)", |r| Some(r.entropy)),
    ];
    let mut rgb = vec![0u8; (3 * W * H * 3) as usize];
    {
        let e = plot_error(path);
        let root = BitMapBackend::with_buffer(&mut rgb, (3 * W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        for (area, (title, f)) in root.split_evenly((1, 3)).iter().zip(panels) {
            let mc = series(rows, "mc", f);
            let mean = series(rows, "mean", f);
            let y_hi = mc
                .iter()
                .chain(&mean)
                .map(|p| p.1)
                .fold(1e-3f64, f64::max)
                .max(if title == "accuracy" { 1.0 } else { 0.0 })
                * 1.05;
            let mut b = ChartBuilder::on(area);
            b.margin(15);
            if text {
                b.caption(title, ("sans-serif", 20))
                    .x_label_area_size(40)
                    .y_label_area_size(50);
            }
            let mut chart = b.build_cartesian_2d(0f64..x_hi, 0f64..y_hi).map_err(&e)?;
            if text {
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .light_line_style(WHITE)
                    .draw()
                    .map_err(&e)?;
            }
            for (pts, color, label) in [(&mc, BLUE, "Monte Carlo"), (&mean, ORANGE, "mean weights")]
            {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(&e)?;
                let s = chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                    .map_err(&e)?;
                if text {
                    s.label(label).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 15, y)], color.stroke_width(2))
                    });
                }
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(&e)?;
            }
        }
        root.present().map_err(&e)?;
    }
    write_atomic(path, &encode_png(path, &rgb, 3 * W, H)?)
}

/// A corruption's name short enough for one bar group: its first word (`shot`, `glass`, …).
fn short_name(name: &str) -> String {
    match name {
        "brightness" => "bright".into(),
        "translate" => "transl".into(),
        _ => name.split('_').next().unwrap_or(name).into(),
    }
}

/// Two panels of grouped bars per corruption: accuracy and OOD AUROC of the entropy.
pub fn write_bars(path: &Path, rows: &[&Row]) -> Result<()> {
    let text = font_available();
    let names: Vec<String> = rows
        .iter()
        .filter(|r| r.predictor == "mc")
        .map(|r| short_name(r.condition.split(':').nth(1).unwrap_or("?")))
        .collect();
    let n = names.len();
    let panels: [Panel; 2] = [
        ("accuracy", |r| r.acc),
        ("OOD AUROC of the entropy vs clean MNIST", |r| {
            r.auroc_entropy
        }),
    ];
    let (fw, fh) = (1000u32, 2 * H + 80);
    let mut rgb = vec![0u8; (fw * fh * 3) as usize];
    {
        let e = plot_error(path);
        let root = BitMapBackend::with_buffer(&mut rgb, (fw, fh)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        for (area, (title, f)) in root.split_evenly((2, 1)).iter().zip(panels) {
            let mut b = ChartBuilder::on(area);
            b.margin(15);
            if text {
                b.caption(title, ("sans-serif", 20))
                    .x_label_area_size(70)
                    .y_label_area_size(50);
            }
            let mut chart = b
                .build_cartesian_2d(0f64..n as f64, 0f64..1.05f64)
                .map_err(&e)?;
            if text {
                let labels = names.clone();
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .light_line_style(WHITE)
                    .x_labels(n * 2 + 1)
                    .x_label_formatter(&move |x| {
                        let k = (x - 0.5).round();
                        if (x - 0.5 - k).abs() < 1e-6 && k >= 0.0 {
                            labels.get(k as usize).cloned().unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .x_label_style(("sans-serif", 13))
                    .draw()
                    .map_err(&e)?;
            }
            for (j, (pred, color, label)) in [
                ("mc", BLUE, "Monte Carlo"),
                ("mean", ORANGE, "mean weights"),
            ]
            .into_iter()
            .enumerate()
            {
                let vals: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.predictor == pred)
                    .map(|r| f(r).unwrap_or(0.0))
                    .collect();
                let s = chart
                    .draw_series(vals.iter().enumerate().map(|(k, &v)| {
                        let x0 = k as f64 + 0.1 + 0.4 * j as f64;
                        Rectangle::new([(x0, 0.0), (x0 + 0.4, v)], color.mix(0.85).filled())
                    }))
                    .map_err(&e)?;
                if text {
                    s.label(label).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.85).filled())
                    });
                }
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::LowerRight)
                    .draw()
                    .map_err(&e)?;
            }
        }
        root.present().map_err(&e)?;
    }
    write_atomic(path, &encode_png(path, &rgb, fw, fh)?)
}
