//! End-to-end tests of the paper's randomization tests (issue: randomizations and models).

mod common;

use common::{MNIST, only_run, run_err, run_ok};
use std::path::Path;

fn results(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

/// MLP on 1,000 real MNIST test digits (validated on 2,000 others).
fn mnist_mlp(out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        "--data",
        "mnist",
        "--data-dir",
        MNIST,
        "--split-test-set",
        "1000",
        "--val-size",
        "2000",
        "--arch",
        "mlp",
        "--weight-decay",
        "0",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    results(&only_run(out))
}

#[test]
fn mlp_memorizes_random_labels_of_real_mnist_digits() {
    let out = tempfile::tempdir().unwrap();
    let r = mnist_mlp(
        out.path(),
        &["--label-corrupt-prob", "1", "--learning-rate", "0.05", "--epochs", "80", "--stop-at-train-acc", "100"],
    );
    assert_eq!(r["last"]["train_acc"], 100.0, "{r}");
    let val = r["last"]["val_acc"].as_f64().unwrap();
    assert!(val < 15.0, "clean-label val accuracy should stay near 10%: {val}");
    let fit = &r["time_to_fit"];
    assert_eq!(fit["threshold"], 100.0);
    let epoch = fit["epoch"].as_u64().unwrap();
    assert_eq!(fit["steps"].as_u64().unwrap(), (epoch + 1) * 8, "1000 examples / batch 128 = 8 steps");
    assert_eq!(r["epochs_completed"].as_u64().unwrap(), epoch + 1, "stopped at the fitting epoch");
}

#[test]
fn true_mnist_labels_generalize() {
    let out = tempfile::tempdir().unwrap();
    let r = mnist_mlp(out.path(), &["--learning-rate", "0.01", "--epochs", "5"]);
    let val = r["last"]["val_acc"].as_f64().unwrap();
    assert!(val > 80.0, "true labels should generalize far above chance: {val}");
    assert_eq!(r["randomize"], "none");
}

#[test]
fn partial_corruption_reports_memorization_per_example() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_ok(&[
        "train",
        "--data",
        "mnist",
        "--data-dir",
        MNIST,
        "--split-test-set",
        "600",
        "--val-size",
        "500",
        "--arch",
        "mlp",
        "--learning-rate",
        "0.05",
        "--weight-decay",
        "0",
        "--label-corrupt-prob",
        "0.5",
        "--epochs",
        "30",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let run = only_run(out.path());
    assert!(stdout.lines().nth(1).unwrap().contains("Acc-tr-corrupted:"), "{stdout}");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let (corrupted, clean): (f64, f64) = (first[7].parse().unwrap(), first[8].parse().unwrap());
    assert!(clean > corrupted, "clean examples are learned first: {clean} vs {corrupted}");
    // fitted_epoch.npy: int64 per training example, -1 or an epoch in range.
    let npy = std::fs::read(run.join("fitted_epoch.npy")).unwrap();
    let header = u16::from_le_bytes([npy[8], npy[9]]) as usize + 10;
    assert!(std::str::from_utf8(&npy[10..header]).unwrap().contains("'shape': (600,)"));
    let fitted: Vec<i64> = npy[header..].chunks(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(fitted.len(), 600);
    assert!(fitted.iter().all(|&e| (-1..30).contains(&e)));
    let mask = std::fs::read(run.join("corrupted.npy")).unwrap();
    let mask = &mask[u16::from_le_bytes([mask[8], mask[9]]) as usize + 10..];
    assert_eq!(mask.len(), 600);
    let mean = |want: u8| {
        let v: Vec<f64> =
            fitted.iter().zip(mask).filter(|(e, m)| **m == want && **e >= 0).map(|(e, _)| *e as f64).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    assert!(mean(0) < mean(1), "clean examples are fitted earlier than corrupted ones");
}

#[test]
fn input_randomizations_run_and_are_named() {
    for kind in ["shuffled-pixels", "random-pixels", "gaussian"] {
        let out = tempfile::tempdir().unwrap();
        run_ok(&[
            "train",
            "--data",
            "synthetic",
            "--synthetic-train",
            "64",
            "--synthetic-test",
            "32",
            "--arch",
            "mlp",
            "--randomize",
            kind,
            "--epochs",
            "1",
            "--out",
            out.path().to_str().unwrap(),
        ]);
        let run = only_run(out.path());
        assert!(run.file_name().unwrap().to_str().unwrap().contains(kind), "{run:?}");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["config"]["randomize"], kind);
        assert_eq!(results(&run)["randomize"], kind);
    }
}

#[test]
fn paper_pipeline_models_and_schedule() {
    let out = tempfile::tempdir().unwrap();
    let count = |arch: &[&str]| {
        let mut args = vec!["train", "--data", "synthetic", "--preprocess", "paper", "--epochs", "0"];
        args.extend_from_slice(arch);
        run_ok(&args).trim().to_string()
    };
    assert_eq!(count(&["--arch", "alexnet"]), "Number of parameters: 1387786");
    assert_eq!(count(&["--arch", "inception"]), "Number of parameters: 1649402");
    assert_eq!(count(&["--arch", "mlp", "--mlp-bias"]), "Number of parameters: 1209866");
    assert_eq!(count(&["--arch", "mlp", "--mlp-bias", "--mlp-spec", "512x512x512"]), "Number of parameters: 1735178");
    run_ok(&[
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "64",
        "--synthetic-test",
        "32",
        "--preprocess",
        "paper",
        "--data-augmentation",
        "--arch",
        "alexnet",
        "--learning-rate",
        "0.01",
        "--lr-schedule",
        "exp",
        "--epochs",
        "2",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(only_run(out.path()).join("metrics.csv")).unwrap();
    let lrs: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(lrs.len(), 2);
    assert!((lrs[1] - 0.01 * 0.95).abs() < 1e-12, "{lrs:?}");
}

#[test]
fn bad_randomization_flags_get_one_line_errors() {
    let base = ["train", "--data", "synthetic", "--epochs", "0"];
    for (extra, expect) in [
        (&["--randomize", "labels"][..], "--label-corrupt-prob"),
        (&["--randomize", "none", "--label-corrupt-prob", "0.5"][..], "--randomize"),
        (&["--lr-schedule", "exp", "--lr-decay", "1.5"][..], "--lr-decay"),
        (&["--stop-at-train-acc", "120"][..], "--stop-at-train-acc"),
        (&["--randomize", "pixels"][..], "--randomize"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let line = run_err(&args);
        assert!(line.contains(expect), "{extra:?}: {line}");
    }
    let line =
        run_err(&["train", "--data", "mnist", "--data-dir", MNIST, "--split-test-set", "10000", "--epochs", "0"]);
    assert!(line.contains("--split-test-set"), "{line}");
    let line = run_err(&[
        "train",
        "--data",
        "mnist",
        "--data-dir",
        MNIST,
        "--split-test-set",
        "100",
        "--train-size",
        "101",
        "--epochs",
        "0",
    ]);
    assert!(line.contains("--train-size 101 exceeds the 100"), "{line}");
}
