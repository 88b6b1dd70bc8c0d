//! Helpers shared by the integration tests (and the `bench` example) of `tinyvi`.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use tinyvi::arch::{LENET_INPUT, LENET_LAYERS};
use tinyvi::format::{encode, encoded_len, Activation, LayerKind, LayerSpec, ModelSpec};
use tinyvi::gauss::standard_normal;
use tinyvi::rng::Rng;

/// One [`LayerSpec`] per `(kind, activation)` of `kinds`, borrowing the four arrays
/// (weight means, weight variances, bias means, bias variances) of each layer from `arrays`.
pub fn layer_specs<'a>(
    kinds: &[(LayerKind, Activation)],
    arrays: &'a [[Vec<f32>; 4]],
) -> Vec<LayerSpec<'a>> {
    kinds
        .iter()
        .zip(arrays)
        .map(|(&(kind, then), [wm, wv, bm, bv])| LayerSpec {
            kind,
            then,
            weight_mean: wm,
            weight_var: wv,
            bias_mean: bm,
            bias_var: bv,
        })
        .collect()
}

/// An encoded LeNet (no OOD threshold) with means N(0, 0.1²) from `Rng::seed_from_u64(seed)`
/// (per layer: the weights, then the biases) and variances `var(n)` for a tensor of `n`.
pub fn random_lenet(seed: u64, var: impl Fn(usize) -> Vec<f32>) -> Vec<u8> {
    let mut rng = Rng::seed_from_u64(seed);
    let arrays: Vec<[Vec<f32>; 4]> = LENET_LAYERS
        .iter()
        .map(|(k, _)| {
            let (nw, nb) = (k.weight_count() as usize, k.bias_count() as usize);
            let mut normal = |n: usize| -> Vec<f32> {
                (0..n).map(|_| standard_normal(&mut rng) * 0.1).collect()
            };
            let (wm, bm) = (normal(nw), normal(nb));
            [wm, var(nw), bm, var(nb)]
        })
        .collect();
    let layers = layer_specs(&LENET_LAYERS, &arrays);
    let spec = ModelSpec {
        input: LENET_INPUT,
        classes: 10,
        ood: None,
        layers: &layers,
    };
    let mut buf = vec![0u8; encoded_len(&spec).unwrap()];
    encode(&spec, &mut buf).unwrap();
    buf
}
