//! MNIST for the unit tests, from the workspace's data folder (see [`crate::data::workspace`]).

/// `(images n×784, labels n)` of `train` or `t10k`, the first `limit` images.
pub fn mnist(set: &str, limit: usize) -> (Vec<u8>, Vec<u8>) {
    let (train, test) = crate::data::workspace::mnist();
    let d = if set == "train" { train } else { test };
    let n = d.len().min(limit);
    (d.images[..n * 784].to_vec(), d.labels[..n].to_vec())
}
