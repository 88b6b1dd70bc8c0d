//! 30 training steps of the seed recipe on one thread on synthetic images (for a profiler).
//! `valgrind --tool=callgrind target/release/examples/trainprof`

use trainer::model::Lenet;
use trainer::train::{train, TrainConfig};

fn main() {
    let n = 30 * 128;
    let images: Vec<u8> = (0..n * 784).map(|i| ((i * 7919) % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let cfg = TrainConfig {
        threads: 1,
        ..TrainConfig::default()
    };
    let mut model = Lenet::init(0);
    let t = std::time::Instant::now();
    train(&mut model, &images, &labels, &cfg, &mut |_| {}).unwrap();
    println!("30 steps: {:.3} s", t.elapsed().as_secs_f64());
}
