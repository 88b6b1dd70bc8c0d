//! Micro-benchmark of the convolution kernels on the training shapes (min of repetitions).
//! `cargo run -p trainer --release --example kernels`

use std::time::Instant;

use trainer::nn::conv::{self, ConvShape};
use trainer::nn::kernels::{dxt, dxt_ld, wx, wx_ld, Aligned, Ld};
use trainer::nn::lenet::{Workspace, PARAMS};

fn best(mut f: impl FnMut()) -> f64 {
    (0..30)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let n = 16;
    let v = |len: usize| {
        (0..len)
            .map(|i| (i as f32 * 0.37).sin())
            .collect::<Vec<f32>>()
    };
    let (c1, c2) = (n * 576, n * 64);
    let (w1, col1, mut y1) = (v(18 * 25), v(25 * c1), v(18 * c1));
    let (w2, col2, mut y2) = (v(16 * 150), v(150 * c2), v(16 * c2));
    let mut dw = v(16 * 150);
    let mut dcol = v(150 * c2);
    let w2t = v(150 * 16);
    let fl = |m: usize, k: usize, nn: usize, us: f64| 2.0 * (m * k * nn) as f64 / us / 1e3;
    let t = best(|| wx(&w1, 18, 25, &col1, c1, &mut y1));
    println!(
        "conv1 fwd  18x25x{c1}: {t:8.1} µs {:.1} GFLOP/s",
        fl(18, 25, c1, t)
    );
    for pad in [16usize, 48, 240] {
        let c = c1 + pad;
        let (colp, mut yp) = (v(25 * c), v(18 * c));
        let t = best(|| wx(&w1, 18, 25, &colp, c, &mut yp));
        println!(
            "conv1 fwd padded ld {c}: {t:8.1} µs {:.1} GFLOP/s",
            fl(18, 25, c, t)
        );
        let t = best(|| dxt(&yp, 18, &colp, 25, c, &mut dw[..450]));
        println!(
            "conv1 dW padded ld {c}: {t:8.1} µs {:.1} GFLOP/s",
            fl(18, 25, c, t)
        );
        let c = c2 + pad;
        let (colp, mut yp) = (v(150 * c), v(16 * c));
        let t = best(|| wx(&w2, 16, 150, &colp, c, &mut yp));
        println!(
            "conv2 fwd padded ld {c}: {t:8.1} µs {:.1} GFLOP/s",
            fl(16, 150, c, t)
        );
    }
    for pad in [0usize, 16, 32, 48, 64, 96, 128] {
        let ld = c2 + pad;
        let (colp, mut yp) = (v(150 * ld), v(16 * ld));
        let l = Ld { a: ld, b: ld };
        let t = best(|| wx_ld(&w2, 16, 150, &colp, c2, &mut yp, l));
        let t2 = best(|| dxt_ld(&yp, 16, &colp, 150, c2, &mut dw, l));
        let (mut cola, mut ya) = (Aligned::zeros(150 * ld), Aligned::zeros(16 * ld));
        cola.copy_from_slice(&colp);
        ya.copy_from_slice(&yp);
        let t3 = best(|| wx_ld(&w2, 16, 150, &cola, c2, &mut ya, l));
        let t4 = best(|| dxt_ld(&ya, 16, &cola, 150, c2, &mut dw, l));
        println!("conv2 ld {ld}: fwd {t:6.1} µs, dW {t2:6.1} µs; aligned fwd {t3:6.1} dW {t4:6.1}");
    }
    let t = best(|| dxt(&y1, 18, &col1, 25, c1, &mut dw[..450]));
    println!(
        "conv1 dW   18x25x{c1}: {t:8.1} µs {:.1} GFLOP/s",
        fl(18, 25, c1, t)
    );
    let t = best(|| wx(&w2, 16, 150, &col2, c2, &mut y2));
    println!(
        "conv2 fwd  16x150x{c2}: {t:8.1} µs {:.1} GFLOP/s",
        fl(16, 150, c2, t)
    );
    let t = best(|| dxt(&y2, 16, &col2, 150, c2, &mut dw));
    println!(
        "conv2 dW   16x150x{c2}: {t:8.1} µs {:.1} GFLOP/s",
        fl(16, 150, c2, t)
    );
    let t = best(|| wx(&w2t, 150, 16, &y2, c2, &mut dcol));
    println!(
        "conv2 dcol 150x16x{c2}: {t:8.1} µs {:.1} GFLOP/s",
        fl(16, 150, c2, t)
    );
    let s1 = ConvShape {
        cin: 1,
        cout: 6,
        k: 5,
        h: 28,
    };
    let x = v(n * 784);
    let mut col = v(25 * c1);
    let t = best(|| conv::im2col(s1, &x, n, &mut col));
    println!("im2col1: {t:8.1} µs");
    let s2 = ConvShape {
        cin: 6,
        cout: 16,
        k: 5,
        h: 12,
    };
    let p1 = v(n * 864);
    let mut col2b = v(150 * c2);
    let t = best(|| conv::im2col(s2, &p1, n, &mut col2b));
    println!("im2col2: {t:8.1} µs");
    let mut dp1 = v(n * 864);
    let t = best(|| conv::col2im(s2, &col2b, n, &mut dp1));
    println!("col2im2: {t:8.1} µs");
    let (xf, wf, bf) = (v(n * 256), v(120 * 256), v(120));
    let mut yf = v(n * 120);
    let (mut dwf, mut dbf, mut dxf) = (v(120 * 256), v(120), v(n * 256));
    let t = best(|| trainer::nn::linear::forward(&xf, &wf, &bf, n, 256, &mut yf, true));
    println!("fc1 fwd: {t:8.1} µs");
    let t = best(|| {
        trainer::nn::linear::backward(
            &xf,
            &wf,
            &yf,
            n,
            256,
            120,
            &mut dwf,
            &mut dbf,
            Some(&mut dxf),
        )
    });
    println!("fc1 bwd: {t:8.1} µs");
    // Whole shard step (3 samples).
    let mut ws = Workspace::new(n, 3, true);
    ws.x.copy_from_slice(&v(n * 784));
    let wts: Vec<Vec<f32>> = (0..3)
        .map(|s| {
            (0..PARAMS)
                .map(|i| ((i + s) as f32 * 0.1).sin() * 0.1)
                .collect()
        })
        .collect();
    let refs: Vec<&[f32]> = wts.iter().map(|w| w.as_slice()).collect();
    let labels = vec![3u8; n];
    let mut grads = vec![vec![0.0f32; PARAMS]; 3];
    let t = best(|| {
        ws.forward_backward(n, &labels, &refs, 0.01, &mut grads);
    });
    println!(
        "shard fwd+bwd (16 images × 3 samples): {t:8.1} µs → epoch ≈ {:.2} s on 1 core",
        t * 3750.0 / 1e6
    );
    let t = best(|| {
        ws.prepare_input(n);
        ws.conv1(n, &refs);
    });
    println!("  of which conv1 fwd incl. im2col + pool: {t:8.1} µs");
    let t = best(|| ws.tail_forward(n, 0, refs[0]));
    println!("  tail forward (1 sample): {t:8.1} µs");
    let t = best(|| {
        ws.softmax_ce(n, &labels, 0.01);
        ws.tail_backward(n, 0, refs[0], &mut grads[0]);
    });
    println!("  tail backward (1 sample): {t:8.1} µs");
    let t = best(|| ws.conv1_backward(n, 3, &mut grads));
    println!("  conv1 backward (3 samples): {t:8.1} µs");
}
