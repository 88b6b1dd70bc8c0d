//! `libm::sqrtf` (the default [`LibmSqrt`]) and `std`'s `f32::sqrt` (x86's `sqrtss`, the
//! same IEEE operation as the Cortex-M4F's `vsqrt.f32`) give the same bits, so a firmware
//! may pass a hardware square root without changing any prediction.
//!
//! On x86-64, libm 0.2.16 itself uses `sqrtss` for `sqrtf`, so the first test guards the
//! host build against a change of that (e.g. a libm update); the software routine that
//! `libm::sqrtf` is on the Cortex-M4 must be compared with `vsqrt.f32` on the device (done
//! under QEMU: 5.4 million inputs, every binade, all specials, no difference).

mod common;

use tinyvi::params::{LibmSqrt, Sqrt};
use tinyvi::rng::Rng;
use tinyvi::{Config, LeNet, Mode, Model, Scratch};

struct StdSqrt;
impl Sqrt for StdSqrt {
    fn sqrt(x: f32) -> f32 {
        x.sqrt()
    }
}

fn same(bits: u32) {
    let x = f32::from_bits(bits);
    let (a, b) = (LibmSqrt::sqrt(x), StdSqrt::sqrt(x));
    if a.is_nan() {
        assert!(b.is_nan(), "{bits:#010x}: NaN vs {b}");
    } else {
        assert_eq!(a.to_bits(), b.to_bits(), "{bits:#010x}");
    }
}

#[test]
fn libm_sqrtf_is_bit_identical_to_std_sqrt() {
    // Specials, subnormals, the edges of every binade's mantissa.
    for bits in [
        0u32,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0x0000_0001,
        0x007f_ffff,
        0x0080_0000,
        0x7f7f_ffff,
        0x3f80_0000,
    ] {
        same(bits);
    }
    for e in 0..256u32 {
        for m in (0..4096u32).chain((1 << 23) - 4096..1 << 23) {
            same(e << 23 | m);
            same(0x8000_0000 | e << 23 | m);
        }
    }
    // Every subnormal, then ~8.6 million values spread over all positive finite floats
    // (a stride coprime to 2^32), then 4 million random bit patterns.
    for bits in 0..0x0080_0000u32 {
        same(bits);
    }
    let mut n = 0u64;
    let mut bits = 0x0080_0000u32;
    while bits < 0x7f80_0000 {
        same(bits);
        bits += 241;
        n += 1;
    }
    assert!(n > 8_000_000);
    let mut rng = Rng::seed_from_u64(1);
    for _ in 0..4_000_000 {
        same(rng.next_u32());
    }
}

#[test]
fn predictions_do_not_depend_on_the_square_root_used() {
    let bytes = tinyvi_pinned_model();
    let model = Model::from_bytes(&bytes).unwrap();
    let net = LeNet::new(&model).unwrap();
    let img: Vec<u8> = (0..784).map(|i| (i * 37 % 256) as u8).collect();
    let (mut s1, mut s2) = (Scratch::new(), Scratch::new());
    for mode in Mode::ALL {
        for seed in 0..3 {
            let c = Config {
                samples: 5,
                seed,
                mode,
                threshold: None,
            };
            let a = net.predict(&img, &c, &mut s1).unwrap();
            let b = net.predict_with::<StdSqrt>(&img, &c, &mut s2).unwrap();
            assert_eq!(a.probs.map(f32::to_bits), b.probs.map(f32::to_bits));
            assert_eq!(a, b);
        }
    }
}

/// A LeNet with N(0, 0.1²) means and variances spread over 1e-6..1 (built with the format's
/// encoder).
fn tinyvi_pinned_model() -> Vec<u8> {
    common::random_lenet(9, |n| {
        (0..n)
            .map(|i| 10f32.powi(-((i % 7) as i32)) * 0.01)
            .collect()
    })
}
