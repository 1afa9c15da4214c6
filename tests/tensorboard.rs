//! Every run writes TensorBoard event files: read back with TensorBoard's own reader
//! (`EventAccumulator`, in a Python venv under `target/`), they must hold exactly the
//! numbers of the run's `metrics.csv`, one event per epoch, also after a resume.

mod common;

use common::{MNIST, only_run, run_ok};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv that holds TensorBoard, reused between test runs.
const VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tb-venv");

/// Reads every scalar of a log directory and prints `{tag: [[step, value], ...]}` as JSON.
const READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
"#;

const INSTALL_HINT: &str = "this test needs python3 with venv and pip to install TensorBoard from PyPI \
     (on Debian/Ubuntu: apt-get install -y python3-venv)";

/// Runs `cmd`, panicking with `what`, its output and the install hint if it fails.
fn check(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what} ({e}): {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "{what} failed ({INSTALL_HINT}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The venv's python, with TensorBoard installed (created on first use; never skipped).
fn python() -> PathBuf {
    static READY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    let python = Path::new(VENV).join("bin/python");
    if *ready {
        return python;
    }
    let importable = |p: &Path| {
        Command::new(p)
            .args(["-c", "import tensorboard.backend.event_processing.event_accumulator"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !importable(&python) {
        check(Command::new("python3").args(["-m", "venv", "--clear", VENV]), "python3 -m venv");
        check(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "tensorboard",
            ]),
            "pip install tensorboard",
        );
        assert!(importable(&python), "tensorboard is not importable after pip install: {INSTALL_HINT}");
    }
    *ready = true;
    python
}

/// Every scalar TensorBoard reads from `logdir`: tag → [(step, value)].
fn scalars(logdir: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let out = check(Command::new(python()).args(["-c", READER]).arg(logdir), "the TensorBoard reader");
    let json: BTreeMap<String, Vec<(i64, f64)>> =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("reader output is not JSON ({e}): {out}"));
    json
}

/// What `metrics.csv` says each tag should hold: tag → [(steps, value)].
fn expected(run: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let tags = [
        ("loss/train", "train_loss"),
        ("loss/val", "val_loss"),
        ("accuracy/train", "train_acc"),
        ("accuracy/val", "val_acc"),
        ("learning_rate", "lr"),
        ("accuracy/train_clean", "train_acc_clean"),
        ("accuracy/train_corrupted", "train_acc_corrupted"),
    ];
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in {header:?}"));
    let mut want: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let step: i64 = cells[col("steps")].parse().unwrap();
        for (tag, column) in tags {
            let cell = cells[col(column)];
            if !cell.is_empty() {
                want.entry(tag.into()).or_default().push((step, cell.parse().unwrap()));
            }
        }
    }
    want
}

/// Trains the MLP on 600 real MNIST digits with half the labels corrupted.
fn train(out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "train",
        "--data",
        "mnist",
        "--data-dir",
        MNIST,
        "--split-test-set",
        "600",
        "--val-size",
        "300",
        "--arch",
        "mlp",
        "--learning-rate",
        "0.05",
        "--weight-decay",
        "0",
        "--label-corrupt-prob",
        "0.5",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    only_run(out)
}

/// Asserts that TensorBoard reads exactly `metrics.csv`'s numbers, `epochs` events per tag.
fn assert_events_match_csv(run: &Path, epochs: usize) {
    let tb = run.join("tb");
    let files: Vec<_> = std::fs::read_dir(&tb).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["events.out.tfevents.0.rethink"], "one event file in {}", tb.display());
    let got = scalars(&tb);
    let want = expected(run);
    assert_eq!(want.len(), 7, "the partially corrupted run has all seven scalars: {want:?}");
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "tags");
    for (tag, want) in &want {
        let got = &got[tag];
        assert_eq!(got.len(), epochs, "{tag}: one event per epoch, got {got:?}");
        for ((gs, gv), (ws, wv)) in got.iter().zip(want) {
            assert_eq!(gs, ws, "{tag}: steps");
            assert!(*ws > 0, "{tag}: steps are the cumulative SGD steps");
            let tol = 1e-6 * wv.abs().max(1.0);
            assert!((gv - wv).abs() <= tol, "{tag} at step {gs}: TensorBoard reads {gv}, metrics.csv has {wv}");
        }
    }
}

#[test]
fn tensorboard_reads_the_runs_metrics() {
    let out = tempfile::tempdir().unwrap();
    let run = train(out.path(), &["--epochs", "3"]);
    assert_events_match_csv(&run, 3);
}

#[test]
fn resumed_run_has_one_event_per_epoch() {
    let out = tempfile::tempdir().unwrap();
    let run = train(out.path(), &["--epochs", "2"]);
    assert_events_match_csv(&run, 2);
    let resumed = train(out.path(), &["--epochs", "3", "--resume"]);
    assert_eq!(resumed, run);
    assert_events_match_csv(&run, 3);
}
