//! The metrics table printed at the end of a run.

use std::fmt::Write as _;

use crate::eval::metrics::Metrics;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::files::tests::sample_metrics;

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
}
