//! Seed recipe on the real MNIST: seconds per epoch, evaluation seconds for 16 samples ×
//! 20,000 images, and test accuracy/NLL after training.
//!
//! `cargo run -p trainer --release --example recipe -- [seed] [threads] [epochs]`
//! (data from the workspace's `data/`, or `$TINYVI_DATA`; fetched when missing).

mod common;

use std::time::Instant;

use trainer::evaluate::evaluate_with_threads;
use trainer::model::Lenet;
use trainer::train::{train, TrainConfig};

use common::cpu_seconds;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).map_or(0, |s| s.parse().unwrap());
    let threads: usize = args.get(2).map_or(0, |s| s.parse().unwrap());
    let epochs: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let (train_set, test) = trainer::data::workspace::mnist();
    let (xtr, ytr) = (&train_set.images, &train_set.labels);
    let (xte, yte) = (&test.images, &test.labels);
    let cfg = TrainConfig {
        seed,
        threads,
        epochs,
        ..TrainConfig::default()
    };
    let mut model = Lenet::init(seed);
    let t = Instant::now();
    let c = cpu_seconds();
    let mut last = None;
    let s = train(&mut model, xtr, ytr, &cfg, &mut |i| last = Some(i)).expect("train");
    let train_s = t.elapsed().as_secs_f64();
    let train_cpu = cpu_seconds() - c;
    println!(
        "train: {epochs} epoch(s) in {train_s:.2} s ({:.2} s/epoch, {train_cpu:.2} CPU s), last-epoch loss {:.4}, batch acc {:.4}, last step {:?}",
        train_s / epochs as f64,
        s.last_epoch_loss,
        s.last_epoch_accuracy,
        last
    );
    // Evaluation workload of the trainer issue: 16 samples × 20,000 images.
    let mut both = xte.clone();
    both.extend_from_slice(xte);
    let t = Instant::now();
    let c = cpu_seconds();
    let _ = evaluate_with_threads(&model, &both, 16, seed, threads).unwrap();
    println!(
        "eval 16 × 20000 images: {:.3} s ({:.2} CPU s)",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c
    );
    let out = evaluate_with_threads(&model, xte, 16, seed, threads).unwrap();
    let n = yte.len() as f64;
    let acc = out
        .probs
        .iter()
        .zip(yte)
        .filter(|(p, &y)| {
            let am = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            am == y as usize
        })
        .count() as f64
        / n;
    let nll = out
        .probs
        .iter()
        .zip(yte)
        .map(|(p, &y)| -(p[y as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / n;
    println!("test (10,000, 16 samples): acc {acc:.4} nll {nll:.4}");
    if std::env::var_os("RECIPE_EVAL_SEEDS").is_some() {
        let mean = model.mean_forward(xte);
        let correct = |probs: &[[f32; 10]]| {
            probs
                .iter()
                .zip(yte)
                .filter(|(p, &y)| {
                    (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() == y as usize
                })
                .count() as f64
                / n
        };
        println!("  mean weights: acc {:.4}", correct(&mean));
        for es in 1..6u64 {
            let o = evaluate_with_threads(&model, xte, 16, seed + 1000 * es, threads).unwrap();
            println!(
                "  eval seed {}: acc {:.4}",
                seed + 1000 * es,
                correct(&o.probs)
            );
        }
    }
}
