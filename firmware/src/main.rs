//! tinyvi on a Cortex-M4F: Monte Carlo inference of the embedded variational LeNet over the
//! embedded images, one defmt line per image, then memory, cost and OOD AUROC.
//!
//! The log is the contract with `trainer compare` (`trainer/src/compare.rs`): lines start
//! with `CONFIG `, `RESULT `, `SUMMARY ` or `DONE`, followed by `key=value` fields. Exact
//! values are logged as the hex bits of the f32 (`f32::to_bits`); the human-readable floats
//! after `|` are for people only.
#![no_std]
#![no_main]

mod hwsqrt;
mod memory;
mod platform;

use cortex_m_rt::entry;
use tinyvi::arch::{CLASSES, IMAGE_LEN};
use tinyvi::infer::{Config, LeNet, Mode, Scratch};
use tinyvi::report;
use tinyvi::rng::image_seed;
use tinyvi::samples::{Dataset, SampleSet};
use tinyvi::Model;

use hwsqrt::HwSqrt;
use platform::{exit, Cost};

/// Build-time settings from `build.rs`: `MODE`, `MC_SAMPLES`, `SEED`, `IMAGES`.
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// Bytes with the alignment of a `u32`, so that the model's 4-aligned arrays are 4-aligned
/// in memory too.
#[repr(C, align(4))]
struct Aligned<B: ?Sized>(B);

/// The model file, read in place from flash.
static MODEL: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.postcard")));
/// The sample-set file, read in place from flash; each image is decoded into a 784-byte
/// buffer just before it is classified.
static SAMPLES: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/samples.bin")));

/// The stored CRC-32 at the end of a file: identifies it in the log (0 for no CRC).
fn trailer_crc(bytes: &[u8]) -> u32 {
    report::trailer_crc(bytes).unwrap_or(0)
}

/// The scores of the out-of-distribution (`out`) or in-distribution images.
fn scores<'a>(
    score: &'a [f32],
    dataset: &'a [Dataset],
    out: bool,
) -> impl Iterator<Item = f32> + Clone + 'a {
    score
        .iter()
        .zip(dataset)
        .filter(move |(_, d)| d.is_ood() == out)
        .map(|(&v, _)| v)
}

#[cfg(feature = "provoke-stack-overflow")]
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u32) -> u32 {
    let mut frame = [depth; 64];
    // Keep the frame alive and the recursion real.
    let frame = core::hint::black_box(&mut frame);
    frame[1] = recurse(depth + 1);
    frame[0].wrapping_add(frame[1])
}

#[entry]
fn main() -> ! {
    static mut SCRATCH: Scratch = Scratch::new();
    let scratch: &'static mut Scratch = SCRATCH;

    let Some(mut cp) = cortex_m::Peripherals::take() else {
        defmt::error!("ERROR core peripherals already taken");
        exit(false)
    };
    platform::guard_below_ram(&mut cp.MPU);
    let cost = Cost::start(cp.SYST, cp.DCB, cp.DWT);

    #[cfg(feature = "provoke-stack-overflow")]
    {
        defmt::info!("PROVOKE stack overflow");
        let n = recurse(0);
        defmt::info!("recursion returned {=u32}", n);
    }
    #[cfg(feature = "provoke-hardfault")]
    {
        defmt::info!("PROVOKE hardfault");
        // SAFETY: not safe at all on purpose: 0x3000_0000 is unmapped on mps2-an386 and on
        // the nRF52840, so this read faults.
        let v = unsafe { core::ptr::read_volatile(0x3000_0000 as *const u32) };
        defmt::info!("read {=u32}", v);
    }

    #[cfg(feature = "provoke-panic")]
    {
        defmt::info!("PROVOKE panic");
        if core::hint::black_box(true) {
            panic!("provoked");
        }
    }

    let model = match Model::from_bytes(&MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("ERROR model does not decode: {}", e);
            exit(false)
        }
    };
    let samples = match SampleSet::from_bytes(&SAMPLES.0) {
        Ok(s) => s,
        Err(e) => {
            defmt::error!("ERROR sample set does not decode: {}", e);
            exit(false)
        }
    };
    let Some(mode) = Mode::from_name(config::MODE) else {
        defmt::error!(
            "ERROR TINYVI_MODE={=str} is not a sampling mode",
            config::MODE
        );
        exit(false)
    };
    let lenet = match LeNet::new(&model) {
        Ok(l) => l,
        Err(e) => {
            defmt::error!("ERROR model is not the LeNet: {}", e);
            exit(false)
        }
    };

    // The hardware square root must give libm's bits (the host replay's) before it is used.
    match hwsqrt::check() {
        Ok(()) => defmt::info!(
            "SQRT vsqrt.f32 = libm::sqrtf on {=u32} inputs (every binade, both signs, subnormals, ±0, ±inf, NaN)",
            hwsqrt::CHECKED
        ),
        Err((m, count)) => {
            defmt::error!(
                "ERROR SQRT vsqrt.f32 differs from libm::sqrtf on {=u32} of {=u32} inputs, first x={=u32:#x} vsqrt={=u32:#x} libm={=u32:#x}",
                count,
                hwsqrt::CHECKED,
                m.x,
                m.hw,
                m.libm
            );
            exit(false)
        }
    }

    let (expected, counted) = cost.calibrate();
    defmt::info!(
        "CONFIG mode={=str} samples={=u32} seed={=u64} images={=u32} model_crc={=u32:#x} samples_crc={=u32:#x} cost_unit={=str} calibration={=u64}/{=u64} scratch={=u32}",
        mode.name(),
        config::MC_SAMPLES,
        config::SEED,
        config::IMAGES as u32,
        trailer_crc(&MODEL.0),
        samples.checksum(),
        Cost::UNIT,
        counted,
        expected,
        Scratch::BYTES as u32
    );

    let mut mi = [0.0f32; config::IMAGES];
    let mut neg_max_p = [0.0f32; config::IMAGES];
    let mut dataset = [Dataset::Mnist; config::IMAGES];
    let (mut total, mut min, mut max) = (0u64, u64::MAX, 0u64);

    let mut pixels = [0u8; IMAGE_LEN];
    for (i, record) in samples.iter().take(config::IMAGES).enumerate() {
        let sample = record.decode(&mut pixels);
        let i32 = i as u32;
        let cfg = Config {
            samples: config::MC_SAMPLES,
            seed: image_seed(config::SEED, i32),
            mode,
            threshold: model.ood_threshold(),
        };
        let t0 = cost.now();
        let p = match lenet.predict_with::<HwSqrt>(sample.pixels, &cfg, scratch) {
            Ok(p) => p,
            Err(e) => {
                defmt::error!("ERROR image {=u32}: {}", i32, e);
                exit(false)
            }
        };
        let spent = cost.since(t0);
        total += spent;
        min = min.min(spent);
        max = max.max(spent);
        let bits: [u32; CLASSES] = p.probs.map(f32::to_bits);
        defmt::info!(
            "RESULT i={=u32} dataset={=str} index={=u32} label={=u8} class={=u8} ood={=bool} probs={=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x},{=u32:#x} entropy={=u32:#x} mi={=u32:#x} cost={=u64} | p={=f32} H={=f32} MI={=f32}",
            i32,
            sample.dataset.name(),
            sample.index,
            sample.label,
            p.class,
            p.ood,
            bits[0],
            bits[1],
            bits[2],
            bits[3],
            bits[4],
            bits[5],
            bits[6],
            bits[7],
            bits[8],
            bits[9],
            p.entropy.to_bits(),
            p.mutual_information.to_bits(),
            spent,
            p.confidence,
            p.entropy,
            p.mutual_information
        );
        if let (Some(m), Some(n), Some(d)) =
            (mi.get_mut(i), neg_max_p.get_mut(i), dataset.get_mut(i))
        {
            *m = p.mutual_information;
            *n = -p.confidence;
            *d = sample.dataset;
        }
    }

    let n = config::IMAGES as u64;
    defmt::info!(
        "SUMMARY cost_mean={=u64} cost_min={=u64} cost_max={=u64} cost_unit={=str}",
        total.checked_div(n).unwrap_or(0),
        if n == 0 { 0 } else { min },
        max,
        Cost::UNIT
    );
    let n_in = dataset.iter().filter(|d| !d.is_ood()).count() as u32;
    let n_out = dataset.iter().filter(|d| d.is_ood()).count() as u32;
    let auroc_mi = report::auroc(scores(&mi, &dataset, false), scores(&mi, &dataset, true));
    let auroc_maxp = report::auroc(
        scores(&neg_max_p, &dataset, false),
        scores(&neg_max_p, &dataset, true),
    );
    defmt::info!(
        "SUMMARY ood_in={=u32} ood_out={=u32} auroc_mi={=u32:#x} auroc_neg_max_p={=u32:#x} | AUROC MI={=f32} -max p={=f32}",
        n_in,
        n_out,
        auroc_mi.unwrap_or(f32::NAN).to_bits(),
        auroc_maxp.unwrap_or(f32::NAN).to_bits(),
        auroc_mi.unwrap_or(f32::NAN),
        auroc_maxp.unwrap_or(f32::NAN)
    );
    let (flash, ram, stack, peak) = (
        memory::flash_used() as u32,
        memory::static_ram() as u32,
        memory::stack_size() as u32,
        memory::stack_peak() as u32,
    );
    defmt::info!(
        "SUMMARY flash={=u32} model={=u32} images_bytes={=u32} static_ram={=u32} stack_peak={=u32} stack_size={=u32} ram_total={=u32}",
        flash,
        MODEL.0.len() as u32,
        SAMPLES.0.len() as u32,
        ram,
        peak,
        stack,
        ram + peak
    );
    defmt::info!("DONE ok");
    exit(true)
}
