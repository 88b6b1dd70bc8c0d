//! The one data folder of the workspace's tests and examples: `$TINYVI_DATA` if set, else the
//! workspace's `data/` (the folder `trainer train` uses when run from the workspace root).
//! Missing data is fetched into it exactly as `trainer train` fetches it.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::idx::Dataset;
use super::mnist::{load_fashion_test, load_mnist};

/// The environment variable that points the tests and examples at another data folder.
pub const DATA_ENV: &str = "TINYVI_DATA";

/// `$TINYVI_DATA`, else the workspace's `data/`.
pub fn data_dir() -> PathBuf {
    std::env::var_os(DATA_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data"))
}

/// MNIST (train, test) from [`data_dir`], fetched there when missing, read once per process.
///
/// # Panics
/// When MNIST is absent and cannot be fetched: the message is the loader's, which names the
/// files and the command that fetches them.
pub fn mnist() -> &'static (Dataset, Dataset) {
    static MNIST: OnceLock<(Dataset, Dataset)> = OnceLock::new();
    MNIST.get_or_init(|| {
        load_mnist(&data_dir())
            .unwrap_or_else(|e| panic!("the tests need MNIST in {}: {e}", data_dir().display()))
    })
}

/// [`data_dir`] after making sure MNIST is there (see [`mnist`]).
pub fn mnist_dir() -> PathBuf {
    mnist();
    data_dir()
}

/// Fashion-MNIST's test split from [`data_dir`]`/fashion-mnist/`, fetched there when missing.
///
/// # Panics
/// When it is absent and cannot be fetched (the loader has printed why and the command to run).
pub fn fashion_test() -> &'static Dataset {
    static FASHION: OnceLock<Dataset> = OnceLock::new();
    FASHION.get_or_init(|| match load_fashion_test(&data_dir()) {
        Ok(Some(d)) => d,
        Ok(None) => panic!(
            "the tests need Fashion-MNIST in {}/fashion-mnist/ (see the line above)",
            data_dir().display()
        ),
        Err(e) => panic!("{e}"),
    })
}
