//! Data: IDX files, MNIST and Fashion-MNIST with their published checksums, augmentation.

pub mod deb;
pub mod idx;
pub mod mnist;
pub mod workspace;

pub use idx::Dataset;
pub use mnist::{load_fashion_test, load_mnist, random_crop_padded};
