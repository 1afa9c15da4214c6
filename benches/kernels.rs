//! Per-kernel benchmark of `rethink::ops` on the layer shapes of WRN-28-1 at batch 128: ms per
//! call and GFLOP/s for the convolution forward and backward, ms for the fused batch norm.
//! Tells where a train step's time goes, layer by layer.
//!
//! Run: `cargo bench --bench kernels` (options after `--`: `--reps N --batch-size B`).
//! It prints a table; it asserts nothing.

use clap::Parser;
use rethink::ops::batch_norm::{self, BnGeometry};
use rethink::ops::conv::{ConvGeometry, conv2d_backward, conv2d_forward};
use std::time::Instant;

/// Benchmark options.
#[derive(Parser)]
struct Args {
    /// Timed repetitions per kernel (after one warm-up call).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

/// Mean seconds per call of `f` over `reps` calls after one warm-up.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    start.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let args = Args::parse();
    let n = args.batch_size;
    let conv = |c, size, o, k, stride, pad| ConvGeometry {
        batch: n,
        in_channels: c,
        height: size,
        width: size,
        out_channels: o,
        kernel_h: k,
        kernel_w: k,
        stride,
        pad,
    };
    // (layer, geometry, how many times WRN-28-1 has it)
    let layers = [
        ("stem 3→16 @32", conv(3, 32, 16, 3, 1, 1), 1),
        ("16→16 @32", conv(16, 32, 16, 3, 1, 1), 8),
        ("16→32 s2 @32", conv(16, 32, 32, 3, 2, 1), 1),
        ("1×1 16→32 s2", conv(16, 32, 32, 1, 2, 0), 1),
        ("32→32 @16", conv(32, 16, 32, 3, 1, 1), 7),
        ("32→64 s2 @16", conv(32, 16, 64, 3, 2, 1), 1),
        ("1×1 32→64 s2", conv(32, 16, 64, 1, 2, 0), 1),
        ("64→64 @8", conv(64, 8, 64, 3, 1, 1), 7),
    ];
    println!("batch {n}, {} reps, {} threads", args.reps, rayon::current_num_threads());
    // The machine's reach: one large square GEMM on all threads.
    let size = 1536;
    let (a, b) = (values(size * size), values(size * size));
    let mut c = vec![0.0f32; size * size];
    let gemm_s = time(args.reps, || {
        // SAFETY: three distinct size×size column-major matrices.
        unsafe {
            gemm::gemm(
                size,
                size,
                size,
                c.as_mut_ptr(),
                size as isize,
                1,
                false,
                a.as_ptr(),
                size as isize,
                1,
                b.as_ptr(),
                size as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    });
    println!("reference f32 GEMM {size}³: {:.0} GFLOP/s", 2.0 * (size as f64).powi(3) / gemm_s / 1e9);
    println!("| conv layer | × | forward ms | fwd GFLOP/s | backward ms | bwd GFLOP/s | step share ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (mut total_fwd, mut total_bwd) = (0.0, 0.0);
    for (name, g, count) in layers {
        let x = values(n * g.in_channels * g.height * g.width);
        let w = values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w);
        let dy = values(n * g.out_channels * g.out_h() * g.out_w());
        let flops = 2.0 * (n * g.out_channels * g.out_h() * g.out_w() * g.in_channels * g.kernel_h * g.kernel_w) as f64;
        let fwd = time(args.reps, || conv2d_forward(&g, &x, &w));
        let need_dx = g.in_channels != 3;
        let bwd = time(args.reps, || conv2d_backward(&g, &x, &w, &dy, need_dx));
        let bwd_flops = flops * if need_dx { 2.0 } else { 1.0 };
        total_fwd += fwd * count as f64;
        total_bwd += bwd * count as f64;
        println!(
            "| {name} | {count} | {:.2} | {:.0} | {:.2} | {:.0} | {:.1} |",
            fwd * 1e3,
            flops / fwd / 1e9,
            bwd * 1e3,
            bwd_flops / bwd / 1e9,
            (fwd + bwd) * count as f64 * 1e3
        );
    }
    println!(
        "| **all convs** | | {:.1} | | {:.1} | | {:.1} |",
        total_fwd * 1e3,
        total_bwd * 1e3,
        (total_fwd + total_bwd) * 1e3
    );
    println!();
    println!("| batch norm + ReLU | × | train fwd ms | train bwd ms | eval ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, channels, size, count) in [("16 @32", 16, 32, 10), ("32 @16", 32, 16, 8), ("64 @8", 64, 8, 8)] {
        let g = BnGeometry { batch: n, channels, plane: size * size };
        let x = values(n * channels * size * size);
        let dy = values(x.len());
        let (gamma, beta) = (vec![1.0f32; channels], vec![0.0f32; channels]);
        let out = batch_norm::forward_train(&g, &x, &gamma, &beta, 1e-5, true);
        let fwd = time(args.reps, || batch_norm::forward_train(&g, &x, &gamma, &beta, 1e-5, true));
        let bwd =
            time(args.reps, || batch_norm::backward_train(&g, &x, &dy, &gamma, &beta, &out.mean, &out.var, 1e-5, true));
        let eval = time(args.reps, || batch_norm::forward_eval(&g, &x, &gamma, &beta, &out.mean, &out.var, 1e-5, true));
        println!("| {name} | {count} | {:.2} | {:.2} | {:.2} |", fwd * 1e3, bwd * 1e3, eval * 1e3);
    }
}

/// Deterministic values in [−1, 1).
fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i as u64 * 2654435761) % 2000) as f32 / 1000.0 - 1.0).collect()
}
