//! `rethink train --epochs 0` builds each architecture and prints its parameter count.
//!
//! The synthetic data are 32×32×3. The small Inception's count does not depend on the image size
//! (global mean pool), so the paper's 1,649,402 shows here; AlexNet's and the MLPs' first layers
//! grow with the image (their 28×28×3 counts are checked in the unit tests of src/model/).

use std::process::Command;

/// The parameter count `rethink train` prints for these extra flags.
fn param_count(args: &[&str]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rethink"))
        .args(["train", "--data", "synthetic", "--synthetic-train", "16", "--synthetic-test", "8"])
        .args(["--epochs", "0", "--no-progress", "--out", out])
        .args(args)
        .output()
        .expect("rethink runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Number of parameters: "))
        .unwrap_or_else(|| panic!("{args:?}: no parameter count in {stdout:?}"));
    line.trim().parse().unwrap()
}

#[test]
fn inception_matches_the_paper_with_and_without_batch_norm() {
    assert_eq!(param_count(&["--arch", "inception"]), 1_649_402);
    assert_eq!(param_count(&["--arch", "inception-nobn"]), 1_649_402);
}

#[test]
fn alexnet_and_mlps_on_32x32() {
    // AlexNet: the first FC layer sees 64·8·8 features instead of the paper's 64·7·7.
    assert_eq!(param_count(&["--arch", "alexnet"]), 1_387_786 + 64 * (64 - 49) * 384);
    // MLP 1×512 with biases: 3072·512 + 512 + 512·10 + 10.
    assert_eq!(param_count(&["--arch", "mlp", "--mlp-bias"]), 1_578_506);
    assert_eq!(param_count(&["--arch", "mlp"]), 1_578_506 - 512 - 10);
    assert_eq!(
        param_count(&["--arch", "mlp", "--mlp-spec", "512x512x512", "--mlp-bias"]),
        1_578_506 + 2 * (512 * 512 + 512)
    );
}

#[test]
fn cifar100_classes_resize_the_classifier() {
    assert_eq!(param_count(&["--arch", "inception", "--num-classes", "100"]), 1_649_402 + 90 * 337);
}
