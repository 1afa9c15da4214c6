//! End-to-end tests of `rethink train` and `rethink labels`: the binary, as a user runs it.

mod common;

use common::{Reply, md5_hex, only_run, run_err, run_ok, serve};
use rethink::data::cifar::write_cifar10_archive;
use rethink::data::corrupt::{DEMO_CORRUPTION_SEED, corrupt_labels};
use rethink::data::synthetic::{SyntheticSpec, generate};
use std::path::Path;

/// One row of `metrics.csv`.
#[derive(Debug, PartialEq)]
struct Row {
    epoch: usize,
    values: Vec<String>, // lr, train_loss, train_acc, val_loss, val_acc (seconds dropped)
}

fn metrics(run_dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,train_acc_corrupted,train_acc_clean,steps")
    );
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            Row { epoch: cells[0].parse().unwrap(), values: cells[1..6].iter().map(|s| s.to_string()).collect() }
        })
        .collect()
}

fn acc(row: &Row, column: usize) -> f64 {
    row.values[column].parse().unwrap()
}

#[test]
fn help_lists_every_flag() {
    let help = run_ok(&["train", "--help"]);
    for flag in [
        "--data ",
        "--num-classes",
        "--data-augmentation",
        "--no-data-augmentation",
        "--label-corrupt-prob",
        "--batch-size",
        "--epochs",
        "--learning-rate",
        "--momentum",
        "--weight-decay",
        "--eval-full-trainset",
        "--no-eval-full-trainset",
        "--arch",
        "--wrn-depth",
        "--wrn-widen-factor",
        "--wrn-droprate",
        "--mlp-spec",
        "--name",
        "--data-dir",
        "--download",
        "--seed",
        "--val-labels",
        "--out",
        "--resume",
    ] {
        assert!(help.contains(flag), "train --help lacks {flag}");
    }
}

#[test]
fn parameter_counts_match_the_demo() {
    let out = run_ok(&["train", "--data", "synthetic", "--epochs", "0"]);
    assert_eq!(out.trim(), "Number of parameters: 369498");
    let out = run_ok(&["train", "--data", "synthetic", "--epochs", "0", "--arch", "mlp", "--mlp-spec", "512"]);
    assert_eq!(out.trim(), "Number of parameters: 1577984");
}

#[test]
fn bad_flags_get_one_line_errors_naming_the_flag() {
    let base = ["train", "--data", "synthetic", "--epochs", "0"];
    for (extra, expect) in [
        (&["--label-corrupt-prob", "1.5"][..], "--label-corrupt-prob"),
        (&["--label-corrupt-prob", "-0.1"][..], "--label-corrupt-prob"),
        (&["--mlp-spec", "512xabc"][..], "--mlp-spec"),
        (&["--wrn-depth", "27"][..], "--wrn-depth"),
        (&["--batch-size", "0"][..], "--batch-size"),
        (&["--learning-rate", "nan"][..], "--learning-rate"),
        (&["--num-classes", "1"][..], "--num-classes"),
        (&["--arch", "resnet"][..], "--arch"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let line = run_err(&args);
        assert!(line.contains(expect), "{extra:?}: {line}");
    }
}

#[test]
fn missing_dataset_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let line = run_err(&["train", "--data-dir", dir.path().to_str().unwrap(), "--epochs", "0"]);
    assert!(line.contains("data_batch_1.bin") || line.contains(dir.path().to_str().unwrap()), "{line}");
}

/// A small random-label run of `arch_flags` on synthetic data: train accuracy must reach
/// 100% while validation accuracy (true labels) stays near chance.
fn assert_memorizes(arch_flags: &[&str], epochs: usize) {
    let out = tempfile::tempdir().unwrap();
    let epochs = epochs.to_string();
    let mut args = vec![
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "256",
        "--synthetic-test",
        "400",
        "--label-corrupt-prob",
        "1.0",
        "--weight-decay",
        "0",
        "--epochs",
        &epochs,
        "--out",
        out.path().to_str().unwrap(),
    ];
    args.extend_from_slice(arch_flags);
    let stdout = run_ok(&args);
    let rows = metrics(&only_run(out.path()));
    let last = rows.last().unwrap();
    assert_eq!(acc(last, 2), 100.0, "train accuracy did not reach 100%:\n{stdout}");
    assert!(acc(last, 4) < 20.0, "val accuracy should stay near chance:\n{stdout}");
}

#[test]
fn mlp_memorizes_random_labels() {
    assert_memorizes(&["--arch", "mlp", "--learning-rate", "0.01"], 12);
}

#[test]
fn narrow_wide_resnet_memorizes_random_labels() {
    assert_memorizes(&["--wrn-depth", "10", "--batch-size", "64"], 25);
}

#[test]
fn true_labels_generalize() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&[
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "1000",
        "--synthetic-test",
        "400",
        "--arch",
        "mlp",
        "--learning-rate",
        "0.01",
        "--epochs",
        "4",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let rows = metrics(&only_run(out.path()));
    assert!(acc(rows.last().unwrap(), 4) > 40.0, "{rows:?}");
}

#[test]
fn run_directory_holds_log_config_metrics_and_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_ok(&[
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "64",
        "--synthetic-test",
        "32",
        "--arch",
        "mlp",
        "--epochs",
        "2",
        "--label-corrupt-prob",
        "1",
        "--name",
        "t",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let run = only_run(out.path());
    assert_eq!(run.file_name().unwrap().to_str().unwrap(), "t_synthetic_corrupt1_mlp512_lr0.1_mmt0.9_Wd0.0001_NoAug");
    let log = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("LOG."))
        .expect("LOG.<yymmdd>.txt exists");
    assert_eq!(std::fs::read_to_string(log).unwrap(), stdout, "log and console differ");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "Number of parameters: 1577984");
    assert!(lines[1].starts_with("000: Acc-tr: ") && lines[1].contains(", L-val: "), "{}", lines[1]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["seed"], 0);
    assert_eq!(config["config"]["label_corrupt_prob"], 1.0);
    assert!(config["version"].is_string());
    assert_eq!(metrics(&run).len(), 2);
    assert!(run.join("checkpoint.safetensors").exists());
}

#[test]
fn resume_gives_the_same_metrics_as_an_uninterrupted_run() {
    let flags = [
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "96",
        "--synthetic-test",
        "32",
        "--wrn-depth",
        "10",
        "--wrn-droprate",
        "0.3",
        "--data-augmentation",
        "--batch-size",
        "32",
        "--label-corrupt-prob",
        "0.5",
        "--seed",
        "7",
    ];
    let straight = tempfile::tempdir().unwrap();
    let resumed = tempfile::tempdir().unwrap();
    let with = |dir: &Path, extra: &[&str]| {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend_from_slice(&["--out", dir.to_str().unwrap()]);
        args.extend_from_slice(extra);
        run_ok(&args)
    };
    with(straight.path(), &["--epochs", "4"]);
    with(resumed.path(), &["--epochs", "2"]);
    with(resumed.path(), &["--epochs", "4", "--resume"]);
    let a = metrics(&only_run(straight.path()));
    let b = metrics(&only_run(resumed.path()));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
}

#[test]
fn resume_refuses_corrupt_or_mismatched_checkpoints() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let base = [
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "64",
        "--synthetic-test",
        "32",
        "--arch",
        "mlp",
        "--out",
        o,
    ];
    let args = |extra: &[&'static str]| -> Vec<&str> { base.iter().chain(extra).copied().collect() };
    run_ok(&args(&["--epochs", "1"]));
    let line = run_err(&args(&["--epochs", "2"]));
    assert!(line.contains("--resume"), "{line}");
    let line = run_err(&args(&["--epochs", "2", "--resume", "--seed", "1"]));
    assert!(line.contains("seed"), "{line}");
    let ckpt = only_run(out.path()).join("checkpoint.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let line = run_err(&args(&["--epochs", "2", "--resume"]));
    assert!(line.contains("corrupt checkpoint") && line.contains("checkpoint.safetensors"), "{line}");
}

#[test]
fn nan_loss_stops_with_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let line = run_err(&[
        "train",
        "--data",
        "synthetic",
        "--synthetic-train",
        "256",
        "--synthetic-test",
        "32",
        "--arch",
        "mlp",
        "--learning-rate",
        "1e12",
        "--epochs",
        "3",
        "--no-progress",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(line.contains("diverged"), "{line}");
}

/// A tiny CIFAR-10 archive (synthetic pixels) in `dir`; returns the splits written.
fn tiny_cifar(dir: &Path) -> rethink::data::image_set::Splits {
    let splits = generate(SyntheticSpec { train: 60, test: 20, num_classes: 10 }, 3);
    write_cifar10_archive(dir, &splits).unwrap();
    splits
}

#[test]
fn labels_csv_matches_the_numpy_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let splits = tiny_cifar(dir.path());
    let csv = dir.path().join("labels.csv");
    let data_dir = dir.path().to_str().unwrap();
    for (val_labels, corrupt_val) in [("clean", false), ("corrupted", true)] {
        run_ok(&[
            "labels",
            "--data-dir",
            data_dir,
            "--label-corrupt-prob",
            "0.5",
            "--val-labels",
            val_labels,
            "--out",
            csv.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("split,index,original,label,corrupted"));
        let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(String::from).collect()).collect();
        assert_eq!(rows.len(), 80);
        let train = corrupt_labels(&splits.train.labels, 10, 0.5, DEMO_CORRUPTION_SEED);
        let val = corrupt_labels(&splits.test.labels, 10, 0.5, DEMO_CORRUPTION_SEED);
        for (i, row) in rows.iter().enumerate() {
            let (split, j, expect, original) = if i < 60 {
                ("train", i, (train.labels[i], train.mask[i]), splits.train.labels[i])
            } else if corrupt_val {
                ("val", i - 60, (val.labels[i - 60], val.mask[i - 60]), splits.test.labels[i - 60])
            } else {
                ("val", i - 60, (splits.test.labels[i - 60], false), splits.test.labels[i - 60])
            };
            let want = [
                split.to_string(),
                j.to_string(),
                original.to_string(),
                expect.0.to_string(),
                (expect.1 as u8).to_string(),
            ];
            assert_eq!(row, &want, "row {i}");
        }
    }
    let line =
        run_err(&["labels", "--data-dir", data_dir, "--label-corrupt-prob", "2", "--out", csv.to_str().unwrap()]);
    assert!(line.contains("--label-corrupt-prob"), "{line}");
}

#[test]
fn trains_on_a_cifar_archive_downloaded_over_http() {
    let source = tempfile::tempdir().unwrap();
    tiny_cifar(source.path());
    let archive = std::fs::read(source.path().join("cifar-10-binary.tar.gz")).unwrap();
    let md5 = md5_hex(&archive);
    let server = serve(&[("/cifar-10-binary.tar.gz", Reply::Body(archive))]);
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = server.url("/cifar-10-binary.tar.gz");
    let data_dir = data.path().to_str().unwrap();
    let line = run_err(&["train", "--data-dir", data_dir, "--download", "--download-url", &url, "--epochs", "0"]);
    assert!(line.contains("checksum"), "{line}");
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0, "nothing left behind");
    let stdout = run_ok(&[
        "train",
        "--data-dir",
        data_dir,
        "--download",
        "--download-url",
        &url,
        "--download-md5",
        &md5,
        "--arch",
        "mlp",
        "--epochs",
        "1",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(stdout.starts_with("Number of parameters: 1577984\n000: "), "{stdout}");
    assert!(data.path().join("cifar-10-binary.tar.gz").exists());
    assert_eq!(server.hits(), 2);
}

#[test]
fn resume_without_a_checkpoint_says_a_new_run_starts() {
    let out = tempfile::tempdir().unwrap();
    let result = common::rethink()
        .args([
            "train",
            "--data",
            "synthetic",
            "--synthetic-train",
            "64",
            "--synthetic-test",
            "32",
            "--arch",
            "mlp",
            "--epochs",
            "1",
            "--no-progress",
            "--resume",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    let expected = out.path().join("synthetic_mlp512_lr0.1_mmt0.9_Wd0.0001_NoAug/checkpoint.safetensors");
    assert!(
        stderr.contains(&format!("--resume found no checkpoint at {}: starting a new run", expected.display())),
        "{stderr}"
    );
}

/// A GPU device in a build without its feature (`cuda`, which no test build has): one line
/// naming the cargo feature, before any data is read; `rethink devices` says what is missing.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_device_without_the_feature_names_the_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().display().to_string();
    let err = run_err(&["train", "--device", "cuda", "--data-dir", "/nonexistent", "--out", &out]);
    assert!(err.contains("this build has no cuda support") && err.contains("--features cuda"), "{err}");
    let listing = run_ok(&["devices"]);
    let missing = listing.lines().find(|l| l.starts_with("not in this build:")).unwrap_or_default();
    assert!(listing.starts_with("cpu ") && missing.contains("cuda"), "{listing}");
    assert_eq!(missing.contains("wgpu"), !cfg!(feature = "wgpu"), "{listing}");
}

#[test]
fn an_unknown_device_is_rejected_by_the_parser() {
    let err = run_err(&["train", "--device", "tpu"]);
    assert!(err.contains("unknown device 'tpu'"), "{err}");
}
