//! Export to the tinyvi model file: means μ and variances softplus(ρ)² of every layer.

use tinyvi::arch::{CLASSES, LENET_INPUT, LENET_LAYERS};
use tinyvi::format::{encode_as, encoded_len_as, LayerSpec, ModelSpec, OodThreshold, Precision};

use crate::model::Lenet;
use crate::nn::bayes::softplus;

/// Encodes `model` (and an optional OOD threshold) as a tinyvi model file.
pub fn try_export(model: &Lenet, ood: Option<OodThreshold>) -> Result<Vec<u8>, tinyvi::Error> {
    try_export_as(model, ood, Precision::F32)
}

/// [`try_export`] at `precision` (quantised by the core's encoder).
pub fn try_export_as(
    model: &Lenet,
    ood: Option<OodThreshold>,
    precision: Precision,
) -> Result<Vec<u8>, tinyvi::Error> {
    let var: Vec<f32> = model
        .rho
        .iter()
        .map(|&r| {
            let s = softplus(r);
            s * s
        })
        .collect();
    let ranges = crate::nn::lenet::LAYERS;
    let specs: Vec<LayerSpec<'_>> = ranges
        .iter()
        .zip(LENET_LAYERS)
        .map(|(l, (kind, then))| LayerSpec {
            kind,
            then,
            weight_mean: &model.mu[l.w..l.b],
            weight_var: &var[l.w..l.b],
            bias_mean: &model.mu[l.b..l.end],
            bias_var: &var[l.b..l.end],
        })
        .collect();
    let spec = ModelSpec {
        input: LENET_INPUT,
        classes: CLASSES as u16,
        ood,
        layers: &specs,
    };
    let mut out = vec![0u8; encoded_len_as(&spec, precision)?];
    let used = encode_as(&spec, precision, &mut out)?;
    out.truncate(used);
    Ok(out)
}

/// Encodes `model` as a tinyvi model file.
///
/// # Panics
/// Only if a parameter is NaN or infinite, which [`crate::train::train`] never leaves behind
/// (it stops with an error first); use [`try_export`] for untrusted parameters.
pub fn export(model: &Lenet, ood: Option<OodThreshold>) -> Vec<u8> {
    try_export(model, ood).expect("a finite LeNet always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyvi::format::OodScore;
    use tinyvi::Model;

    #[test]
    fn export_decodes_with_the_trainers_means_and_variances() {
        let mut model = Lenet::init(4);
        model.rho[7] = 3.0;
        let ood = OodThreshold {
            score: OodScore::Entropy,
            value: 0.5,
        };
        let bytes = export(&model, Some(ood));
        let decoded = Model::from_bytes(&bytes).unwrap();
        assert!(tinyvi::arch::is_lenet(&decoded));
        assert_eq!(decoded.ood_threshold(), Some(ood));
        assert_eq!(decoded.parameter_count(), crate::nn::lenet::PARAMS as u64);
        for (layer, l) in decoded.layers().iter().zip(crate::nn::lenet::LAYERS) {
            let mut v = vec![0.0; l.b - l.w];
            assert!(layer.weight_mean.copy_to(&mut v));
            assert_eq!(v, model.mu[l.w..l.b]);
            let mut v = vec![0.0; l.end - l.b];
            assert!(layer.bias_mean.copy_to(&mut v));
            assert_eq!(v, model.mu[l.b..l.end]);
            for (i, var) in layer
                .weight_var
                .iter()
                .chain(layer.bias_var.iter())
                .enumerate()
            {
                let s = softplus(model.rho[l.w + i]);
                assert_eq!(var, s * s);
            }
        }
        assert_eq!(
            decoded.layers()[0].weight_var.get(7),
            Some(softplus(3.0).powi(2))
        );
        let mut bad = model.clone();
        bad.mu[0] = f32::NAN;
        assert_eq!(
            try_export(&bad, None),
            Err(tinyvi::Error::NonFinite {
                layer: 0,
                tensor: tinyvi::error::TensorName::WeightMean,
                index: 0
            })
        );
    }
}
