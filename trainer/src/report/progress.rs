//! The progress display: an indicatif bar on a terminal, a plain line every tenth elsewhere.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
