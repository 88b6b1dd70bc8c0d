//! Helpers shared by the integration tests of `trainer`.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use flate2::{write::GzEncoder, Compression};

/// The workspace's data folder, with MNIST in it (fetched when missing).
pub fn data_dir() -> PathBuf {
    trainer::data::workspace::mnist_dir()
}

/// A process's status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `bytes` as one gzip member.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes `bytes` to `dir/name` and returns that path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The error is one line, starts with the path followed by `after_path`, and contains `needle`.
pub fn assert_one_line_after(
    err: impl std::fmt::Display,
    path: &Path,
    after_path: &str,
    needle: &str,
) {
    let s = err.to_string();
    assert!(!s.contains('\n'), "not one line: {s}");
    assert!(
        s.starts_with(&format!("{}{after_path}", path.display())),
        "does not start with {}: {s}",
        path.display()
    );
    assert!(s.contains(needle), "no `{needle}` in: {s}");
}
