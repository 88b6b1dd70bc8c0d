//! Outputs: the files of `--out` (atomic writes, `metrics.json`, `predictions.csv`), the
//! metrics table, the figures and the progress display.

pub mod figures;
pub mod files;
pub mod progress;
pub mod table;

pub use figures::{
    font_available, histogram, reliability_bins, write_reliability_png, write_uncertainty_png,
};
pub use files::{
    create_out_dir, predictions_csv, write_atomic, write_metrics_json, write_predictions_csv,
};
pub use progress::{progress, progress_to, Progress};
pub use table::{metric_rows, metrics_table, print_metrics_table};
