//! Data: IDX files, MNIST and Fashion-MNIST with their published checksums, augmentation.

pub mod idx;
pub mod mnist;

pub mod augment;

pub use idx::Dataset;
pub use mnist::{load_fashion_test, load_mnist, random_crop_padded};
