//! Test-only access to the raw MNIST IDX files in /work/data (or `$TINYVI_DATA`).

use std::path::PathBuf;

fn dir() -> PathBuf {
    std::env::var_os("TINYVI_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/data"))
}

/// `(images n×784, labels n)` of `train` or `t10k`, first `limit` images; `None` when absent.
pub fn mnist(set: &str, limit: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let img = std::fs::read(dir().join(format!("{set}-images-idx3-ubyte"))).ok()?;
    let lab = std::fs::read(dir().join(format!("{set}-labels-idx1-ubyte"))).ok()?;
    assert_eq!(&img[..4], &[0, 0, 8, 3]);
    assert_eq!(&lab[..4], &[0, 0, 8, 1]);
    let n = (u32::from_be_bytes(lab[4..8].try_into().unwrap()) as usize).min(limit);
    Some((img[16..16 + n * 784].to_vec(), lab[8..8 + n].to_vec()))
}
