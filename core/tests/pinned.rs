//! Pinned predictions: the random stream, the sampler and the arithmetic order are part of
//! the contract (a device's log must replay bit for bit on the host, today and after any
//! change). These bits were produced on x86-64 and, identically, on a Cortex-M4F under QEMU
//! (`mps2-an386`, `thumbv7em-none-eabihf`, release + LTO) from the same model, image and seed.
//! A change to any of them is a breaking change of the inference contract. (`Weights` was
//! re-pinned when it started drawing its fully-connected weights two samples at a time.)

mod common;

use tinyvi::arch::{IMAGE_LEN, IMAGE_SIDE};
use tinyvi::{Config, LeNet, Mode, Model, Scratch};

/// Means N(0, 0.1²) from `Rng::seed_from_u64(0)` (per layer: the weights, then the biases),
/// every variance 1e-4.
fn model_bytes() -> Vec<u8> {
    common::random_lenet(0, |n| vec![1e-4; n])
}

/// A bright bar on a faint pattern.
fn image() -> Vec<u8> {
    (0..IMAGE_LEN)
        .map(|i| {
            let (y, x) = (i / IMAGE_SIDE, i % IMAGE_SIDE);
            if (6..22).contains(&y) && (10..18).contains(&x) {
                (200 + (x * 7 + y * 3) % 56) as u8
            } else {
                ((x * y) % 9) as u8
            }
        })
        .collect()
}

#[test]
fn predictions_are_pinned_bit_for_bit() {
    let bytes = model_bytes();
    assert_eq!(bytes.len(), 355_536);
    let model = Model::from_bytes(&bytes).unwrap();
    let net = LeNet::new(&model).unwrap();
    let img = image();
    let mut scratch = Scratch::new();
    // (mode, class, p̄[0], H[p̄], MI, std[0]) as f32 bits.
    let pinned = [
        (
            Mode::Weights,
            4,
            0x3e16_8f03,
            0x4008_70e1,
            0x3b8b_f600,
            0x3c7d_c5f5,
        ),
        (
            Mode::LocalReparam,
            4,
            0x3e18_30e7,
            0x4008_201e,
            0x3b9d_da00,
            0x3c33_0e67,
        ),
        (Mode::Mean, 4, 0x3e16_e25a, 0x4008_1400, 0, 0),
    ];
    for (mode, class, p0, h, mi, std0) in pinned {
        let config = Config {
            samples: 16,
            seed: 1,
            mode,
            threshold: None,
        };
        let p = net.predict(&img, &config, &mut scratch).unwrap();
        let got = (
            p.class,
            p.probs[0].to_bits(),
            p.entropy.to_bits(),
            p.mutual_information.to_bits(),
            p.std[0].to_bits(),
        );
        assert_eq!(got, (class, p0, h, mi, std0), "{}", mode.name());
    }
}
