//! Single-thread host throughput of `LeNet::predict`, 16 samples per image, per mode.
//!
//! ```text
//! cargo run -p tinyvi --release --example bench [-- MODEL_FILE [IDX_IMAGES]]
//! ```
//! Without a model file a random LeNet (He-scaled means, small variances) is used; the cost
//! does not depend on the values. Images come from an IDX file when given (e.g.
//! `data/t10k-images-idx3-ubyte`), else are random bytes. Prints the median of 5 timed runs
//! after a warm-up, with min and max, by wall-clock time and (on Linux) by the thread's CPU
//! time, which is the fairer figure on a machine shared with other jobs.

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use tinyvi::arch::IMAGE_LEN;
use tinyvi::rng::{image_seed, Rng};
use tinyvi::{Config, LeNet, Mode, Model, Scratch};

/// A random LeNet: means N(0, 0.1²), every variance 1e-6.
fn random_model() -> Vec<u8> {
    common::random_lenet(0, |n| vec![1e-6; n])
}

/// This thread's user + system CPU time in seconds (Linux; 10 ms resolution), if known.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes = match args.first() {
        Some(path) => std::fs::read(path).expect("read model"),
        None => random_model(),
    };
    let images: Vec<Vec<u8>> = match args.get(1) {
        Some(path) => {
            let raw = std::fs::read(path).expect("read images");
            raw.get(16..)
                .expect("IDX header")
                .chunks_exact(IMAGE_LEN)
                .take(2000)
                .map(<[u8]>::to_vec)
                .collect()
        }
        None => {
            let mut rng = Rng::seed_from_u64(1);
            (0..256)
                .map(|_| (0..IMAGE_LEN).map(|_| rng.next_u32() as u8).collect())
                .collect()
        }
    };
    let model = Model::from_bytes(&bytes).expect("model");
    let net = LeNet::new(&model).expect("LeNet");
    let mut scratch = Scratch::new();
    println!(
        "tinyvi predict, 1 thread, 16 samples/image, Scratch = {} bytes",
        Scratch::BYTES
    );
    for mode in [Mode::LocalReparam, Mode::Weights, Mode::Mean] {
        let run = |n: usize, scratch: &mut Scratch| -> (f64, f64) {
            let start = Instant::now();
            let cpu_start = thread_cpu_seconds();
            let mut classes = 0u32;
            for i in 0..n {
                let config = Config {
                    samples: 16,
                    seed: image_seed(7, i as u32),
                    mode,
                    threshold: None,
                };
                let p = net
                    .predict(&images[i % images.len()], &config, scratch)
                    .expect("predict");
                classes = classes.wrapping_add(p.class as u32);
            }
            std::hint::black_box(classes);
            let wall = n as f64 / start.elapsed().as_secs_f64();
            let cpu = match (cpu_start, thread_cpu_seconds()) {
                (Some(a), Some(b)) if b > a => n as f64 / (b - a),
                _ => f64::NAN,
            };
            (wall, cpu)
        };
        // Warm up and size the runs to ~0.5 s each.
        let (rate, _) = run(50, &mut scratch);
        let n = ((rate * 1.0) as usize).max(50);
        let runs: Vec<(f64, f64)> = (0..5).map(|_| run(n, &mut scratch)).collect();
        let sorted = |f: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (wall, cpu) = (sorted(|r| r.0), sorted(|r| r.1));
        println!(
            "{:>14}: {:>7.0} images/s wall (min {:.0}, max {:.0}); {:>7.0} per CPU-second \
             (min {:.0}, max {:.0}); median of 5 × {n} images",
            mode.name(),
            wall[2],
            wall[0],
            wall[4],
            cpu[2],
            cpu[0],
            cpu[4]
        );
    }
}
