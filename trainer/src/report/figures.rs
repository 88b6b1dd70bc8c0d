//! Figures: `reliability.png` and `uncertainty.png`, drawn with plotters' bitmap backend (no
//! system libraries) and encoded with the `png` crate. Text is set in DejaVu Sans, embedded in
//! the binary by the `dejavu` crate, so a figure looks the same on every machine and needs no
//! installed font.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::files::write_atomic;
use crate::error::{Result, TrainerError};
use crate::eval::metrics::{self, Predictions};

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

pub(crate) fn encode_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
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

pub(crate) fn plot_error<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> TrainerError + '_ {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tinyvi::arch::CLASSES;

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
        let u2 = dir.path().join("u2.png");
        for (p, w) in [(&rel, FIG_W), (&unc, 2 * FIG_W), (&u2, 2 * FIG_W)] {
            // Decodes as an RGB image of its size (one panel 640×480, two side by side for the
            // uncertainty), a white background and drawn marks.
            let decoder =
                png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
            let mut reader = decoder.read_info().unwrap();
            let mut rgb = vec![0u8; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut rgb).unwrap();
            assert_eq!((info.width, info.height), (w, FIG_H), "{}", p.display());
            assert_eq!(info.color_type, png::ColorType::Rgb);
            let px = |x: u32, y: u32| {
                let i = ((y * w + x) * 3) as usize;
                [rgb[i], rgb[i + 1], rgb[i + 2]]
            };
            assert_eq!(px(0, 0), [255, 255, 255], "{}", p.display());
            let dark = rgb.chunks(3).filter(|c| c.iter().all(|&v| v < 128)).count();
            assert!(dark > 1_000, "{}: {dark} dark pixels", p.display());
        }
        let bins = reliability_bins(&id);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 200);
    }
}
