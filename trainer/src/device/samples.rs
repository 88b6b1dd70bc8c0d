//! The sample set the firmware embeds: the first images of MNIST test and Fashion-MNIST test,
//! in the core's `samples` format.

use tinyvi::samples::{encode, encoded_len, Dataset as SetName, Sample};

use crate::data::idx::Dataset;
use crate::error::{Result, TrainerError};

/// Encodes the first `per_set` images of `mnist` and of `fashion` (when given).
pub fn sample_set(mnist: &Dataset, fashion: Option<&Dataset>, per_set: usize) -> Result<Vec<u8>> {
    let mut samples = Vec::new();
    let sets = [(SetName::Mnist, Some(mnist)), (SetName::Fashion, fashion)];
    for (name, set) in sets {
        let Some(set) = set else { continue };
        for i in 0..per_set.min(set.len()) {
            samples.push(Sample {
                dataset: name,
                index: i as u32,
                label: set.label(i),
                pixels: set.image(i),
            });
        }
    }
    let mut out = vec![0u8; encoded_len(&samples)];
    encode(&samples, &mut out).map_err(|e| TrainerError::invalid("sample set", e.to_string()))?;
    Ok(out)
}
