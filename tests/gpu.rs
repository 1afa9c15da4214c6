//! The GPU path: `rethink train --device wgpu` against `--device cpu`, and a checkpoint moved
//! between them. Built only with `--features wgpu`; it needs a wgpu adapter, which on a machine
//! without a GPU is Mesa's software Vulkan driver (lavapipe, Debian's `mesa-vulkan-drivers`),
//! installed by `.ci/run`. A machine without any adapter fails these tests (it does not skip).
//!
//! Tolerance: the CPU runs the fused kernels, the GPU burn's own operations in another order of
//! summation, so the numbers agree to float rounding compounded over the steps: losses within
//! 1e-5 relative (lavapipe: about 1e-7 for the MLP, 1e-6 for the WRN) and accuracies within 0.5
//! points per epoch (one example may fall on the other side of a tie).
#![cfg(feature = "wgpu")]

mod common;

use common::{MNIST, only_run, run_err, run_ok};
use std::path::Path;

/// `(train_loss, train_acc, val_loss, val_acc)` of each epoch of a run's `metrics.csv`.
fn metrics(run: &Path) -> Vec<[f64; 4]> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<f64> = line.split(',').skip(2).take(4).map(|c| c.parse().unwrap()).collect();
            [cells[0], cells[1], cells[2], cells[3]]
        })
        .collect()
}

fn assert_same_metrics(cpu: &[[f64; 4]], gpu: &[[f64; 4]], what: &str) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: epochs");
    for (epoch, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        println!("{what} epoch {epoch}: cpu {c:?} gpu {g:?}");
        for i in [0, 2] {
            assert!((c[i] - g[i]).abs() <= 1e-5 * c[i].abs().max(1e-3), "{what} epoch {epoch}: loss {c:?} vs {g:?}");
        }
        for i in [1, 3] {
            assert!((c[i] - g[i]).abs() <= 0.5, "{what} epoch {epoch}: accuracy {c:?} vs {g:?}");
        }
    }
}

fn mlp_args(out: &Path, epochs: &str, device: &str) -> Vec<String> {
    [
        "train",
        "--data",
        "mnist",
        "--data-dir",
        MNIST,
        "--split-test-set",
        "1000",
        "--train-size",
        "300",
        "--val-size",
        "200",
        "--arch",
        "mlp",
        "--mlp-spec",
        "64",
        "--learning-rate",
        "0.05",
        "--label-corrupt-prob",
        "0.5",
        "--batch-size",
        "100",
        "--epochs",
        epochs,
        "--no-progress",
        "--resume",
        "--device",
        device,
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

fn run(args: &[String]) -> String {
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn devices_lists_the_software_adapter() {
    let listing = run_ok(&["devices"]);
    println!("{listing}");
    assert!(listing.lines().any(|l| l.starts_with("cpu ")), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("wgpu:0")), "no wgpu adapter listed:\n{listing}");
}

#[test]
fn mlp_on_wgpu_matches_cpu_and_a_checkpoint_moves_between_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (cpu, gpu, moved) = (tmp.path().join("cpu"), tmp.path().join("gpu"), tmp.path().join("moved"));
    run(&mlp_args(&cpu, "3", "cpu"));
    run(&mlp_args(&gpu, "3", "wgpu"));
    let want = metrics(&only_run(&cpu));
    assert_same_metrics(&want, &metrics(&only_run(&gpu)), "MLP");

    // One epoch on the GPU, resumed on the CPU, then on the GPU again.
    run(&mlp_args(&moved, "1", "wgpu"));
    run(&mlp_args(&moved, "2", "cpu"));
    run(&mlp_args(&moved, "3", "wgpu"));
    assert_same_metrics(&want, &metrics(&only_run(&moved)), "MLP resumed across devices");
}

#[test]
fn wide_resnet_on_wgpu_matches_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |out: &Path, device: &str| -> Vec<String> {
        [
            "train",
            "--data",
            "synthetic",
            "--synthetic-train",
            "64",
            "--synthetic-test",
            "32",
            "--arch",
            "wide-resnet",
            "--wrn-depth",
            "10",
            "--wrn-widen-factor",
            "1",
            "--batch-size",
            "32",
            "--epochs",
            "1",
            "--no-progress",
            "--device",
            device,
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let (cpu, gpu) = (tmp.path().join("cpu"), tmp.path().join("gpu"));
    run(&args(&cpu, "cpu"));
    run(&args(&gpu, "wgpu"));
    assert_same_metrics(&metrics(&only_run(&cpu)), &metrics(&only_run(&gpu)), "WRN-10-1");
}

#[test]
fn an_adapter_that_is_not_there_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = run_err(&mlp_args(tmp.path(), "1", "wgpu:99").iter().map(String::as_str).collect::<Vec<_>>());
    println!("{err}");
    assert!(err.contains("--device wgpu:99") && err.contains("found"), "{err}");
}
